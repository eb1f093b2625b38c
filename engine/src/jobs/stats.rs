//! What operators see of the jobs: the Prometheus metrics (`fluxbase_jobs_*`, present from
//! the first scrape), the `.jobs` object of `/api/v1/monitoring/metrics` (with `.jobs.workers`,
//! the runbook's `jq '.jobs.workers'`), and the `jobs` component of the health endpoint.
//!
//! `fluxbase_jobs_pending` is the queue's (every instance reports the same number: the
//! dashboards take its `max`); `fluxbase_jobs_running` and `fluxbase_jobs_workers` are this
//! instance's (the dashboards and the "no worker" alert `sum` them over instances).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::job::rfc3339;

use super::Jobs;
use super::handler::FailureReason;
use super::instance::Shared;

/// Counters of this instance, mirrored into the Prometheus counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    schedule_fires: AtomicU64,
}

impl Counters {
    /// Registers every jobs metric at zero, so each exists from the first scrape (the
    /// duration histogram per kind: [`Counters::register_kinds`]).
    pub fn register() {
        describe();
        metrics::gauge!("fluxbase_jobs_pending").set(0.0);
        metrics::gauge!("fluxbase_jobs_running").set(0.0);
        metrics::gauge!("fluxbase_jobs_workers").set(0.0);
        metrics::counter!("fluxbase_jobs_completed_total").increment(0);
        for reason in FailureReason::ALL {
            metrics::counter!("fluxbase_jobs_failed_total", "reason" => reason.as_str())
                .increment(0);
            metrics::counter!("fluxbase_jobs_retries_total", "reason" => reason.as_str())
                .increment(0);
        }
        metrics::counter!("fluxbase_jobs_schedule_fires_total").increment(0);
        metrics::counter!("fluxbase_jobs_webhooks_enqueued_total").increment(0);
    }

    /// Registers the duration histogram of each kind (at start, once every handler is
    /// registered), so `fluxbase_jobs_duration_seconds` exists before the first job ends.
    pub fn register_kinds(kinds: &[String]) {
        for kind in kinds {
            let _ = metrics::histogram!("fluxbase_jobs_duration_seconds", "kind" => kind.clone());
        }
    }

    /// A job completed.
    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("fluxbase_jobs_completed_total").increment(1);
    }

    /// A job failed for good (a dead letter).
    pub fn failed(&self, reason: FailureReason) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("fluxbase_jobs_failed_total", "reason" => reason.as_str()).increment(1);
    }

    /// A run failed and the job will be tried again.
    pub fn retried(&self, reason: FailureReason) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("fluxbase_jobs_retries_total", "reason" => reason.as_str()).increment(1);
    }

    /// This instance fired a schedule's tick.
    pub fn schedule_fired(&self) {
        self.schedule_fires.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("fluxbase_jobs_schedule_fires_total").increment(1);
    }

    /// Ticks this instance fired.
    pub fn schedule_fires(&self) -> u64 {
        self.schedule_fires.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.completed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
        )
    }
}

/// The queue counts last read from the database (every heartbeat, and on demand).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub pending: i64,
    pub running: i64,
    pub active_workers: i64,
}

impl Counts {
    /// Publishes the queue's gauge (the same on every instance).
    pub fn publish(&self) {
        metrics::gauge!("fluxbase_jobs_pending").set(self.pending as f64);
    }
}

/// Publishes this instance's gauges: the jobs it runs, and whether its worker runs jobs.
pub(crate) fn publish_local(local: &LocalWorker) {
    metrics::gauge!("fluxbase_jobs_running").set(local.running as f64);
    let working = local.status == "active" && local.concurrency > 0;
    metrics::gauge!("fluxbase_jobs_workers").set(if working { 1.0 } else { 0.0 });
}

