//! The HTTP app in-process (the same factory the binary uses) over a real database.

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use fluxbase_api::http::build_app;
use fluxbase_migrations::test_utils::{DedicatedCluster, TestDb};
use serde_json::{Value, json};

use crate::support::state_for;

async fn body_json<B: actix_web::body::MessageBody>(
    res: actix_web::dev::ServiceResponse<B>,
) -> Value {
    let bytes = read_body(res).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

#[actix_web::test]
async fn health_ready_and_component_health() {
    let db = TestDb::new().await;
    let app = init_service(build_app(state_for(&db.url()))).await;

    let res = call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_json(res).await, json!({"status": "healthy"}));

    let res = call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_json(res).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "up");

    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/monitoring/health")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_json(res).await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["components"]["database"]["status"], "healthy");
    assert!(
        body["components"]["database"]["pool"]["max_size"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[actix_web::test]
async fn metrics_expose_the_runbook_names() {
    let db = TestDb::new().await;
    let app = init_service(build_app(state_for(&db.url()))).await;
    // Traffic first, so request and query series exist.
    for uri in ["/health", "/ready"] {
        let res = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert!(res.status().is_success());
    }
    let res = call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers().get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = String::from_utf8(read_body(res).await.to_vec()).unwrap();
    for name in [
        "fluxbase_http_requests_total{",
        "fluxbase_http_request_duration_seconds_bucket{",
        "fluxbase_db_queries_total{",
        "fluxbase_db_query_duration_seconds_bucket{",
        "fluxbase_db_connections ",
        "fluxbase_db_connections_waiting ",
        "fluxbase_system_uptime_seconds ",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    assert!(
        text.contains(r#"fluxbase_http_requests_total{method="GET",path="/health",status="200"}"#),
        "{text}"
    );
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_json() {
    let db = TestDb::new().await;
    let app = init_service(build_app(state_for(&db.url()))).await;

    let res = call_service(&app, TestRequest::get().uri("/no/such/route").to_request()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        body_json(res).await,
        json!({"error": {"code": "not_found", "message": "no route for GET /no/such/route"}})
    );

    let res = call_service(&app, TestRequest::delete().uri("/health").to_request()).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body_json(res).await,
        json!({"error": {"code": "method_not_allowed", "message": "DELETE is not allowed on /health"}})
    );

    // SQL-looking and odd paths are just unknown routes.
    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/tables/x%27%3B%20DROP%20TABLE%20users%3B--")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(res).await["error"]["code"], "not_found");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let db = TestDb::new().await;
    let app = init_service(build_app(state_for(&db.url()))).await;

    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/health")
            .insert_header(("X-Request-Id", "abc123"))
            .to_request(),
    )
    .await;
    assert_eq!(res.headers().get("x-request-id").unwrap(), "abc123");

    let res = call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    let generated = res.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(generated.len(), 32, "{generated}");

    // A hostile id (log injection, oversize) is replaced, not echoed.
    for hostile in ["a\"b", "x".repeat(300).as_str(), "id with spaces"] {
        let res = call_service(
            &app,
            TestRequest::get()
                .uri("/health")
                .insert_header(("X-Request-Id", hostile))
                .to_request(),
        )
        .await;
        let id = res.headers().get("x-request-id").unwrap().to_str().unwrap();
        assert_ne!(id, hostile);
        assert_eq!(id.len(), 32);
    }

    // Errors carry the id too.
    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/nope")
            .insert_header(("X-Request-Id", "err-1"))
            .to_request(),
    )
    .await;
    assert_eq!(res.headers().get("x-request-id").unwrap(), "err-1");
}

#[actix_web::test]
async fn ready_follows_the_database_without_a_restart() {
    let mut cluster = DedicatedCluster::start().await;
    let app = init_service(build_app(state_for(&cluster.url()))).await;

    let res = call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);

    cluster.stop();
    let res = call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_json(res).await;
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["error"]["code"], "database_unavailable");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());

    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/monitoring/health")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body_json(res).await["components"]["database"]["status"],
        "unhealthy"
    );

    cluster.restart();
    let res = call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK, "{:?}", body_json(res).await);
}

#[actix_web::test]
async fn sslmode_require_encrypts_pool_connections() {
    let mut cluster = DedicatedCluster::start().await;
    let (admin, conn) = tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    let data_dir: String = admin
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    let (cert, key) = fluxbase_migrations::test_utils::self_signed_cert(&data_dir);
    for sql in [
        "ALTER SYSTEM SET ssl = on".to_string(),
        format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
        format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    drop(admin);
    cluster.stop();
    cluster.restart();

    let url = format!("{}?sslmode=require", cluster.url());
    let state = state_for(&url);
    let db = state.db.clone();
    let app = init_service(build_app(state)).await;
    let res = call_service(&app, TestRequest::get().uri("/ready").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rows = db
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rows[0].get::<_, bool>(0),
        "pool connection is not encrypted"
    );
}
