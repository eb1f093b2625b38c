//! `/health`, `/ready`, `/metrics`, `/api/v1/monitoring/{health,metrics}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::resource::get as get_resource;
use super::state::AppState;

/// Registers the health and metrics routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_resource("/health", health))
        .service(get_resource("/ready", ready))
        .service(get_resource("/metrics", prometheus_metrics))
        .service(get_resource("/api/v1/monitoring/health", monitoring_health))
        .service(get_resource(
            "/api/v1/monitoring/metrics",
            monitoring_metrics,
        ));
}

/// Liveness: the process answers. Never touches the database.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy"}))
}

/// Readiness: 200 when the database answers, 503 with the reason when not.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(latency) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "checks": {"database": {"status": "up", "latency_ms": latency.as_secs_f64() * 1000.0}},
        })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "not_ready",
                "checks": {"database": {"status": "down"}},
                "error": {"code": "database_unavailable", "message": err.to_string()},
            }))
        }
    }
}

/// Prometheus text format.
async fn prometheus_metrics(state: web::Data<AppState>) -> HttpResponse {
    state.db.publish_gauges();
    if let Some(jobs) = &state.jobs {
        jobs.publish_gauges();
    }
    metrics::gauge!("fluxbase_system_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.prometheus.render())
}

/// Per-component health: `healthy` (200), `unhealthy` (503) when a required component is
/// down.
async fn monitoring_health(state: web::Data<AppState>) -> HttpResponse {
    let database = match state.db.ping().await {
        Ok(latency) => json!({
            "status": "healthy",
            "latency_ms": latency.as_secs_f64() * 1000.0,
            "pool": state.db.stats(),
        }),
        Err(err) => json!({
            "status": "unhealthy",
            "error": err.to_string(),
            "pool": state.db.stats(),
        }),
    };
    let mut components = json!({"database": database});
    if let Some(engine) = &state.engine {
        let stats = engine.stats();
        let status = match &stats.replication {
            Some(r) if !r.degraded => "healthy",
            _ => "degraded",
        };
        components["realtime"] = json!({
            "status": status,
            "connections": stats.connections,
            "subscriptions": stats.subscriptions,
        });
        components["replication"] = json!(stats.replication);
        if let Some(r) = &stats.replication {
            components["replication"]["status"] =
                json!(if r.degraded { "degraded" } else { "healthy" });
        }
    }
    if let Some(jobs) = &state.jobs {
        components["jobs"] = json!(jobs.health());
    }
    let healthy = components["database"]["status"] == "healthy";
    let degraded = components
        .as_object()
        .is_some_and(|c| c.values().any(|v| v["status"] == "degraded"));
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(json!({
        "status": match (healthy, degraded) {
            (false, _) => "unhealthy",
            (true, true) => "degraded",
            (true, false) => "healthy",
        },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "components": components,
    }))
}

/// Metrics as JSON for operators and dashboards.
async fn monitoring_metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut body = json!({
        "uptime_seconds": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "database": {"pool": state.db.stats()},
    });
    if let Some(engine) = &state.engine {
        body["realtime"] = json!(engine.stats());
    }
    if let Some(jobs) = &state.jobs {
        body["jobs"] = json!(jobs.stats().await);
    }
    HttpResponse::Ok().json(body)
}
