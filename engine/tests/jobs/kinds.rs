//! The `sql` kind and the built-in `auth.purge_sessions`, and handlers registered from
//! outside (as the server registers `storage.sweep`).

use std::sync::Arc;

use fluxbase_engine::jobs::{
    FailureReason, JobFailure, JobHandler, JobRun, JobStatus, NewJob, RunResult,
};
use fluxbase_migrations::test_utils::TestDb;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::support::{await_status, service_key, settings, started};

#[actix::test]
async fn sql_jobs_call_a_catalog_function_as_service_role() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE ledger (n int, who text);
             CREATE FUNCTION public.bump(args jsonb) RETURNS jsonb LANGUAGE sql AS $$
               INSERT INTO ledger VALUES ((args->>'n')::int, current_user);
               SELECT jsonb_build_object('n', (args->>'n')::int * 2, 'as', current_user::text)
             $$;
             CREATE FUNCTION public.fails(args jsonb) RETURNS void LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'not today'; END
             $$;
             GRANT ALL ON ledger TO service_role;",
        )
        .await
        .unwrap();
    let jobs = started(&db, settings()).await;
    let sql = |function: &str, attempts| NewJob {
        name: "sql".into(),
        kind: "sql".into(),
        payload: Some(json!({"function": function, "args": {"n": 21}})),
        max_attempts: Some(attempts),
        ..NewJob::default()
    };
    let ok = jobs
        .submit(&service_key(), sql("public.bump", 1))
        .await
        .unwrap()
        .job
        .id;
    // A name with SQL in it is only ever a bind parameter of the catalog lookup.
    let evil = jobs
        .submit(
            &service_key(),
            sql("public.bump(null); DROP TABLE ledger; --", 1),
        )
        .await
        .unwrap()
        .job
        .id;
    let raises = jobs
        .submit(&service_key(), sql("fails", 2))
        .await
        .unwrap()
        .job
        .id;

    let done = await_status(&jobs, ok, JobStatus::Completed).await;
    assert_eq!(done.result, Some(json!({"n": 42, "as": "service_role"})));
    let evil = await_status(&jobs, evil, JobStatus::Failed).await;
    assert_eq!(evil.attempts, 1);
    assert!(
        evil.error
            .as_deref()
            .unwrap()
            .starts_with("sql_error: no function"),
        "{:?}",
        evil.error
    );
    let raised = await_status(&jobs, raises, JobStatus::Failed).await;
    assert_eq!(raised.attempts, 2, "a raised exception is retried");
    assert_eq!(raised.error.as_deref(), Some("sql_error: P0001: not today"));
    let row = db
        .client()
        .await
        .query_one("SELECT count(*), min(who) FROM ledger", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        1,
        "the table is still there, written once"
    );
    assert_eq!(row.get::<_, String>(1), "service_role");
    jobs.shutdown().await;
}

#[actix::test]
async fn purge_sessions_deletes_sessions_that_can_never_be_used_again() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO auth.users (id, email) VALUES
               ('00000000-0000-0000-0000-000000000001', 'a@example.com');
             -- past its not_after
             INSERT INTO auth.sessions (id, user_id, not_after) VALUES
               ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001',
                now() - interval '1 minute');
             -- old, and its only token is older than the TTL
             INSERT INTO auth.sessions (id, user_id, created_at) VALUES
               ('10000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001',
                now() - interval '2 days');
             INSERT INTO auth.refresh_tokens (session_id, token_hash, created_at) VALUES
               ('10000000-0000-0000-0000-000000000002', 'h2', now() - interval '2 days');
             -- old but refreshed recently: kept, its old rotated token purged
             INSERT INTO auth.sessions (id, user_id, created_at) VALUES
               ('10000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000001',
                now() - interval '2 days');
             INSERT INTO auth.refresh_tokens (session_id, token_hash, revoked, created_at) VALUES
               ('10000000-0000-0000-0000-000000000003', 'h3a', true, now() - interval '2 days'),
               ('10000000-0000-0000-0000-000000000003', 'h3b', false, now());
             -- fresh
             INSERT INTO auth.sessions (id, user_id) VALUES
               ('10000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-000000000001');",
        )
        .await
        .unwrap();
    let jobs = started(&db, settings()).await;
    let id = jobs
        .submit(
            &service_key(),
            NewJob {
                name: "purge".into(),
                kind: "auth.purge_sessions".into(),
                payload: Some(json!({"refresh_token_ttl_seconds": 86400})),
                ..NewJob::default()
            },
        )
        .await
        .unwrap()
        .job
        .id;
    let job = await_status(&jobs, id, JobStatus::Completed).await;
    assert_eq!(
        job.result,
        Some(json!({"sessions_deleted": 2, "refresh_tokens_deleted": 1}))
    );
    let left: Vec<String> = client
        .query("SELECT id::text FROM auth.sessions ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        [
            "10000000-0000-0000-0000-000000000003",
            "10000000-0000-0000-0000-000000000004"
        ]
    );
    let tokens: Vec<String> = client
        .query("SELECT token_hash FROM auth.refresh_tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tokens, ["h3b"]);
    jobs.shutdown().await;
}

/// A handler registered from outside the engine, as `storage.sweep` is.
struct Sweep;

impl JobHandler for Sweep {
    fn kind(&self) -> &str {
        "storage.sweep"
    }

    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(async move {
            if job.payload["panic"] == json!(true) {
                panic!("sweeper bug");
            }
            if job.attempt < 2 {
                return Err(JobFailure::retry(FailureReason::Handler, "bucket busy"));
            }
            Ok(Some(json!({"swept": 3, "attempt": job.attempt})))
        })
    }
}

#[actix::test]
async fn registered_handlers_run_and_a_panicking_one_is_caught() {
    let db = TestDb::new().await;
    let jobs = started(&db, settings()).await;
    jobs.register(Arc::new(Sweep));
    assert!(jobs.kinds().contains(&"storage.sweep".to_string()));
    let submit = |payload| NewJob {
        name: "sweep".into(),
        kind: "storage.sweep".into(),
        payload: Some(payload),
        max_attempts: Some(2),
        ..NewJob::default()
    };
    let ok = jobs
        .submit(&service_key(), submit(json!({})))
        .await
        .unwrap()
        .job
        .id;
    let bad = jobs
        .submit(&service_key(), submit(json!({"panic": true})))
        .await
        .unwrap()
        .job
        .id;
    let ok = await_status(&jobs, ok, JobStatus::Completed).await;
    assert_eq!(ok.result, Some(json!({"swept": 3, "attempt": 2})));
    let bad = await_status(&jobs, bad, JobStatus::Failed).await;
    assert_eq!(bad.error.as_deref(), Some("panic: sweeper bug"));
    // The worker pool survived the panic: another job still runs.
    let after = jobs
        .submit(&service_key(), submit(json!({})))
        .await
        .unwrap()
        .job
        .id;
    await_status(&jobs, after, JobStatus::Completed).await;
    assert_eq!(
        jobs.health().status,
        fluxbase_engine::jobs::JobsHealthStatus::Healthy
    );
    jobs.shutdown().await;
}
