//! A job-worker process for the jobs tests (not shipped): runs the jobs service of the
//! engine against a database until it is killed, so a test can SIGKILL the process holding
//! a job and watch another process finish it after the lease.
//!
//! `jobs-test-worker <database-url> [lease-ms]` registers the kind `test.sleep`
//! (`{"ms": N}`: sleeps, then returns which worker ran it), starts the service and prints
//! `ready <worker-id>` once its row is in `jobs.workers`.

use std::sync::Arc;
use std::time::Duration;

use fluxbase_engine::jobs::{JobHandler, JobRun, Jobs, JobsSettings, RunResult};
use fluxbase_engine::supervise::Supervision;
use fluxbase_migrations::pool::parse_url;
use fluxbase_migrations::{Db, PoolSettings};
use futures_util::future::BoxFuture;
use serde_json::json;
use uuid::Uuid;

/// `test.sleep`: sleeps `payload.ms`, then names the worker that ran it.
struct Sleep {
    worker: Uuid,
}

impl JobHandler for Sleep {
    fn kind(&self) -> &str {
        "test.sleep"
    }

    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(async move {
            let ms = job.payload["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Some(json!({"worker": self.worker, "attempt": job.attempt})))
        })
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: jobs-test-worker <database-url> [lease-ms]");
    let lease = Duration::from_millis(args.next().map_or(2000, |a| a.parse().expect("lease-ms")));
    actix::System::new().block_on(async move {
        let pg = parse_url(&url).expect("a database URL");
        let pool = PoolSettings {
            max_connections: 5,
            min_connections: 0,
            ..PoolSettings::default()
        };
        let settings = JobsSettings {
            signing_secret: "jobs-test-worker-secret".into(),
            lease,
            heartbeat_interval: lease / 4,
            poll_interval: Duration::from_secs(120),
            ..JobsSettings::default()
        };
        let db = Db::new(pg.clone(), pool);
        let jobs = Jobs::new(db, pg, settings, Supervision::default()).expect("valid settings");
        jobs.register(Arc::new(Sleep {
            worker: jobs.worker_id(),
        }));
        jobs.start().await.expect("jobs start");
        println!("ready {}", jobs.worker_id());
        std::future::pending::<()>().await;
    });
}
