//! Bad input and bad receivers: refused input names its field; private addresses are never
//! reached; a receiver that hangs, answers 10 MB or redirects forever costs one bounded
//! request; a tampered payload fails with `hash_mismatch`.

use std::time::Duration;

use fluxbase_engine::jobs::{Caller, JobStatus, JobsSettings, NewJob, NewSchedule, NewWebhookRule};
use fluxbase_migrations::ErrorCode;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::support::{
    Receiver, Reply, await_status, http_job, service, service_key, settings, started,
};

/// The status and field of a refused submit.
async fn refused(jobs: &fluxbase_engine::jobs::Jobs, job: NewJob) -> (u16, Option<&'static str>) {
    let err = jobs.submit(&service_key(), job).await.unwrap_err();
    (err.code().status(), err.field())
}

#[actix::test]
async fn bad_submits_are_400s_naming_the_field() {
    let db = TestDb::new().await;
    let jobs = service(
        &db,
        JobsSettings {
            max_payload_size: 1024,
            allow_private_urls: false,
            ..settings()
        },
    );
    let ok = || http_job("n", "https://example.com/hook", json!({}));
    let cases: Vec<(NewJob, &str)> = vec![
        (
            NewJob {
                kind: "nope".into(),
                ..ok()
            },
            "kind",
        ),
        (
            NewJob {
                name: String::new(),
                ..ok()
            },
            "name",
        ),
        (
            NewJob {
                payload: Some(json!({"url": "https://example.com", "body": "x".repeat(2000)})),
                ..ok()
            },
            "payload",
        ),
        (
            http_job("n", "ftp://example.com/x", json!({})),
            "payload.url",
        ),
        (
            http_job("n", "javascript:alert(1)", json!({})),
            "payload.url",
        ),
        (
            http_job("n", "http://127.0.0.1:5432/", json!({})),
            "payload.url",
        ),
        (http_job("n", "http://[fd00::1]/", json!({})), "payload.url"),
        (http_job("n", "http://localhost/", json!({})), "payload.url"),
        (
            NewJob {
                payload: Some(json!({"url": "https://example.com", "headers": {"Host": "x"}})),
                ..ok()
            },
            "payload.headers",
        ),
        (
            NewJob {
                payload: Some(json!({"link": "https://example.com"})),
                ..ok()
            },
            "payload",
        ),
        (
            NewJob {
                max_attempts: Some(-1),
                ..ok()
            },
            "max_attempts",
        ),
        (
            NewJob {
                max_attempts: Some(0),
                ..ok()
            },
            "max_attempts",
        ),
        (
            NewJob {
                max_attempts: Some(1_000_000),
                ..ok()
            },
            "max_attempts",
        ),
        (
            NewJob {
                idempotency_key: Some("k".repeat(256)),
                ..ok()
            },
            "idempotency_key",
        ),
        (
            NewJob {
                idempotency_key: Some(String::new()),
                ..ok()
            },
            "idempotency_key",
        ),
        (
            NewJob {
                delay_seconds: Some(-5),
                ..ok()
            },
            "delay_seconds",
        ),
        (
            NewJob {
                kind: "sql".into(),
                payload: Some(json!({"function": "a.b.c"})),
                ..ok()
            },
            "payload.function",
        ),
    ];
    for (job, field) in cases {
        let (status, got) = refused(&jobs, job).await;
        assert_eq!((status, got), (400, Some(field)));
    }
    // A key of exactly 255 bytes is fine.
    let edge = NewJob {
        idempotency_key: Some("k".repeat(255)),
        ..ok()
    };
    assert!(jobs.submit(&service_key(), edge).await.unwrap().created);

    let admin = Caller::Admin("root".into());
    let schedule = |cron: &str, zone: Option<&str>| NewSchedule {
        name: "s".into(),
        cron: cron.into(),
        timezone: zone.map(String::from),
        kind: "auth.purge_sessions".into(),
        ..NewSchedule::default()
    };
    for (s, field) in [
        (schedule("* * * *", None), "cron"),
        (schedule("every day", None), "cron"),
        (schedule("0 25 * * *", None), "cron"),
        (schedule("0 9 * * *", Some("Atlantis/Capital")), "timezone"),
    ] {
        let err = jobs.create_schedule(&admin, s).await.unwrap_err();
        assert_eq!((err.code().status(), err.field()), (400, Some(field)));
    }
    let rule = |table: &str, events: &[&str], filter: Option<&str>, url: &str| NewWebhookRule {
        name: "r".into(),
        table: table.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        filter: filter.map(String::from),
        url: url.into(),
        ..NewWebhookRule::default()
    };
    db.client()
        .await
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        .await
        .unwrap();
    for (r, field) in [
        (rule("missing", &["INSERT"], None, "https://e.com"), "table"),
        (rule("orders", &["UPSERT"], None, "https://e.com"), "events"),
        (rule("orders", &[], None, "https://e.com"), "events"),
        (
            rule("orders", &["INSERT"], Some("nope=eq.1"), "https://e.com"),
            "filter",
        ),
        (
            rule("orders", &["INSERT"], Some("status=like"), "https://e.com"),
            "filter",
        ),
        (rule("orders", &["INSERT"], None, "gopher://e.com"), "url"),
        (
            rule("orders", &["INSERT"], None, "http://169.254.169.254/"),
            "url",
        ),
    ] {
        let err = jobs.create_webhook(&admin, r).await.unwrap_err();
        assert_eq!((err.code().status(), err.field()), (400, Some(field)));
    }
    let mut on_jobs = rule("jobs", &["INSERT"], None, "https://e.com");
    on_jobs.schema = Some("jobs".into());
    assert_eq!(
        jobs.create_webhook(&admin, on_jobs)
            .await
            .unwrap_err()
            .field(),
        Some("schema")
    );
}

