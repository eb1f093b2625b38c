//! Bounds of issue 11, each against a real server and PostgreSQL: a stalled request body
//! (item 8), text PostgreSQL cannot store (item 9), `GET /realtime` without an upgrade
//! (item 10), and the password hashing bound (item 11).

use std::time::Duration;

use actix_web::http::Method;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use crate::support::http::exchange;
use crate::support::{TestApp, assert_error, bearer, http, plain_server, raw, realtime_server};

/// The message of a refused NUL in `field`.
fn nul_refused(field: &str) -> String {
    format!("invalid field `{field}`: text must not contain a NUL character")
}

/// Item 8: `Content-Length: 4000`, nine bytes, then silence. The body is cut after
/// `server.body_timeout` with a JSON 408, and the connection is closed (the read below only
/// ends when the server closes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_with_a_json_408_and_its_connection_closed() {
    let db = TestDb::new().await;
    let (server, _dir) = plain_server(&db, &[("FLUXBASE_SERVER_BODY_TIMEOUT", "1s")]).await;
    let head = format!(
        "POST /api/v1/auth/signup HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 4000",
        server.addr
    );
    let res = exchange(
        &server.addr,
        &head,
        br#"{"email":"#,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(res.status, 408, "{res:?}");
    let body = res.json();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.body_timeout"),
        "{body}"
    );
    assert_eq!(res.header("connection"), Some("close"), "{}", res.headers);

    // A body that keeps coming (slowly, within the timeout between chunks) is read whole.
    let head = format!(
        "POST /api/v1/auth/signup HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 2",
        server.addr
    );
    let res = exchange(&server.addr, &head, b"{}", Duration::from_secs(20)).await;
    assert_eq!(res.status, 400, "{res:?}");
    assert!(res.body.contains("missing field"), "{}", res.body);
}

/// Item 9: a NUL in user metadata (or any string of a JSON body) reached PostgreSQL's jsonb
/// and failed as a 500. It is a 400 naming the field, on signup, `PATCH /user`, and every
/// other JSON route; nothing was stored.
#[actix_web::test]
async fn text_postgres_cannot_store_is_a_400_naming_the_field() {
    let app = TestApp::new().await;
    let signup = r#"{"email":"nul@example.com","password":"long enough password","data":{"nick":"a\u0000b"}}"#;
    let got = app
        .call(raw(Method::POST, "/api/v1/auth/signup", signup))
        .await;
    assert_error(&got, 400, "bad_request", &nul_refused("data.nick"));
    let users: i64 = app
        .db()
        .client()
        .await
        .query_one("SELECT count(*) FROM auth.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);

    let access = app
        .sign_up("nul@example.com", "long enough password")
        .await
        .str("access_token");
    for (method, uri, body, field) in [
        (
            Method::PATCH,
            "/api/v1/auth/user",
            r#"{"data":{"nick":"a\u0000b"}}"#,
            "data.nick",
        ),
        (
            Method::PUT,
            "/api/v1/auth/user",
            r#"{"data":{"tags":["ok","\u0000"]}}"#,
            "data.tags[1]",
        ),
        (
            Method::PATCH,
            "/api/v1/auth/user",
            r#"{"email":"x\u0000@example.com"}"#,
            "email",
        ),
    ] {
        let got = app.call(bearer(raw(method, uri, body), &access)).await;
        assert_error(&got, 400, "bad_request", &nul_refused(field));
    }
    for (uri, body, field) in [
        (
            "/dashboard/auth/signup",
            r#"{"email":"a@example.com","password":"SecurePassword123!","full_name":"A\u0000"}"#,
            "full_name",
        ),
        (
            "/api/v1/auth/signin",
            r#"{"email":"nul@example.com","password":"p\u0000"}"#,
            "password",
        ),
        (
            "/api/v1/auth/refresh",
            r#"{"refresh_token":"\u0000"}"#,
            "refresh_token",
        ),
    ] {
        let got = app.call(raw(Method::POST, uri, body)).await;
        assert_error(&got, 400, "bad_request", &nul_refused(field));
        // Never the value, even a password.
        assert!(!got.body.to_string().contains("p\\u0000"), "{}", got.body);
    }
    let me = app
        .call(bearer(
            actix_web::test::TestRequest::get().uri("/api/v1/auth/user"),
            &access,
        ))
        .await;
    assert_eq!(me.body["user_metadata"], json!({}));
}

/// Item 10: `GET /realtime` without an upgrade answered an empty 400, the one error
/// without the JSON body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_of_realtime_is_a_json_400() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let res = http(&server.addr, "GET", "/realtime").await;
    assert_eq!(res.status, 400, "{res:?}");
    let body = res.json();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket"),
        "{body}"
    );
}

