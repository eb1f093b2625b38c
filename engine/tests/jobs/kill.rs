//! Several processes share the queue: a worker process killed with SIGKILL in the middle of
//! a job has that job finished by another process once its lease passes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use fluxbase_engine::jobs::{JobHandler, JobRun, JobStatus, NewJob, RunResult};
use fluxbase_migrations::test_utils::TestDb;
use futures_util::future::BoxFuture;
use serde_json::json;
use uuid::Uuid;

use super::support::{await_status, eventually, service, service_key, settings};

/// A worker process, killed when dropped (a failing test leaves none behind).
struct WorkerProcess {
    child: Child,
    id: Uuid,
}

impl WorkerProcess {
    /// Starts `jobs-test-worker` on `db` and waits for its `ready <id>` line.
    async fn start(db: &TestDb) -> WorkerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobs-test-worker"))
            .args([db.url(), "2000".into()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jobs-test-worker");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .unwrap()
        .expect("read the worker's first line");
        let id = line
            .strip_prefix("ready ")
            .and_then(|id| id.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        WorkerProcess { child, id }
    }

    /// SIGKILL, and reap it.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's side of `test.sleep`: known to the submitting service, run only by the
/// worker processes.
struct SleepKind;

impl JobHandler for SleepKind {
    fn kind(&self) -> &str {
        "test.sleep"
    }

    fn run<'a>(&'a self, _: &'a JobRun) -> BoxFuture<'a, RunResult> {
        unreachable!("this process runs no workers")
    }
}

#[actix::test]
async fn a_worker_process_killed_mid_job_has_its_job_finished_by_another() {
    let db = TestDb::new().await;
    let mut first = WorkerProcess::start(&db).await;
    let mut second = WorkerProcess::start(&db).await;
    let jobs = service(&db, settings());
    jobs.register(Arc::new(SleepKind));
    let id = jobs
        .submit(
            &service_key(),
            NewJob {
                name: "long".into(),
                kind: "test.sleep".into(),
                payload: Some(json!({"ms": 3000})),
                ..NewJob::default()
            },
        )
        .await
        .unwrap()
        .job
        .id;
    let running = await_status(&jobs, id, JobStatus::Running).await;
    let holder = running.worker_id.unwrap();
    let (victim, survivor) = if holder == first.id {
        (&mut first, &mut second)
    } else {
        assert_eq!(holder, second.id, "a worker process holds the job");
        (&mut second, &mut first)
    };
    victim.kill();

    let done = await_status(&jobs, id, JobStatus::Completed).await;
    assert_eq!(done.worker_id, Some(survivor.id));
    assert_eq!(done.attempts, 2, "the killed run counted as an attempt");
    assert_eq!(
        done.result,
        Some(json!({"worker": survivor.id, "attempt": 2}))
    );
    // The killed process's row is marked stopped once its heartbeats are overdue; the
    // survivor's stays active (the runbook's `WHERE status = 'active'`).
    let client = db.client().await;
    let victim_id = victim.id;
    eventually("the killed worker to be marked stopped", || async {
        let row = client
            .query_one(
                "SELECT status FROM jobs.workers WHERE id = $1",
                &[&victim_id],
            )
            .await
            .unwrap();
        (row.get::<_, String>(0) == "stopped").then_some(())
    })
    .await;
    let active: Vec<Uuid> = client
        .query("SELECT id FROM jobs.workers WHERE status = 'active'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(active, vec![survivor.id]);
}
