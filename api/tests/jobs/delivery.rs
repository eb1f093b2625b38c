//! Jobs that run, in-process with the job system started as the server starts it: an
//! `http` job delivered signed to a real local receiver; failures landing in the dead
//! letters; the runbook's SQL, the admin redrives and a user's retry running them again.

use fluxbase_engine::jobs::http::sign;
use serde_json::{Value, json};

use super::app::{JobsApp, SIGNING_SECRET, eventually, service_token};
use super::receiver::{Answer, Receiver};

/// An `http` job to `url`.
fn http_job(name: &str, url: &str, max_attempts: i64) -> Value {
    json!({"name": name, "kind": "http", "max_attempts": max_attempts,
           "payload": {"url": url, "body": {"job": name}}})
}

/// A receiver failing (500) the first `failures` requests, then answering 200.
async fn failing_first(failures: usize) -> Receiver {
    Receiver::start(move |n| {
        if n < failures {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    })
    .await
}

/// Submits `body` as `token` → the job's id.
async fn submit(app: &JobsApp, token: &str, body: Value) -> String {
    let reply = app.send("POST", "/api/v1/jobs", token, body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.str("id")
}

#[actix_web::test]
async fn an_http_job_is_delivered_signed_to_a_real_receiver() {
    let app = JobsApp::started().await;
    let (_, user) = app.user("dana@example.com").await;
    let mut receiver = Receiver::always(200).await;
    let id = submit(&app, &user, http_job("notify", &receiver.url, 3)).await;

    let got = receiver.next().await;
    assert_eq!(got.body, br#"{"job":"notify"}"#);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("x-fluxbase-job-id"), Some(id.as_str()));
    assert_eq!(got.header("x-fluxbase-attempt"), Some("1"));
    // The receiver verifies the signature with the server's signing secret.
    let ts: u64 = got.header("x-fluxbase-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        got.header("x-fluxbase-signature"),
        Some(sign(SIGNING_SECRET.as_bytes(), ts, &got.body).as_str())
    );

    let done = app.await_status(&id, "completed").await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["result"]["status"], 200, "{done}");
    assert!(done["finished_at"].is_string());
    assert_eq!(done["worker_id"], json!(app.jobs.worker_id()));
    // The user sees the outcome of their own job.
    let mine = app
        .send("GET", &format!("/api/v1/jobs/{id}"), &user, Value::Null)
        .await;
    assert_eq!(mine.body["status"], "completed");
    app.jobs.shutdown().await;
}

#[actix_web::test]
async fn failures_land_in_the_dead_letters_and_are_run_again() {
    let app = JobsApp::started().await;
    let service = service_token();
    let client = app.db.client().await;

    // Two attempts, two 500s: a dead letter with the last error.
    let first = failing_first(2).await;
    let id = submit(&app, &service, http_job("invoice", &first.url, 2)).await;
    let dead = app.await_status(&id, "failed").await;
    assert_eq!(dead["attempts"], 2);
    assert!(
        dead["error"].as_str().unwrap().starts_with("http_status: "),
        "{dead}"
    );
    assert_eq!(first.received(), 2, "retried once, with backoff");
    let letters = app
        .send(
            "GET",
            "/api/v1/admin/jobs/dead-letters",
            &service,
            Value::Null,
        )
        .await;
    assert_eq!(letters.status, 200, "{}", letters.body);
    assert_eq!(letters.body["jobs"][0]["id"], id.as_str());
    // The runbook's diagnosis query reads it.
    let row = client
        .query_one(
            "SELECT id::text, attempts, error FROM jobs.jobs WHERE status = 'failed' \
             ORDER BY updated_at DESC LIMIT 20",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), id);

    // The runbook's retry SQL, verbatim but for the id. The safety-net poll is two minutes
    // away (jobs.poll_interval): a pick-up within the wait was woken by the trigger's NOTIFY.
    client
        .execute(
            "UPDATE jobs.jobs SET status = 'pending', attempts = 0, error = NULL \
             WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let done = app.await_status(&id, "completed").await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["error"], Value::Null);
    assert_eq!(first.received(), 3);

    // Every dead letter of a name, redriven by the admin route.
    let second = failing_first(2).await;
    let a = submit(&app, &service, http_job("sync", &second.url, 1)).await;
    let b = submit(&app, &service, http_job("sync", &second.url, 1)).await;
    app.await_status(&a, "failed").await;
    app.await_status(&b, "failed").await;
    let redriven = app
        .send(
            "POST",
            "/api/v1/admin/jobs/dead-letters/redrive",
            &service,
            json!({"name": "sync"}),
        )
        .await;
    assert_eq!(redriven.status, 200, "{}", redriven.body);
    assert_eq!(redriven.body, json!({"name": "sync", "redriven": 2}));
    app.await_status(&a, "completed").await;
    app.await_status(&b, "completed").await;

    // One dead letter by id; a job that is not one is a conflict.
    let third = failing_first(1).await;
    let c = submit(&app, &service, http_job("single", &third.url, 1)).await;
    app.await_status(&c, "failed").await;
    let path = format!("/api/v1/admin/jobs/dead-letters/{c}/redrive");
    let again = app.send("POST", &path, &service, Value::Null).await;
    assert_eq!(again.status, 200, "{}", again.body);
    app.await_status(&c, "completed").await;
    let not_dead = app.send("POST", &path, &service, Value::Null).await;
    assert_eq!(not_dead.status, 409, "{}", not_dead.body);

    // A user retries their own failed job.
    let (_, user) = app.user("erin@example.com").await;
    let fourth = failing_first(1).await;
    let d = submit(&app, &user, http_job("mine", &fourth.url, 1)).await;
    app.await_status(&d, "failed").await;
    let retried = app
        .send(
            "POST",
            &format!("/api/v1/jobs/{d}/retry"),
            &user,
            Value::Null,
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    app.await_status(&d, "completed").await;
    app.jobs.shutdown().await;
}

#[actix_web::test]
async fn a_running_job_is_cancelled_and_the_metrics_json_shows_the_worker() {
    let app = JobsApp::started().await;
    let service = service_token();
    let mut receiver = Receiver::start(|_| Answer::Hang).await;
    let id = submit(&app, &service, http_job("stuck", &receiver.url, 3)).await;
    receiver.next().await;
    app.await_status(&id, "running").await;
    eventually("the job to run here", || async {
        (app.jobs.running() == 1).then_some(())
    })
    .await;
    let cancelled = app
        .send(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            &service,
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    eventually("the worker to stop the job", || async {
        (app.jobs.running() == 0).then_some(())
    })
    .await;

    // `.jobs` of the metrics JSON and the `jobs` component of health.
    let metrics = app
        .send("GET", "/api/v1/monitoring/metrics", "", Value::Null)
        .await;
    assert_eq!(metrics.status, 200);
    let workers = &metrics.body["jobs"]["workers"];
    assert_eq!(workers["active"], 1, "{}", metrics.body);
    assert_eq!(workers["local"]["id"], json!(app.jobs.worker_id()));
    assert_eq!(workers["local"]["status"], "active");
    assert_eq!(workers["local"]["concurrency"], 5);
    assert_eq!(workers["instances"][0]["id"], json!(app.jobs.worker_id()));
    let health = app
        .send("GET", "/api/v1/monitoring/health", "", Value::Null)
        .await;
    assert_eq!(health.body["components"]["jobs"]["status"], "healthy");
    assert_eq!(health.body["status"], "healthy", "{}", health.body);

    app.jobs.shutdown().await;
    let health = app
        .send("GET", "/api/v1/monitoring/health", "", Value::Null)
        .await;
    assert_eq!(health.body["components"]["jobs"]["status"], "stopped");
    let metrics = app
        .send("GET", "/api/v1/monitoring/metrics", "", Value::Null)
        .await;
    assert_eq!(metrics.body["jobs"]["workers"]["active"], 0);
    assert_eq!(
        metrics.body["jobs"]["workers"]["local"]["status"],
        "stopped"
    );
}
