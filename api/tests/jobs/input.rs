//! Bad input to the jobs routes: each refusal is a 400 (413 for a body past the limit)
//! naming the field, in our error shape, and nothing is stored.

use actix_web::http::Method;
use serde_json::{Value, json};

use super::app::{JobsApp, service_token};
use crate::support::{assert_error, bearer, raw};

#[actix_web::test]
async fn every_bad_submit_names_its_field() {
    let app = JobsApp::new().await;
    let service = service_token();
    let (_, user) = app.user("carol@example.com").await;
    let url = "https://hooks.example.com/x";
    let job = |extra: Value| {
        let mut body = json!({"name": "n", "kind": "http", "payload": {"url": url}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let over_limit = "x".repeat(20 * 1024); // jobs.max_payload_size is 16 KiB here
    let cases: Vec<(Value, &str)> = vec![
        (
            job(json!({"kind": "teleport"})),
            "`kind`: unknown kind \"teleport\"",
        ),
        (
            job(json!({"payload": {"url": "ftp://example.com/x"}})),
            "`payload.url`",
        ),
        (
            job(json!({"payload": {"url": "not a url"}})),
            "`payload.url`",
        ),
        (job(json!({"payload": {"body": 1}})), "`payload`"),
        (
            job(json!({"payload": {"url": url, "body": over_limit}})),
            "`payload`: is 20",
        ),
        (
            job(json!({"max_attempts": -1})),
            "`max_attempts`: must be between 1 and 100",
        ),
        (job(json!({"max_attempts": 1000})), "`max_attempts`"),
        (
            job(json!({"max_attempts": "3"})),
            "`max_attempts`: invalid type",
        ),
        (
            job(json!({"idempotency_key": "k".repeat(256)})),
            "`idempotency_key`",
        ),
        (job(json!({"idempotency_key": ""})), "`idempotency_key`"),
        (job(json!({"delay_seconds": -5})), "`delay_seconds`"),
        (job(json!({"name": ""})), "`name`"),
        (
            job(json!({"name": "a\u{0}b"})),
            "`name`: text must not contain a NUL",
        ),
        (
            job(json!({"payload": {"url": url, "body": {"k": "\u{0}"}}})),
            "`payload.body.k`",
        ),
        (job(json!({"priority": "high"})), "`priority`"),
        (
            job(json!({"owner": "someone-else"})),
            "unknown field `owner`",
        ),
        (json!({"kind": "http"}), "missing field `name`"),
        (json!([1, 2]), "expected a JSON object"),
    ];
    for (body, needle) in cases {
        for caller in [&service, &user] {
            let got = app.send("POST", "/api/v1/jobs", caller, body.clone()).await;
            assert_error(&got, 400, "bad_request", needle);
        }
    }
    // Not JSON at all, and nothing.
    let got = app
        .call(bearer(
            raw(Method::POST, "/api/v1/jobs", "{\"name\":"),
            &service,
        ))
        .await;
    assert_error(&got, 400, "bad_request", "invalid JSON body");
    let got = app
        .call(bearer(raw(Method::POST, "/api/v1/jobs", ""), &service))
        .await;
    assert_error(&got, 400, "bad_request", "empty");
    // A body far past the payload limit is refused before it is read whole: 413 naming
    // `payload` and its key.
    let huge = job(json!({"payload": {"url": url, "body": "y".repeat(200 * 1024)}}));
    let got = app.send("POST", "/api/v1/jobs", &service, huge).await;
    assert_error(&got, 413, "payload_too_large", "jobs.max_payload_size");
    assert!(got.body.to_string().contains("`payload`"), "{}", got.body);

    // Nothing was stored.
    let listed = app.send("GET", "/api/v1/jobs", &service, Value::Null).await;
    assert_eq!(listed.body["jobs"], json!([]), "{}", listed.body);

    // Bad listings and ids.
    for (path, needle) in [
        (
            "/api/v1/jobs?status=done",
            "`status`: unknown status \"done\"",
        ),
        (
            "/api/v1/jobs?limit=0",
            "`limit`: must be between 1 and 1000",
        ),
        ("/api/v1/jobs?limit=lots", "query parameter `limit`"),
        ("/api/v1/jobs?offset=-1", "`offset`"),
        ("/api/v1/jobs?order=id", "unknown query parameter `order`"),
        ("/api/v1/jobs?name=a%00", "query parameter `name`"),
        ("/api/v1/jobs/42", "`id`: must be a UUID"),
        ("/api/v1/admin/jobs/dead-letters?status=pending", "`status`"),
    ] {
        let got = app.send("GET", path, &service, Value::Null).await;
        assert_error(&got, 400, "bad_request", needle);
    }
    let got = app
        .send("POST", "/api/v1/jobs/42/cancel", &user, Value::Null)
        .await;
    assert_error(&got, 400, "bad_request", "`id`");
}

#[actix_web::test]
async fn bad_schedules_and_webhook_rules_name_their_field() {
    let app = JobsApp::new().await;
    let service = service_token();
    let client = app.db.client().await;
    client
        .batch_execute("CREATE TABLE public.items (id bigserial PRIMARY KEY, kind text)")
        .await
        .unwrap();
    let schedule = |extra: Value| {
        let mut body = json!({"name": "s", "cron": "*/5 * * * *", "kind": "auth.purge_sessions"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, needle) in [
        (schedule(json!({"cron": "every minute"})), "`cron`"),
        (schedule(json!({"cron": "61 * * * *"})), "`cron`"),
        (
            schedule(json!({"cron": "* * * *"})),
            "`cron`: needs 5 fields",
        ),
        (schedule(json!({"timezone": "Mars/Olympus"})), "`timezone`"),
        (schedule(json!({"kind": "nope"})), "`kind`"),
        (schedule(json!({"max_attempts": 0})), "`max_attempts`"),
        (
            schedule(json!({"payload": {"refresh_token_ttl_seconds": 1}})),
            "`payload.refresh_token_ttl_seconds`",
        ),
        (schedule(json!({"every": "day"})), "unknown field `every`"),
    ] {
        let got = app
            .send("POST", "/api/v1/admin/jobs/schedules", &service, body)
            .await;
        assert_error(&got, 400, "bad_request", needle);
    }
    let got = app
        .send(
            "PATCH",
            "/api/v1/admin/jobs/schedules/00000000-0000-0000-0000-000000000000",
            &service,
            json!({"cron": "bad"}),
        )
        .await;
    assert_error(&got, 404, "not_found", "schedule");

    let rule = |extra: Value| {
        let mut body = json!({"name": "r", "table": "items", "events": ["INSERT"],
                              "url": "https://hooks.example.com/items"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, needle) in [
        (rule(json!({"url": "ftp://hooks.example.com/"})), "`url`"),
        (
            rule(json!({"table": "missing"})),
            "`table`: no table public.missing",
        ),
        (rule(json!({"schema": "jobs", "table": "jobs"})), "`schema`"),
        (rule(json!({"events": ["TRUNCATE"]})), "`events`"),
        (rule(json!({"events": []})), "`events`"),
        (rule(json!({"filter": "nope=eq.1"})), "`filter`"),
        (rule(json!({"max_attempts": 101})), "`max_attempts`"),
        (rule(json!({"headers": {"x": 1}})), "`headers.x`"),
    ] {
        let got = app
            .send("POST", "/api/v1/admin/jobs/webhooks", &service, body)
            .await;
        assert_error(&got, 400, "bad_request", needle);
    }
    let got = app
        .send(
            "POST",
            "/api/v1/admin/jobs/dead-letters/redrive",
            &service,
            json!({}),
        )
        .await;
    assert_error(&got, 400, "bad_request", "missing field `name`");
    let got = app
        .send(
            "POST",
            "/api/v1/admin/jobs/dead-letters/redrive",
            &service,
            json!({"name": ""}),
        )
        .await;
    assert_error(&got, 400, "bad_request", "`name`");
    let listed = app
        .send("GET", "/api/v1/admin/jobs/schedules", &service, Value::Null)
        .await;
    assert_eq!(listed.body, json!([]));
}
