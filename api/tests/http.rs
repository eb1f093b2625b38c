//! The HTTP app in-process (the same factory the binary uses) over a real database.

use actix_web::test::TestRequest;
use fluxbase_migrations::test_utils::DedicatedCluster;
use serde_json::json;

use crate::support::TestApp;

#[actix_web::test]
async fn health_ready_and_component_health() {
    let app = TestApp::new().await;

    let res = app.get("/health").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, json!({"status": "healthy"}));

    let res = app.get("/ready").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["status"], "ready");
    assert_eq!(res.body["checks"]["database"]["status"], "up");

    let res = app.get("/api/v1/monitoring/health").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["status"], "healthy");
    assert_eq!(res.body["components"]["database"]["status"], "healthy");
    assert!(
        res.body["components"]["database"]["pool"]["max_size"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[actix_web::test]
async fn metrics_expose_the_runbook_names() {
    let app = TestApp::new().await;
    // Traffic first, so request and query series exist.
    for uri in ["/health", "/ready"] {
        assert_eq!(app.get(uri).await.status, 200);
    }
    let res = app.get("/metrics").await;
    assert_eq!(res.status, 200);
    let content_type = res.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.body.as_str().unwrap();
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
    let app = TestApp::new().await;

    let res = app.get("/no/such/route").await;
    assert_eq!(res.status, 404);
    assert_eq!(
        res.body,
        json!({"error": {"code": "not_found", "message": "no route for GET /no/such/route"}})
    );

    let res = app.call(TestRequest::delete().uri("/health")).await;
    assert_eq!(res.status, 405);
    assert_eq!(
        res.body,
        json!({"error": {"code": "method_not_allowed", "message": "DELETE is not allowed on /health"}})
    );

    // SQL-looking and odd paths are just unknown routes.
    let res = app.get("/api/v1/x%27%3B%20DROP%20TABLE%20users%3B--").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body["error"]["code"], "not_found");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::new().await;
    let with_id = |id: &str| {
        TestRequest::get()
            .uri("/health")
            .insert_header(("X-Request-Id", id.to_string()))
    };

    let res = app.call(with_id("abc123")).await;
    assert_eq!(res.headers.get("x-request-id").unwrap(), "abc123");

    let res = app.get("/health").await;
    let generated = res.headers.get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(generated.len(), 32, "{generated}");

    // A hostile id (log injection, oversize) is replaced, not echoed.
    for hostile in ["a\"b", "x".repeat(300).as_str(), "id with spaces"] {
        let res = app.call(with_id(hostile)).await;
        let id = res.headers.get("x-request-id").unwrap().to_str().unwrap();
        assert_ne!(id, hostile);
        assert_eq!(id.len(), 32);
    }

    // Errors carry the id too.
    let res = app
        .call(
            TestRequest::get()
                .uri("/nope")
                .insert_header(("X-Request-Id", "err-1")),
        )
        .await;
    assert_eq!(res.headers.get("x-request-id").unwrap(), "err-1");
}

#[actix_web::test]
async fn ready_follows_the_database_without_a_restart() {
    let mut cluster = DedicatedCluster::start().await;
    let app = TestApp::on_url(&cluster.url(), |_| {}).await;

    assert_eq!(app.get("/ready").await.status, 200);

    cluster.stop();
    let res = app.get("/ready").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body["status"], "not_ready");
    assert_eq!(res.body["error"]["code"], "database_unavailable");
    assert!(!res.body["error"]["message"].as_str().unwrap().is_empty());

    let res = app.get("/api/v1/monitoring/health").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body["components"]["database"]["status"], "unhealthy");

    cluster.restart();
    let res = app.get("/ready").await;
    assert_eq!(res.status, 200, "{}", res.body);
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
    let app = TestApp::on_url(&url, |_| {}).await;
    assert_eq!(app.get("/ready").await.status, 200);
    let rows = app
        .state
        .db
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
