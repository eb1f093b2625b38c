//! A job's life against a real receiver: success with a verifiable signature, retries with
//! backoff into the dead letters, the runbook's SQL redrive, 4xx and 429, cancel and retry,
//! and what users may see.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fluxbase_engine::jobs::{Caller, JobQuery, JobStatus, NewJob};
use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;
use uuid::Uuid;

use super::support::{
    Receiver, Reply, SECRET, await_status, eventually, http_job, service_key, settings, started,
};

#[actix::test]
async fn a_job_succeeds_with_a_signature_the_receiver_can_verify() {
    let db = TestDb::new().await;
    let mut receiver = Receiver::always(200, r#"{"ok":true}"#).await;
    let jobs = started(&db, settings()).await;
    let submitted = jobs
        .submit(
            &service_key(),
            http_job("welcome", &receiver.url, json!({"user": 7})),
        )
        .await
        .unwrap();
    assert!(submitted.created);
    let job = await_status(&jobs, submitted.job.id, JobStatus::Completed).await;
    assert_eq!(job.attempts, 1);
    assert_eq!(job.worker_id, Some(jobs.worker_id()));
    assert_eq!(
        job.result,
        Some(json!({"status": 200, "body": {"ok": true}, "truncated": false}))
    );
    assert!(job.error.is_none() && job.finished_at.is_some());

    let request = receiver.next().await;
    assert_eq!(request.line, "POST /hook HTTP/1.1");
    assert_eq!(request.body, br#"{"user":7}"#);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("x-fluxbase-job-id"),
        Some(job.id.to_string().as_str())
    );
    assert_eq!(request.header("x-fluxbase-attempt"), Some("1"));
    // Verify as a receiver would: HMAC-SHA256 over "timestamp.body" with the shared secret.
    let timestamp = request.header("x-fluxbase-timestamp").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp.parse().unwrap()) < 60);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signed = [timestamp.as_bytes(), b".", &request.body].concat();
    let expected = format!(
        "v1={}",
        hex::encode(ring::hmac::sign(&key, &signed).as_ref())
    );
    assert_eq!(
        request.header("x-fluxbase-signature"),
        Some(expected.as_str())
    );
    jobs.shutdown().await;
}

#[actix::test]
async fn a_failing_job_backs_off_lands_in_failed_and_the_runbook_sql_redrives_it() {
    let db = TestDb::new().await;
    // 500 for the first three requests, then 200.
    let mut receiver = Receiver::start(|n| {
        if n < 3 {
            Reply::Status(500, Vec::new(), "boom".into())
        } else {
            Reply::Status(200, Vec::new(), "{}".into())
        }
    })
    .await;
    let jobs = started(&db, settings()).await;
    let id = jobs
        .submit(&service_key(), http_job("flaky", &receiver.url, json!({})))
        .await
        .unwrap()
        .job
        .id;
    let failed = await_status(&jobs, id, JobStatus::Failed).await;
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.max_attempts, 3);
    assert_eq!(
        failed.error.as_deref(),
        Some("http_status: the receiver answered 500")
    );
    // Backoff: each retry waited at least half its step (base 200 ms, doubling).
    let times: Vec<_> = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ]
    .iter()
    .map(|r| r.at)
    .collect();
    assert!(
        times[1] - times[0] >= Duration::from_millis(100),
        "{times:?}"
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(200),
        "{times:?}"
    );

    // The dead letters show it; the runbook's diagnosis query reads it.
    let dead = jobs
        .dead_letters(&service_key(), &JobQuery::default())
        .await
        .unwrap();
    assert_eq!(dead.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT id, name, attempts, error FROM jobs.jobs WHERE status = 'failed' \
             ORDER BY updated_at DESC LIMIT 20",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), id);

    // The runbook's retry SQL, verbatim but for the id. The safety-net poll is two minutes
    // away: a pick-up within the test's wait was woken by the trigger's NOTIFY.
    client
        .execute(
            "UPDATE jobs.jobs SET status = 'pending', attempts = 0, error = NULL WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let done = await_status(&jobs, id, JobStatus::Completed).await;
    assert_eq!(done.attempts, 1);
    assert_eq!(
        receiver.next().await.header("x-fluxbase-attempt"),
        Some("1")
    );
    jobs.shutdown().await;
}

#[actix::test]
async fn client_errors_fail_at_once_and_429_honours_retry_after() {
    let db = TestDb::new().await;
    let gone = Receiver::always(404, "{}").await;
    let mut busy = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(429, vec![("retry-after", "1".into())], "{}".into())
        } else {
            Reply::Status(200, Vec::new(), "{}".into())
        }
    })
    .await;
    let jobs = started(&db, settings()).await;
    let caller = service_key();
    let a = jobs
        .submit(&caller, http_job("gone", &gone.url, json!({})))
        .await
        .unwrap();
    let b = jobs
        .submit(&caller, http_job("busy", &busy.url, json!({})))
        .await
        .unwrap();
    let a = await_status(&jobs, a.job.id, JobStatus::Failed).await;
    assert_eq!(a.attempts, 1, "a 404 is not retried");
    assert_eq!(
        a.error.as_deref(),
        Some("http_status: the receiver answered 404")
    );
    let b = await_status(&jobs, b.job.id, JobStatus::Completed).await;
    assert_eq!(b.attempts, 2);
    let (first, second) = (busy.next().await, busy.next().await);
    assert!(
        second.at - first.at >= Duration::from_millis(900),
        "Retry-After: 1 was honoured: {:?}",
        second.at - first.at
    );
    jobs.shutdown().await;
}

