//! Without `auth.smtp.host` each email is a log line of the binary: with
//! `auth.email_log_links` (development) it carries the link and the code, which complete the
//! flow; without it neither is ever logged — the token row is all there is.

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};

use crate::support::http::request;
use crate::support::plain_server;

use super::anon_key;

/// A JSON POST to the binary as auth-js sends it.
async fn post(addr: &str, path: &str, body: Value) -> crate::support::Response {
    let key = anon_key();
    request(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("apikey", &key),
            ("X-Supabase-Api-Version", "2024-01-01"),
        ],
        &body.to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_emails_are_log_lines_with_links_only_when_asked() {
    let db = TestDb::new().await;

    // Development: the link and code are logged, and they complete the flow.
    let (mut server, _dir) = plain_server(&db, &[("FLUXBASE_AUTH_EMAIL_LOG_LINKS", "true")]).await;
    let addr = server.addr.clone();
    assert!(
        server
            .drain_log()
            .iter()
            .any(|l| l.contains("auth.email_log_links is on")),
        "the development switch is announced"
    );
    let signup = post(
        &addr,
        "/auth/v1/signup",
        json!({"email": "dev@example.com", "password": "dev password"}),
    )
    .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    let recover = post(
        &addr,
        "/auth/v1/recover",
        json!({"email": "dev@example.com"}),
    )
    .await;
    assert_eq!(recover.status, 200, "{}", recover.body);
    let line = server
        .wait_for_log("email not sent (no auth.smtp.host); auth.email_log_links is on, so its link and code are logged")
        .await;
    assert_eq!(line["email_kind"], "recovery");
    assert_eq!(line["user_id"], signup.json()["user"]["id"]);
    let link = line["link"].as_str().unwrap().to_string();
    let code = line["code"].as_str().unwrap().to_string();
    // No base URL is configured: the link is built from the request's host.
    let prefix = format!("http://{addr}/auth/v1/verify?token=");
    assert!(link.starts_with(&prefix), "{link}");
    // No landing page either: following the link answers the session itself.
    let followed = request(
        &addr,
        "GET",
        &link[format!("http://{addr}").len()..],
        &[],
        "",
    )
    .await;
    assert_eq!(followed.status, 200, "{}", followed.body);
    assert_eq!(followed.json()["user"]["email"], "dev@example.com");
    // The code was the same token's: spent.
    let by_code = post(
        &addr,
        "/auth/v1/verify",
        json!({"type": "recovery", "email": "dev@example.com", "token": code}),
    )
    .await;
    assert_eq!(by_code.status, 403, "{}", by_code.body);
    assert_eq!(by_code.json()["code"], "otp_expired");
    server.stop(libc::SIGTERM).await;

    // Production-like: a log line without link or code; the row holds only hashes.
    let (mut server, _dir) = plain_server(&db, &[]).await;
    let addr = server.addr.clone();
    let signup = post(
        &addr,
        "/auth/v1/signup",
        json!({"email": "prod@example.com", "password": "prod password"}),
    )
    .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    let otp = post(&addr, "/auth/v1/otp", json!({"email": "prod@example.com"})).await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    let line = server
        .wait_for_log("email not sent: no SMTP server is configured (auth.smtp.host)")
        .await;
    assert_eq!(line["email_kind"], "magiclink");
    assert!(
        line.get("link").is_none() && line.get("code").is_none(),
        "{line}"
    );
    let (_, lines) = server.stop(libc::SIGTERM).await;
    assert!(
        !lines.iter().any(|l| l.contains("/auth/v1/verify?token=")),
        "no link in the log"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*) FROM auth.one_time_tokens t JOIN auth.users u ON u.id = t.user_id \
             WHERE u.email = 'prod@example.com' AND t.token_type = 'magiclink' \
               AND length(t.token_hash) = 64 AND length(t.code_hash) = 64",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}
