//! The state one server process shares between the jobs service and its actors: the
//! jobs it runs now, its actors' addresses, the counters and the last counts read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::Addr;
use fluxbase_migrations::Db;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::handler::Registry;
use super::heartbeat::Heartbeat;
use super::queue;
use super::runner::{self, Runner};
use super::scheduler::Scheduler;
use super::settings::JobsSettings;
use super::stats::{Counters, Counts};
use super::webhook::Webhooks;
use crate::supervise::Supervision;

/// A job this instance runs now.
#[derive(Debug)]
pub(super) struct RunningJob {
    /// The run it is (a later run of the same job replaces it).
    pub(super) attempt: i32,
    /// Stops its task (cancelled, lease lost, shutdown).
    pub(super) abort: AbortHandle,
}

/// The addresses of this instance's actors (dropped at shutdown, so they stop for good).
#[derive(Default)]
pub(super) struct Actors {
    /// The worker pool.
    pub(super) runner: Option<Addr<Runner>>,
    /// The heartbeat and lease reaper.
    pub(super) heartbeat: Option<Addr<Heartbeat>>,
    /// The scheduler.
    pub(super) scheduler: Option<Addr<Scheduler>>,
}

/// What the service and its actors share.
pub(crate) struct Shared {
    /// The pool every statement runs on.
    pub(super) db: Db,
    /// For the LISTEN connection.
    pub(super) pg: tokio_postgres::Config,
    /// `jobs.*`.
    pub(super) settings: JobsSettings,
    /// The handlers by kind.
    pub(super) registry: Registry,
    /// Health and restarts of the actors.
    pub(super) supervision: Supervision,
    /// This instance's row in `jobs.workers`.
    pub(super) worker_id: Uuid,
    /// A std lock: held only to add, remove or list, never across `.await`.
    pub(super) running: Mutex<HashMap<Uuid, RunningJob>>,
    /// Signalled whenever a job of this instance ends (shutdown waits on it).
    pub(super) idle: Notify,
    /// `start` ran.
    pub(super) started: AtomicBool,
    /// `shutdown` began: claim and schedule nothing more.
    pub(super) draining: AtomicBool,
    /// Held by each heartbeat for its whole beat; `true` once shutdown marked the worker
    /// stopped, after which no beat runs — a beat in flight could otherwise land after the
    /// `stopped` mark and set the worker `active` again.
    pub(super) beats: tokio::sync::Mutex<bool>,
    /// Claims sent and not yet turned into tracked jobs (see [`ClaimInFlight`]).
    pub(super) claims: AtomicUsize,
    /// Stops the LISTEN connection.
    pub(super) shutdown: watch::Sender<bool>,
    /// A std lock: held only to clone or take an address.
    pub(super) actors: Mutex<Actors>,
    /// The webhook component (its rule cache is invalidated on NOTIFY).
    pub(super) webhooks: Webhooks,
    /// This instance's counters.
    pub(super) counters: Counters,
    /// A std lock: held only to copy or replace the counts.
    pub(super) counts: Mutex<Counts>,
    /// A std lock: the last heartbeat that reached the database.
    pub(super) last_beat: Mutex<Option<Instant>>,
}

impl Shared {
    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether a claim is between the table and [`Shared::track`].
    pub(super) fn claim_in_flight(&self) -> bool {
        self.claims.load(Ordering::Acquire) > 0
    }

    pub(super) fn running(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RunningJob>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn running_count(&self) -> usize {
        self.running().len()
    }

    pub(super) fn running_ids(&self) -> Vec<Uuid> {
        self.running().keys().copied().collect()
    }

    /// Records a job this instance started.
    pub(super) fn track(&self, id: Uuid, attempt: i32, abort: AbortHandle) {
        self.running().insert(id, RunningJob { attempt, abort });
    }

    /// Forgets a job that ended (only its own run: a later run of the same job stays).
    pub(super) fn untrack(&self, id: Uuid, attempt: i32) {
        {
            let mut running = self.running();
            if running.get(&id).is_some_and(|r| r.attempt == attempt) {
                running.remove(&id);
            }
        }
        self.idle.notify_waiters();
    }

    /// Stops the given running jobs; returns how many were running here.
    pub(super) fn abort(&self, ids: &[Uuid]) -> usize {
        let stopped = {
            let mut running = self.running();
            ids.iter()
                .filter_map(|id| running.remove(id))
                .map(|job| job.abort.abort())
                .count()
        };
        self.idle.notify_waiters();
        stopped
    }

    /// The `kind` label of a metric: registered kinds only, so its values stay bounded.
    pub(super) fn kind_label(&self, kind: &str) -> String {
        if self.registry.get(kind).is_some() {
            kind.to_string()
        } else {
            "unknown".to_string()
        }
    }

    pub(super) fn actors(&self) -> std::sync::MutexGuard<'_, Actors> {
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn runner(&self) -> Option<Addr<Runner>> {
        self.actors().runner.clone()
    }

    pub(super) fn scheduler(&self) -> Option<Addr<Scheduler>> {
        self.actors().scheduler.clone()
    }

    /// Schedules or webhook rules changed (or may have, after a lost connection).
    pub(super) fn config_changed(&self) {
        self.webhooks.invalidate();
        runner::poke_scheduler(self);
    }

    pub(super) fn beat_at(&self, at: Instant) {
        *self.last_beat.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    pub(super) fn last_beat(&self) -> Option<Instant> {
        *self.last_beat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the queue counts and publishes the gauges.
    pub(super) async fn refresh_counts(&self) -> Result<Counts, fluxbase_migrations::DbError> {
        let (pending, running, active_workers) = queue::counts(&self.db).await?;
        let counts = Counts {
            pending,
            running,
            active_workers,
        };
        counts.publish();
        super::stats::publish_local(&self.local_worker());
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
        Ok(counts)
    }
}

/// A claim between the table and [`Shared::track`]: its jobs are `running` in `jobs.jobs`
/// before this instance knows them, so shutdown waits for it to end (dropping it, once the
/// claimed jobs are tracked or the claim failed, wakes shutdown's wait).
pub(super) struct ClaimInFlight(Arc<Shared>);

impl ClaimInFlight {
    pub(super) fn new(shared: Arc<Shared>) -> ClaimInFlight {
        shared.claims.fetch_add(1, Ordering::AcqRel);
        ClaimInFlight(shared)
    }
}

impl Drop for ClaimInFlight {
    fn drop(&mut self) {
        self.0.claims.fetch_sub(1, Ordering::AcqRel);
        self.0.idle.notify_waiters();
    }
}
