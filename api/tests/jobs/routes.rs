//! The jobs routes in-process (job system not started: jobs stay as submitted): who sees
//! what, submit/get/list/cancel/retry, idempotent submits, the admin routes' guard.

use serde_json::{Value, json};

use super::app::{JobsApp, service_token};
use crate::support::{assert_error, token};

/// An `http` job to a public URL (never delivered: the workers do not run here).
fn http_job(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "http",
        "payload": {"url": "https://hooks.example.com/welcome", "body": {"hello": "wörld"}},
    })
}

/// The names of a listing's jobs.
fn names(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {page}"))
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn users_see_only_their_own_jobs_and_service_keys_see_all() {
    let app = JobsApp::new().await;
    let (alice_id, alice) = app.user("alice@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;

    let created = app
        .send("POST", "/api/v1/jobs", &alice, http_job("welcome"))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let job = &created.body;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.headers.get("location").unwrap(),
        &format!("/api/v1/jobs/{id}")
    );
    assert_eq!(job["status"], "pending");
    assert_eq!(job["kind"], "http");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["owner"], alice_id.as_str());
    assert_eq!(job["created_by"], format!("user:{alice_id}"));
    assert_eq!(job["payload"]["body"]["hello"], "wörld");
    assert_eq!(job["payload_sha256"].as_str().unwrap().len(), 64);

    // An idempotency key: the second submit answers the first job, 200 instead of 201.
    let keyed = json!({"name": "receipt", "kind": "http", "idempotency_key": "order-42",
                       "payload": {"url": "https://hooks.example.com/r"}});
    let first = app
        .send("POST", "/api/v1/jobs", &alice, keyed.clone())
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = app
        .send("POST", "/api/v1/jobs", &alice, keyed.clone())
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    // Another user's submit with that key learns nothing of alice's job.
    let taken = app.send("POST", "/api/v1/jobs", &bob, keyed).await;
    assert_error(&taken, 409, "conflict", "idempotency_key");
    assert!(!taken.body.to_string().contains(first.str("id").as_str()));

    let bobs = app
        .send("POST", "/api/v1/jobs", &bob, http_job("bobs"))
        .await;
    assert_eq!(bobs.status, 201, "{}", bobs.body);

    // Each user lists their own jobs, newest first.
    let mine = app.send("GET", "/api/v1/jobs", &alice, Value::Null).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(names(&mine.body), ["receipt", "welcome"]);
    assert_eq!(mine.body["next_offset"], Value::Null);
    let theirs = app.send("GET", "/api/v1/jobs", &bob, Value::Null).await;
    assert_eq!(names(&theirs.body), ["bobs"]);
    // Another user's job is absent to bob, whatever he tries.
    for (method, path) in [
        ("GET", format!("/api/v1/jobs/{id}")),
        ("POST", format!("/api/v1/jobs/{id}/cancel")),
        ("POST", format!("/api/v1/jobs/{id}/retry")),
    ] {
        let got = app.send(method, &path, &bob, Value::Null).await;
        assert_error(&got, 404, "not_found", "not found");
    }

    // service_role sees everything, filtered and paged.
    let service = service_token();
    let all = app.send("GET", "/api/v1/jobs", &service, Value::Null).await;
    assert_eq!(names(&all.body), ["bobs", "receipt", "welcome"]);
    let page = app
        .send("GET", "/api/v1/jobs?limit=2", &service, Value::Null)
        .await;
    assert_eq!(names(&page.body), ["bobs", "receipt"]);
    assert_eq!(page.body["next_offset"], 2);
    let rest = app
        .send(
            "GET",
            "/api/v1/jobs?limit=2&offset=2",
            &service,
            Value::Null,
        )
        .await;
    assert_eq!(names(&rest.body), ["welcome"]);
    let named = app
        .send("GET", "/api/v1/jobs?name=bobs", &service, Value::Null)
        .await;
    assert_eq!(names(&named.body), ["bobs"]);

    // A real service key (created by service_role) sees all too, and its jobs say so.
    let key = app
        .send(
            "POST",
            "/api/v1/admin/service-keys",
            &service,
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.str("key");
    let by_key = app
        .send("POST", "/api/v1/jobs", &key, http_job("nightly"))
        .await;
    assert_eq!(by_key.status, 201, "{}", by_key.body);
    assert_eq!(by_key.body["created_by"], "service:backend");
    assert_eq!(by_key.body["owner"], Value::Null);
    let seen = app.send("GET", "/api/v1/jobs", &key, Value::Null).await;
    assert_eq!(names(&seen.body).len(), 4);
    // ... and a user does not see it.
    let mine = app.send("GET", "/api/v1/jobs", &alice, Value::Null).await;
    assert_eq!(names(&mine.body), ["receipt", "welcome"]);

    // Cancel, cancel again (409 naming the status), retry, retry again.
    let cancelled = app
        .send(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            &alice,
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.body["finished_at"].is_string());
    let twice = app
        .send(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            &alice,
            Value::Null,
        )
        .await;
    assert_error(&twice, 409, "conflict", "is cancelled");
    let pending = app
        .send("GET", "/api/v1/jobs?status=cancelled", &alice, Value::Null)
        .await;
    assert_eq!(names(&pending.body), ["welcome"]);
    let retried = app
        .send(
            "POST",
            &format!("/api/v1/jobs/{id}/retry"),
            &alice,
            Value::Null,
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["status"], "pending");
    assert_eq!(retried.body["attempts"], 0);
    let pending_again = app
        .send(
            "POST",
            &format!("/api/v1/jobs/{id}/retry"),
            &alice,
            Value::Null,
        )
        .await;
    assert_error(&pending_again, 409, "conflict", "is pending");
}

#[actix_web::test]
async fn who_may_call_the_jobs_routes() {
    let app = JobsApp::new().await;
    let (_, alice) = app.user("alice@example.com").await;

    // Anonymous: 401; the anon API key: 403.
    let anon_key = token(json!({"role": "anon"}));
    for (method, path) in [("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs")] {
        let got = app.send(method, path, "", http_job("x")).await;
        assert_error(&got, 401, "unauthorized", "sign in");
        let got = app.send(method, path, &anon_key, http_job("x")).await;
        assert_error(&got, 403, "forbidden", "user");
    }
    // A bad token says why.
    let got = app
        .send("GET", "/api/v1/jobs", "not-a-token", Value::Null)
        .await;
    assert_eq!(got.status, 401, "{}", got.body);

    // Users may submit `http` jobs only: the server's own kinds are for trusted callers.
    let sql = json!({"name": "x", "kind": "sql", "payload": {"function": "public.f"}});
    let got = app.send("POST", "/api/v1/jobs", &alice, sql.clone()).await;
    assert_error(&got, 403, "forbidden", "sql");
    let purge = json!({"name": "x", "kind": "auth.purge_sessions"});
    let got = app
        .send("POST", "/api/v1/jobs", &alice, purge.clone())
        .await;
    assert_error(&got, 403, "forbidden", "auth.purge_sessions");
    let got = app
        .send("POST", "/api/v1/jobs", &service_token(), purge)
        .await;
    assert_eq!(got.status, 201, "{}", got.body);

    // The admin routes: anonymous 401, users 403, service_role and dashboard admins in.
    let admin = app.admin().await;
    let service = service_token();
    let schedule = json!({"name": "nightly", "cron": "0 3 * * *", "kind": "auth.purge_sessions"});
    let webhook = json!({"name": "w", "table": "users", "schema": "auth", "events": ["INSERT"],
                         "url": "https://hooks.example.com/w"});
    let routes: Vec<(&str, &str, Value)> = vec![
        ("GET", "/api/v1/admin/jobs/dead-letters", Value::Null),
        (
            "POST",
            "/api/v1/admin/jobs/dead-letters/redrive",
            json!({"name": "x"}),
        ),
        (
            "POST",
            "/api/v1/admin/jobs/dead-letters/00000000-0000-0000-0000-000000000000/redrive",
            Value::Null,
        ),
        ("GET", "/api/v1/admin/jobs/schedules", Value::Null),
        ("POST", "/api/v1/admin/jobs/schedules", schedule.clone()),
        ("GET", "/api/v1/admin/jobs/webhooks", Value::Null),
        ("POST", "/api/v1/admin/jobs/webhooks", webhook),
    ];
    for (method, path, body) in &routes {
        let got = app.send(method, path, "", body.clone()).await;
        assert_error(&got, 401, "unauthorized", "admin");
        let got = app.send(method, path, &alice, body.clone()).await;
        assert_error(&got, 403, "forbidden", "admin");
    }
    let got = app
        .send("POST", "/api/v1/admin/jobs/schedules", &admin, schedule)
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    assert!(
        got.body["created_by"]
            .as_str()
            .unwrap()
            .starts_with("admin:"),
        "{}",
        got.body
    );
    let listed = app
        .send("GET", "/api/v1/admin/jobs/schedules", &service, Value::Null)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    // A dashboard admin sees every job too.
    let seen = app.send("GET", "/api/v1/jobs", &admin, Value::Null).await;
    assert_eq!(names(&seen.body), ["x"]);
}

#[actix_web::test]
async fn schedules_and_webhook_rules_have_their_crud() {
    let app = JobsApp::new().await;
    let service = service_token();
    let base = "/api/v1/admin/jobs/schedules";
    let created = app
        .send(
            "POST",
            base,
            &service,
            json!({"name": "report", "cron": "30 9 * * 1-5", "timezone": "Europe/Paris",
                   "kind": "http", "payload": {"url": "https://hooks.example.com/report"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.str("id");
    assert_eq!(created.body["enabled"], true);
    assert!(created.body["next_run_at"].is_string());
    let dup = app
        .send(
            "POST",
            base,
            &service,
            json!({"name": "report", "cron": "* * * * *", "kind": "http",
                   "payload": {"url": "https://hooks.example.com/x"}}),
        )
        .await;
    assert_error(&dup, 409, "conflict", "name");
    let patched = app
        .send(
            "PATCH",
            &format!("{base}/{id}"),
            &service,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["next_run_at"], Value::Null);
    assert_eq!(patched.body["cron"], "30 9 * * 1-5", "absent fields stay");
    let one = app
        .send("GET", &format!("{base}/{id}"), &service, Value::Null)
        .await;
    assert_eq!(one.body, patched.body);
    let deleted = app
        .send("DELETE", &format!("{base}/{id}"), &service, Value::Null)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let gone = app
        .send("GET", &format!("{base}/{id}"), &service, Value::Null)
        .await;
    assert_error(&gone, 404, "not_found", "schedule");

    let base = "/api/v1/admin/jobs/webhooks";
    let client = app.db.client().await;
    client
        .batch_execute("CREATE TABLE public.orders (id bigserial PRIMARY KEY, status text)")
        .await
        .unwrap();
    let rule = json!({"name": "paid-orders", "table": "orders", "events": ["update"],
                      "filter": "status=eq.paid", "url": "https://hooks.example.com/paid",
                      "headers": {"x-tenant": "acme"}});
    let created = app.send("POST", base, &service, rule.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.str("id");
    assert_eq!(created.body["schema"], "public");
    assert_eq!(created.body["events"], json!(["UPDATE"]));
    let mut replaced = rule;
    replaced["events"] = json!(["*"]);
    let put = app
        .send("PUT", &format!("{base}/{id}"), &service, replaced)
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["events"], json!(["DELETE", "INSERT", "UPDATE"]));
    let listed = app.send("GET", base, &service, Value::Null).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let deleted = app
        .send("DELETE", &format!("{base}/{id}"), &service, Value::Null)
        .await;
    assert_eq!(deleted.status, 204);
    let gone = app
        .send("DELETE", &format!("{base}/{id}"), &service, Value::Null)
        .await;
    assert_error(&gone, 404, "not_found", "webhook");
}