#[actix::test]
async fn private_addresses_are_never_reached_even_when_stored_by_sql() {
    let db = TestDb::new().await;
    let receiver = Receiver::always(200, "{}").await;
    // A job written straight into the table skips the submit check: the worker checks again.
    let client = db.client().await;
    let payload = json!({"url": receiver.url, "body": {}});
    let id: uuid::Uuid = client
        .query_one(
            "INSERT INTO jobs.jobs (name, kind, payload, payload_sha256) \
             VALUES ('sneaky', 'http', $1::jsonb, \
                     encode(sha256(convert_to($1::jsonb::text, 'UTF8')), 'hex')) RETURNING id",
            &[&payload],
        )
        .await
        .unwrap()
        .get(0);
    let jobs = started(
        &db,
        JobsSettings {
            allow_private_urls: false,
            ..settings()
        },
    )
    .await;
    let job = await_status(&jobs, id, JobStatus::Failed).await;
    assert_eq!(job.attempts, 1, "refused addresses are not retried");
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .starts_with("private_address: "),
        "{:?}",
        job.error
    );
    assert_eq!(receiver.received(), 0, "nothing reached the receiver");
    jobs.shutdown().await;
}

#[actix::test]
async fn hanging_huge_and_redirecting_receivers_cost_one_bounded_request() {
    let db = TestDb::new().await;
    let hanging = Receiver::start(|_| Reply::Hang).await;
    let huge = Receiver::start(|_| Reply::Huge(10 * 1024 * 1024)).await;
    let looping = Receiver::start(|_| Reply::RedirectToSelf).await;
    let jobs = started(
        &db,
        JobsSettings {
            http_timeout: Duration::from_secs(1),
            ..settings()
        },
    )
    .await;
    let once = |name: &str, url: &str| NewJob {
        max_attempts: Some(1),
        ..http_job(name, url, json!({}))
    };
    let caller = service_key();
    let a = jobs
        .submit(&caller, once("hang", &hanging.url))
        .await
        .unwrap()
        .job
        .id;
    let b = jobs
        .submit(&caller, once("huge", &huge.url))
        .await
        .unwrap()
        .job
        .id;
    let c = jobs
        .submit(&caller, once("loop", &looping.url))
        .await
        .unwrap()
        .job
        .id;

    let a = await_status(&jobs, a, JobStatus::Failed).await;
    assert!(
        a.error.as_deref().unwrap().starts_with("timeout: "),
        "{:?}",
        a.error
    );
    let took = a
        .finished_at
        .unwrap()
        .duration_since(a.started_at.unwrap())
        .unwrap();
    assert!(
        took < Duration::from_secs(5),
        "bounded by the timeout: {took:?}"
    );

    let b = await_status(&jobs, b, JobStatus::Completed).await;
    let result = b.result.unwrap();
    assert_eq!(result["truncated"], json!(true));
    assert_eq!(result["body"].as_str().unwrap().len(), 64 * 1024);

    let c = await_status(&jobs, c, JobStatus::Failed).await;
    assert!(
        c.error.as_deref().unwrap().starts_with("redirect: "),
        "{:?}",
        c.error
    );
    assert_eq!(looping.received(), 1, "the redirect was not followed");
    assert_eq!(hanging.received(), 1);
    jobs.shutdown().await;
}

#[actix::test]
async fn a_tampered_payload_fails_with_hash_mismatch_without_retry() {
    let db = TestDb::new().await;
    let receiver = Receiver::always(200, "{}").await;
    let jobs = service(&db, settings());
    let id = jobs
        .submit(
            &service_key(),
            http_job("t", &receiver.url, json!({"amount": 10})),
        )
        .await
        .unwrap()
        .job
        .id;
    db.client()
        .await
        .execute(
            "UPDATE jobs.jobs SET payload = jsonb_set(payload, '{body,amount}', '1000') \
             WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    jobs.start().await.unwrap();
    let job = await_status(&jobs, id, JobStatus::Failed).await;
    assert_eq!(job.attempts, 1);
    assert!(
        job.error.as_deref().unwrap().starts_with("hash_mismatch: "),
        "{:?}",
        job.error
    );
    assert_eq!(receiver.received(), 0);
    jobs.shutdown().await;
}

#[actix::test]
async fn concurrent_submits_with_100_keys_make_exactly_100_jobs() {
    let db = TestDb::new().await;
    let jobs = service(&db, settings());
    let submits = (0..1000).map(|i| {
        let jobs = jobs.clone();
        async move {
            let job = NewJob {
                idempotency_key: Some(format!("key-{}", i % 100)),
                ..http_job("idem", "https://example.com/hook", json!({"i": i % 100}))
            };
            let submitted = jobs.submit(&service_key(), job).await.unwrap();
            (i % 100, submitted.job.id, submitted.created)
        }
    });
    let results = futures_util::future::join_all(submits).await;
    assert_eq!(
        results.iter().filter(|(_, _, created)| *created).count(),
        100
    );
    for key in 0..100 {
        let ids: std::collections::HashSet<_> = results
            .iter()
            .filter(|(k, _, _)| *k == key)
            .map(|(_, id, _)| *id)
            .collect();
        assert_eq!(ids.len(), 1, "every submit of key-{key} got the same job");
    }
    let count: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM jobs.jobs WHERE name = 'idem'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 100);
}
