//! Leases and shutdown within one process: a job longer than its lease keeps it through
//! heartbeats; a graceful shutdown lets running jobs finish within its bound, puts back
//! what is still running after it, and marks the worker stopped.

use std::sync::Arc;
use std::time::Duration;

use fluxbase_engine::jobs::{
    JobHandler, JobRun, JobStatus, JobsHealthStatus, JobsSettings, NewJob, RunResult,
};
use fluxbase_migrations::test_utils::TestDb;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::support::{await_status, service_key, settings, started};

/// `test.sleep`: sleeps `payload.ms`.
struct Sleep;

impl JobHandler for Sleep {
    fn kind(&self) -> &str {
        "test.sleep"
    }

    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(async move {
            let ms = job.payload["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Some(json!({"slept": ms})))
        })
    }
}

fn sleep(ms: u64) -> NewJob {
    NewJob {
        name: format!("sleep-{ms}"),
        kind: "test.sleep".into(),
        payload: Some(json!({"ms": ms})),
        ..NewJob::default()
    }
}

#[actix::test]
async fn a_job_longer_than_its_lease_keeps_it_through_heartbeats() {
    let db = TestDb::new().await;
    let jobs = started(&db, settings()).await; // lease 2 s, heartbeat 250 ms
    jobs.register(Arc::new(Sleep));
    let id = jobs
        .submit(&service_key(), sleep(5000))
        .await
        .unwrap()
        .job
        .id;
    let done = await_status(&jobs, id, JobStatus::Completed).await;
    assert_eq!(done.attempts, 1, "never re-queued while its worker beat");
    assert!(done.error.is_none());
    let stats = jobs.stats().await;
    assert_eq!(stats.completed_total, 1);
    assert_eq!(stats.workers.active, 1);
    assert_eq!(stats.workers.local.id, jobs.worker_id());
    assert_eq!(stats.workers.local.status, "active");
    assert_eq!(jobs.health().status, JobsHealthStatus::Healthy);
    jobs.shutdown().await;
}

#[actix::test]
async fn shutdown_lets_short_jobs_finish_and_puts_long_ones_back() {
    let db = TestDb::new().await;
    let jobs = started(
        &db,
        JobsSettings {
            shutdown_timeout: Duration::from_secs(10),
            ..settings()
        },
    )
    .await;
    jobs.register(Arc::new(Sleep));
    let short = jobs
        .submit(&service_key(), sleep(500))
        .await
        .unwrap()
        .job
        .id;
    let long = jobs
        .submit(&service_key(), sleep(60_000))
        .await
        .unwrap()
        .job
        .id;
    // `running` in the table can come before the runner tracks the jobs (its claim is
    // still in flight): shutdown must wait for that claim, not see nothing running.
    await_status(&jobs, short, JobStatus::Running).await;
    await_status(&jobs, long, JobStatus::Running).await;
    jobs.shutdown().await;

    let caller = service_key();
    let short = jobs.get(&caller, short).await.unwrap();
    assert_eq!(
        short.status,
        JobStatus::Completed,
        "finished within the bound"
    );
    let long = jobs.get(&caller, long).await.unwrap();
    assert_eq!(
        long.status,
        JobStatus::Pending,
        "put back for another worker"
    );
    assert_eq!(long.attempts, 0, "the interrupted run does not count");
    let status: String = db
        .client()
        .await
        .query_one(
            "SELECT status FROM jobs.workers WHERE id = $1",
            &[&jobs.worker_id()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "stopped");
    assert_eq!(jobs.health().status, JobsHealthStatus::Stopped);
    assert_eq!(jobs.running(), 0);
    jobs.cancel(&caller, long.id).await.unwrap();
    // Stopped means stopped: a new job waits for another instance.
    let later = jobs.submit(&service_key(), sleep(0)).await.unwrap().job.id;
    let fresh = started(&db, settings()).await;
    fresh.register(Arc::new(Sleep));
    let later = await_status(&fresh, later, JobStatus::Completed).await;
    assert_eq!(later.worker_id, Some(fresh.worker_id()));
    fresh.shutdown().await;
}
