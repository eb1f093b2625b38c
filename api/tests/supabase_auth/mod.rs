//! `/auth/v1` (GoTrue's API) over the one auth service: every route's shapes and errors
//! in-process, the email flow against a real SMTP server and in log mode, the service
//! role's user management, and the real `@supabase/supabase-js` against the binary.

mod admin;
mod email_flow;
mod js;
mod log_mode;
mod sessions;
pub mod smtp_sink;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use fluxbase_api::config::{Config, SmtpTlsMode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Reply, TestApp, token};

use self::smtp_sink::SmtpSink;

/// The API version auth-js sends.
const VERSION: (&str, &str) = ("X-Supabase-Api-Version", "2024-01-01");

/// The anon key (an `anon` JWT, as `fluxbase keys` prints).
fn anon_key() -> String {
    token(json!({"role": "anon"}))
}

/// The service-role key.
fn service_key() -> String {
    token(json!({"role": "service_role"}))
}

/// A request as auth-js sends it: the anon key as `apikey` and bearer, the API version,
/// a JSON body.
fn gotrue(method: Method, uri: &str, body: Option<Value>) -> TestRequest {
    let key = anon_key();
    let mut req = TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header(("apikey", key.clone()))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .insert_header(VERSION);
    if let Some(body) = body {
        req = req
            .insert_header(("Content-Type", "application/json;charset=UTF-8"))
            .set_payload(body.to_string());
    }
    req
}

/// The same with a user's (or the service role's) bearer token.
fn with_bearer(req: TestRequest, bearer: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {bearer}")))
}

/// Asserts a GoTrue error of API version 2024-01-01: status, `code`, the version echoed,
/// and nothing but `{code, message}` (plus `weak_password`).
#[track_caller]
fn assert_gotrue(got: &Reply, status: u16, code: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    assert_eq!(got.body["code"], code, "{}", got.body);
    assert!(
        got.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.body
    );
    let keys: Vec<&String> = got.body.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["code", "message", "weak_password"].contains(&k.as_str())),
        "{}",
        got.body
    );
    assert_eq!(
        got.headers.get("x-supabase-api-version").unwrap(),
        "2024-01-01",
        "{}",
        got.body
    );
}

/// Asserts a legacy GoTrue error (no version asked): `{code: status, error_code, msg}`.
#[track_caller]
fn assert_legacy(got: &Reply, status: u16, error_code: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    assert_eq!(got.body["code"], status, "{}", got.body);
    assert_eq!(got.body["error_code"], error_code, "{}", got.body);
    assert!(got.body["msg"].is_string(), "{}", got.body);
    assert!(got.headers.get("x-supabase-api-version").is_none());
}

/// Signs `email` up through `/auth/v1/signup` (confirmation off): the session.
async fn sign_up(app: &TestApp, email: &str, password: &str) -> Value {
    let got = app
        .call(gotrue(
            Method::POST,
            "/auth/v1/signup",
            Some(json!({"email": email, "password": password})),
        ))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.body["access_token"].is_string(), "{}", got.body);
    got.body
}

/// Signs in with a password: the reply.
async fn password_grant(app: &TestApp, email: &str, password: &str) -> Reply {
    app.call(gotrue(
        Method::POST,
        "/auth/v1/token?grant_type=password",
        Some(json!({"email": email, "password": password, "gotrue_meta_security": {}})),
    ))
    .await
}

/// Refreshes: the reply.
async fn refresh_grant(app: &TestApp, refresh_token: &str) -> Reply {
    app.call(gotrue(
        Method::POST,
        "/auth/v1/token?grant_type=refresh_token",
        Some(json!({"refresh_token": refresh_token})),
    ))
    .await
}

/// The `sub` of a session answer.
fn user_id(session: &Value) -> Uuid {
    session["user"]["id"].as_str().unwrap().parse().unwrap()
}

/// Points the email flow at `sink` (plain SMTP, no interval between emails) with links
/// under `http://api.test` landing on `http://app.test`.
fn smtp_to(config: &mut Config, sink: &SmtpSink) {
    config.server.base_url = Some("http://api.test".into());
    config.auth.site_url = Some("http://app.test".into());
    config.auth.smtp.host = Some("127.0.0.1".into());
    config.auth.smtp.port = sink.port;
    config.auth.smtp.tls = SmtpTlsMode::None;
    config.auth.smtp.from = Some("noreply@fluxbase.test".into());
    config.auth.email_min_interval = fluxbase_api::config::Dur::secs(0);
}