/// Help texts of the jobs metrics.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "fluxbase_jobs_pending",
        "Jobs waiting in the queue (the whole queue: the same on every instance)"
    );
    describe_gauge!("fluxbase_jobs_running", "Jobs this instance runs now");
    describe_gauge!(
        "fluxbase_jobs_workers",
        "1 while this instance's job worker is active (sum over instances: workers)"
    );
    describe_counter!(
        "fluxbase_jobs_completed_total",
        "Jobs this instance completed"
    );
    describe_counter!(
        "fluxbase_jobs_failed_total",
        "Jobs this instance failed for good (dead letters), by reason"
    );
    describe_counter!(
        "fluxbase_jobs_retries_total",
        "Runs this instance failed and queued again, by reason"
    );
    describe_histogram!(
        "fluxbase_jobs_duration_seconds",
        metrics::Unit::Seconds,
        "Run time of one attempt, by kind"
    );
    describe_counter!(
        "fluxbase_jobs_schedule_fires_total",
        "Schedule ticks this instance fired"
    );
    describe_counter!(
        "fluxbase_jobs_webhooks_enqueued_total",
        "Webhook jobs enqueued from the replication stream"
    );
}

/// `.jobs` of `/api/v1/monitoring/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct JobsStats {
    /// Jobs waiting, across all instances.
    pub pending: i64,
    /// Jobs running, across all instances.
    pub running: i64,
    /// Jobs this instance completed since it started.
    pub completed_total: u64,
    /// Jobs this instance failed for good since it started.
    pub failed_total: u64,
    /// Runs this instance failed and queued again.
    pub retries_total: u64,
    /// Schedule ticks this instance fired.
    pub schedule_fires_total: u64,
    /// The workers (`jq '.jobs.workers'`).
    pub workers: WorkersStats,
}

/// `.jobs.workers`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersStats {
    /// Instances whose row in `jobs.workers` is `active`.
    pub active: i64,
    /// Those rows (the runbook's `SELECT * FROM jobs.workers WHERE status = 'active'`),
    /// oldest first, at most [`MAX_LISTED_WORKERS`].
    pub instances: Vec<ActiveWorker>,
    /// This instance's worker.
    pub local: LocalWorker,
}

/// Most rows listed in `.jobs.workers.instances` (`active` counts them all).
pub const MAX_LISTED_WORKERS: i64 = 100;

/// One active row of `jobs.workers`, as `.jobs.workers.instances[]`.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveWorker {
    /// Its `jobs.workers.id`.
    pub id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// Its `jobs.max_concurrent_per_worker`.
    pub concurrency: i32,
    /// When it started.
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    /// Its last heartbeat.
    #[serde(with = "rfc3339")]
    pub last_heartbeat_at: SystemTime,
}

impl ActiveWorker {
    /// A row selected with [`ACTIVE_WORKERS_SQL`].
    fn from_row(row: &Row) -> Result<ActiveWorker, tokio_postgres::Error> {
        Ok(ActiveWorker {
            id: row.try_get(0)?,
            hostname: row.try_get(1)?,
            concurrency: row.try_get(2)?,
            started_at: row.try_get(3)?,
            last_heartbeat_at: row.try_get(4)?,
        })
    }
}

/// The active workers, oldest first.
const ACTIVE_WORKERS_SQL: &str = "SELECT id, hostname, concurrency, started_at, last_heartbeat_at \
     FROM jobs.workers WHERE status = 'active' ORDER BY started_at, id LIMIT $1";

/// This instance's worker, as `.jobs.workers.local`.
#[derive(Debug, Clone, Serialize)]
pub struct LocalWorker {
    /// Its `jobs.workers.id`.
    pub id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// `active`, `stopped` (after shutdown) or `not_started`.
    pub status: &'static str,
    /// `jobs.max_concurrent_per_worker`.
    pub concurrency: usize,
    /// Jobs it runs now.
    pub running: usize,
    /// Seconds since its last heartbeat reached the database.
    pub last_heartbeat_seconds_ago: Option<f64>,
}

/// Health of the jobs component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobsHealthStatus {
    /// Started, every actor running, heart-beating.
    Healthy,
    /// An actor is restarting, or heartbeats do not reach the database.
    Degraded,
    /// Not started, or stopped.
    Stopped,
}

