//! `/health`, `/ready`, `/metrics`, `/api/v1/monitoring/{health,metrics}`.

use fluxbase_engine::realtime::cluster::Role;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use fluxbase_storage::Storage;
use serde_json::{Value, json};

use super::resource::get as get_resource;
use super::state::AppState;

/// Below this share of free space on the local storage's file system, storage is
/// `degraded` (uploads will soon fail with "no space left on device").
const LOW_DISK_FRACTION: f64 = 0.05;

/// Longest the storage probe may take before storage counts as unreachable.
const STORAGE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
        // Degraded while replication lags or is down, and while an engine actor is not
        // running (between a failure and its restart).
        let status = if stats.degraded() {
            "degraded"
        } else {
            "healthy"
        };
        components["realtime"] = json!({
            "status": status,
            "connections": stats.connections,
            "subscriptions": stats.subscriptions,
            "actors": stats.actors,
            "bus": stats.bus,
            // The slot consumer: always this instance without Redis.
            "leader": stats.cluster.as_ref().is_none_or(|c| c.role == Role::Leader),
        });
        components["replication"] = json!(stats.replication);
        if let Some(r) = &stats.replication {
            components["replication"]["status"] =
                json!(if r.degraded { "degraded" } else { "healthy" });
        }
        if let Some(cluster) = &stats.cluster {
            components["bus"] = json!(cluster);
            components["bus"]["status"] =
                json!(if cluster.connected && cluster.role != Role::Unknown {
                    "healthy"
                } else {
                    "degraded"
                });
            if cluster.role == Role::Follower {
                // Another instance streams the slot; this one follows the bus.
                components["replication"] = json!({"status": "healthy", "role": "follower"});
            }
        }
    }
    if let Some(storage) = &state.storage {
        components["storage"] = storage_health(storage).await;
    }
    if let Some(jobs) = &state.jobs {
        components["jobs"] = json!(jobs.health());
    }
    let healthy = components["database"]["status"] == "healthy";
    // A component other than the database that is down degrades the server: it still
    // serves what does not need that component.
    let degraded = components
        .as_object()
        .is_some_and(|c| c.values().any(|v| v["status"] != "healthy"));
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

/// The storage component: a write/read/delete round trip through the backend, and the free
/// space of a local backend's file system.
async fn storage_health(storage: &Storage) -> Value {
    let Ok(probe) = tokio::time::timeout(STORAGE_PROBE_TIMEOUT, storage.health()).await else {
        return json!({
            "status": "unhealthy",
            "provider": storage.backend().provider(),
            "reachable": false,
            "error": format!("the probe took longer than {}s", STORAGE_PROBE_TIMEOUT.as_secs()),
        });
    };
    let low_disk = match (probe.free_bytes, probe.total_bytes) {
        (Some(free), Some(total)) if total > 0 => (free as f64) < LOW_DISK_FRACTION * total as f64,
        _ => false,
    };
    let mut component = json!(probe);
    component["status"] = json!(match (probe.reachable, low_disk) {
        (false, _) => "unhealthy",
        (true, true) => "degraded",
        (true, false) => "healthy",
    });
    if low_disk {
        component["warning"] = json!(format!(
            "less than {}% of the storage file system is free",
            LOW_DISK_FRACTION * 100.0
        ));
    }
    component
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
