//! Application-user auth (`/api/v1/auth/*`) and service keys (`/api/v1/admin/service-keys`)
//! in-process over a real database, the runbook's two SQL procedures, every bad input of
//! issue 6, and `fluxbase keys` as a user runs it.

use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use fluxbase_api::config::{Config, Dur};
use fluxbase_api::http::{AppState, build_app};
use fluxbase_auth::JwtKeys;
use fluxbase_migrations::Db;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TEST_SECRET, TempDir, fluxbase, token};

/// State with the test secret and the login limiter off (these tests sign in often), then
/// `tweak`.
fn auth_state(url: &str, tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut config = Config::default();
    config.database.url = Some(url.to_string());
    config.database.connect_timeout = Dur::secs(2);
    config.auth.jwt_secret = Some(TEST_SECRET.to_string());
    config.security.rate_limit.enabled = false;
    tweak(&mut config);
    let db = Db::new(
        fluxbase_migrations::pool::parse_url(url).unwrap(),
        config.database.pool_settings(),
    );
    AppState::new(config, db)
}

fn keys() -> JwtKeys {
    JwtKeys::hs256(TEST_SECRET.as_bytes())
}

async fn body_of<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = read_body(res).await;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value)
}

/// Sends `req` and returns status and JSON body.
async fn send<S, B>(app: &S, req: TestRequest) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    body_of(call_service(app, req.to_request()).await).await
}

fn post(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_payload(body.to_string())
}

fn raw(method: actix_web::http::Method, uri: &str, body: &str) -> TestRequest {
    TestRequest::default()
        .method(method)
        .uri(uri)
        .set_payload(body.to_string())
}

fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {token}")))
}

/// Asserts an error: status, code, and that the message mentions `needle`.
#[track_caller]
fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, needle: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    let message = got.1["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {}", got.1));
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert_eq!(got.1.as_object().unwrap().len(), 1, "{}", got.1);
    assert_eq!(got.1["error"].as_object().unwrap().len(), 2, "{}", got.1);
}

fn creds(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

async fn audit_actions(db: &TestDb, actor: Uuid) -> Vec<String> {
    let client = db.client().await;
    client
        .query(
            "SELECT action FROM auth.audit_log_entries WHERE actor_id = $1 ORDER BY id",
            &[&actor],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn metrics_text<S, B>(app: &S) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = call_service(app, TestRequest::get().uri("/metrics").to_request()).await;
    String::from_utf8(read_body(res).await.to_vec()).unwrap()
}

fn has_attempt(metrics: &str, result: &str, reason: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("fluxbase_auth_attempts_total{")
            && l.contains(&format!("result=\"{result}\""))
            && l.contains(&format!("reason=\"{reason}\""))
    })
}

mod bad_input;
mod binary;
mod flows;
mod service_keys;