#[actix::test]
async fn users_see_only_their_own_jobs_and_may_cancel_and_retry_them() {
    let db = TestDb::new().await;
    // Workers with no slots: jobs stay pending while the test looks at them.
    let jobs = started(
        &db,
        fluxbase_engine::jobs::JobsSettings {
            max_concurrent_per_worker: 0,
            ..settings()
        },
    )
    .await;
    let (alice, bob) = (Caller::User(Uuid::new_v4()), Caller::User(Uuid::new_v4()));
    let job = jobs
        .submit(
            &alice,
            http_job("mine", "https://example.com/hook", json!({})),
        )
        .await
        .unwrap()
        .job;
    assert_eq!(job.owner, alice.owner());
    assert_eq!(job.created_by, Some(alice.label()));
    jobs.submit(
        &service_key(),
        http_job("system", "https://example.com/x", json!({})),
    )
    .await
    .unwrap();

    let mine = jobs.list(&alice, &JobQuery::default()).await.unwrap();
    assert_eq!(mine.jobs.len(), 1);
    assert!(
        jobs.list(&bob, &JobQuery::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    assert_eq!(
        jobs.list(&service_key(), &JobQuery::default())
            .await
            .unwrap()
            .jobs
            .len(),
        2
    );
    let by_name = JobQuery {
        name: Some("system".into()),
        status: Some("pending".into()),
        ..JobQuery::default()
    };
    assert_eq!(
        jobs.list(&service_key(), &by_name)
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
    let page = JobQuery {
        limit: Some(1),
        ..JobQuery::default()
    };
    assert_eq!(
        jobs.list(&service_key(), &page).await.unwrap().next_offset,
        Some(1)
    );

    // Bob cannot see, cancel or retry Alice's job: it does not exist for him.
    for err in [
        jobs.get(&bob, job.id).await.unwrap_err(),
        jobs.cancel(&bob, job.id).await.unwrap_err(),
    ] {
        assert_eq!(
            fluxbase_migrations::ErrorCode::code(&err).status(),
            404,
            "{err}"
        );
    }
    // Users may not submit kinds that act with the server's privileges, nor redrive.
    let sql = NewJob {
        name: "x".into(),
        kind: "sql".into(),
        payload: Some(json!({"function": "public.f"})),
        ..NewJob::default()
    };
    assert_eq!(
        fluxbase_migrations::ErrorCode::code(&jobs.submit(&alice, sql).await.unwrap_err()).status(),
        403
    );
    assert!(
        jobs.dead_letters(&alice, &JobQuery::default())
            .await
            .is_err()
    );

    let cancelled = jobs.cancel(&alice, job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let again = jobs.cancel(&alice, job.id).await.unwrap_err();
    assert_eq!(fluxbase_migrations::ErrorCode::code(&again).status(), 409);
    assert!(again.to_string().contains("cancelled"), "{again}");
    let retried = jobs.retry(&alice, job.id).await.unwrap();
    assert_eq!((retried.status, retried.attempts), (JobStatus::Pending, 0));
    // An idempotency key of another user's job is a conflict, not a window onto it.
    let keyed = |key: &str| NewJob {
        idempotency_key: Some(key.into()),
        ..http_job("k", "https://example.com/hook", json!({}))
    };
    jobs.submit(&alice, keyed("alice-key")).await.unwrap();
    let err = jobs.submit(&bob, keyed("alice-key")).await.unwrap_err();
    assert_eq!(fluxbase_migrations::ErrorCode::code(&err).status(), 409);
    jobs.shutdown().await;
}

#[actix::test]
async fn redrive_by_name_requeues_every_dead_letter_of_that_name() {
    let db = TestDb::new().await;
    let receiver = Receiver::always(400, "{}").await;
    let jobs = started(&db, settings()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = jobs
            .submit(&service_key(), http_job("batch", &receiver.url, json!({})))
            .await
            .unwrap()
            .job;
        ids.push(job.id);
    }
    for id in &ids {
        await_status(&jobs, *id, JobStatus::Failed).await;
    }
    jobs.shutdown().await;
    // Not running now: redriven jobs stay pending for the count to be read.
    let count = jobs.redrive_failed(&service_key(), "batch").await.unwrap();
    assert_eq!(count, 3);
    let pending = eventually("the redriven jobs", || async {
        let page = jobs
            .list(
                &service_key(),
                &JobQuery {
                    status: Some("pending".into()),
                    ..JobQuery::default()
                },
            )
            .await
            .unwrap();
        (page.jobs.len() == 3).then_some(page)
    })
    .await;
    assert!(
        pending
            .jobs
            .iter()
            .all(|j| j.attempts == 0 && j.error.is_none())
    );
    let stats = jobs.stats().await;
    assert_eq!(stats.pending, 3);
    assert_eq!(stats.failed_total, 3);
    assert_eq!(stats.workers.local.status, "stopped");
}