/// Item 11: password hashing is bounded. With every slot busy and no queue left, sign-up
/// and sign-in are shed at once with 503 `overloaded` and `Retry-After` instead of piling up
/// 19 MiB hashes; once a slot frees, they work. (The memory figure under 1,000 concurrent
/// sign-ins and sign-ups is the `auth` load-test scenario's, in BENCHMARKS.md.)
#[actix_web::test]
async fn password_hashing_sheds_load_beyond_its_slots_and_queue() {
    let app = TestApp::with(|c| {
        c.auth.password_hash_concurrency = 1;
        c.auth.password_hash_queue = 0;
    })
    .await;
    app.sign_up("known@example.com", "known password").await;

    // Occupy the only slot until released.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let hasher = app.state.auth.hasher().clone();
    let busy = actix_web::rt::spawn(async move {
        hasher
            .run(move |_| {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
            })
            .await
    });
    started.await.unwrap();

    let signup = json!({"email": "new@example.com", "password": "long enough password"});
    let signin = json!({"email": "known@example.com", "password": "known password"});
    for (uri, body) in [
        ("/api/v1/auth/signup", &signup),
        ("/api/v1/auth/signin", &signin),
        ("/dashboard/auth/signup", &signup),
    ] {
        let got = app.post(uri, body.clone()).await;
        assert_error(&got, 503, "overloaded", "retry in 1 second");
        assert_eq!(got.headers.get("retry-after").unwrap(), "1", "{uri}");
    }
    // Counted (the counter is process-wide: other tests may add to it).
    let metrics = app.metrics().await;
    let shed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fluxbase_auth_password_hashes_shed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no shed counter in:\n{metrics}"));
    assert!(shed >= 3, "{shed}");

    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    assert_eq!(app.post("/api/v1/auth/signup", signup).await.status, 200);
    assert_eq!(app.post("/api/v1/auth/signin", signin).await.status, 200);
}

/// Item 11, the load-test scenario at small scale (correctness only: every answer is a
/// success or a shed 503, nothing else; the figures at 1,000 clients are in BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_load_test_scenario_is_clean_at_small_scale() {
    let db = TestDb::new().await;
    let (server, _dir) = plain_server(
        &db,
        &[
            ("FLUXBASE_SECURITY_RATE_LIMIT_ENABLED", "false"),
            ("FLUXBASE_AUTH_PASSWORD_HASH_CONCURRENCY", "1"),
            ("FLUXBASE_AUTH_PASSWORD_HASH_QUEUE", "2"),
        ],
    )
    .await;
    let mut config = fluxbase_loadtest::ScenarioConfig::new(fluxbase_loadtest::Scenario::Auth);
    config.server_url = format!("http://{}", server.addr);
    config.server_pid = server.child.id();
    config.connections = 24;
    config.duration = Duration::from_secs(2);
    let report = fluxbase_loadtest::run(&config).await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
    let requests = report.requests.as_ref().unwrap();
    assert!(
        requests.by_status.get(&200).is_some_and(|n| *n > 0),
        "{}",
        report.render()
    );
    // 24 clients on one slot and a queue of two: most are shed at first.
    assert!(requests.by_status.contains_key(&503), "{}", report.render());
}
