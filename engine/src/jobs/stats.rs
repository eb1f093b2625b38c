//! What operators see of the jobs: the Prometheus metrics (`fluxbase_jobs_*`, present from
//! the first scrape), the `.jobs` object of `/api/v1/monitoring/metrics` (with `.jobs.workers`,
//! the runbook's `jq '.jobs.workers'`), and the `jobs` component of the health endpoint.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

use super::Jobs;
use super::handler::FailureReason;

/// Counters of this instance, mirrored into the Prometheus counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    schedule_fires: AtomicU64,
}

impl Counters {
    /// Registers every jobs metric at zero, so each exists from the first scrape.
    pub fn register() {
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
    /// Publishes the gauges.
    pub fn publish(&self) {
        metrics::gauge!("fluxbase_jobs_pending").set(self.pending as f64);
        metrics::gauge!("fluxbase_jobs_running").set(self.running as f64);
        metrics::gauge!("fluxbase_jobs_workers").set(self.active_workers as f64);
    }
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
    /// This instance's worker.
    pub local: LocalWorker,
}

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
pub(crate) fn stats(counters: &Counters, counts: Counts, local: LocalWorker) -> JobsStats {
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
            local,
        },
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
        stats(&s.counters, counts, self.local_worker())
    }

    fn local_worker(&self) -> LocalWorker {
        let s = &self.shared;
        LocalWorker {
            id: s.worker_id,
            hostname: s.settings.hostname.clone(),
            status: if !s.started.load(Ordering::Acquire) {
                "not_started"
            } else if s.is_draining() {
                "stopped"
            } else {
                "active"
            },
            concurrency: s.settings.max_concurrent_per_worker,
            running: s.running_count(),
            last_heartbeat_seconds_ago: s.last_beat().map(|at| at.elapsed().as_secs_f64()),
        }
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