/// The `jobs` component of `/api/v1/monitoring/health`.
#[derive(Debug, Clone, Serialize)]
pub struct JobsHealth {
    /// The verdict.
    pub status: JobsHealthStatus,
    /// Why, when not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Jobs this instance runs now.
    pub running: usize,
    /// Seconds since the last heartbeat reached the database.
    pub last_heartbeat_seconds_ago: Option<f64>,
}

/// Builds [`JobsStats`] from the parts.
pub(crate) fn stats(
    counters: &Counters,
    counts: Counts,
    instances: Vec<ActiveWorker>,
    local: LocalWorker,
) -> JobsStats {
    let (completed, failed, retried) = counters.snapshot();
    JobsStats {
        pending: counts.pending,
        running: counts.running,
        completed_total: completed,
        failed_total: failed,
        retries_total: retried,
        schedule_fires_total: counters.schedule_fires(),
        workers: WorkersStats {
            active: counts.active_workers,
            instances,
            local,
        },
    }
}

impl Shared {
    /// This instance's worker as it is now.
    pub(crate) fn local_worker(&self) -> LocalWorker {
        LocalWorker {
            id: self.worker_id,
            hostname: self.settings.hostname.clone(),
            status: if !self.started.load(Ordering::Acquire) {
                "not_started"
            } else if self.is_draining() {
                "stopped"
            } else {
                "active"
            },
            concurrency: self.settings.max_concurrent_per_worker,
            running: self.running_count(),
            last_heartbeat_seconds_ago: self.last_beat().map(|at| at.elapsed().as_secs_f64()),
        }
    }
}

impl Jobs {
    /// `.jobs` of `/api/v1/monitoring/metrics` (counts read now; the last ones if the
    /// database does not answer).
    pub async fn stats(&self) -> JobsStats {
        let s = &self.shared;
        let counts = match s.refresh_counts().await {
            Ok(counts) => counts,
            Err(err) => {
                tracing::debug!(error = %err, "reading job counts failed; showing the last ones");
                *s.counts.lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        let instances = match s.db.query(ACTIVE_WORKERS_SQL, &[&MAX_LISTED_WORKERS]).await {
            Ok(rows) => rows
                .iter()
                .filter_map(|row| ActiveWorker::from_row(row).ok())
                .collect(),
            Err(err) => {
                tracing::debug!(error = %err, "reading the active workers failed");
                Vec::new()
            }
        };
        let local = self.local_worker();
        publish_local(&local);
        stats(&s.counters, counts, instances, local)
    }

    /// Publishes the gauges from what this instance knows now, without a query (the
    /// queue's count is the last heartbeat's): called before each Prometheus scrape.
    pub fn publish_gauges(&self) {
        let s = &self.shared;
        s.counts.lock().unwrap_or_else(|e| e.into_inner()).publish();
        publish_local(&s.local_worker());
    }

    fn local_worker(&self) -> LocalWorker {
        self.shared.local_worker()
    }

    /// The `jobs` component of the health endpoint.
    pub fn health(&self) -> JobsHealth {
        let s = &self.shared;
        let local = self.local_worker();
        let (status, message) = if local.status != "active" {
            (
                JobsHealthStatus::Stopped,
                Some(format!("workers {}", local.status)),
            )
        } else {
            let down: Vec<_> = s
                .supervision
                .not_running()
                .into_iter()
                .filter(|name| name.starts_with("jobs."))
                .collect();
            let stale = local
                .last_heartbeat_seconds_ago
                .is_none_or(|ago| ago > s.settings.lease.as_secs_f64());
            if !down.is_empty() {
                (
                    JobsHealthStatus::Degraded,
                    Some(format!("restarting: {}", down.join(", "))),
                )
            } else if stale {
                (
                    JobsHealthStatus::Degraded,
                    Some("heartbeats do not reach the database".into()),
                )
            } else {
                (JobsHealthStatus::Healthy, None)
            }
        };
        JobsHealth {
            status,
            message,
            running: local.running,
            last_heartbeat_seconds_ago: local.last_heartbeat_seconds_ago,
        }
    }
}
