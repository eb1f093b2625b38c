//! Durable background jobs: a queue in PostgreSQL (`jobs.jobs`), workers in every server
//! process sharing it safely, retries with backoff and jitter, dead letters, idempotent
//! submits, payload integrity, recurring schedules, and database webhooks fed by the
//! replication stream.
//!
//! [`Jobs`] is the service: the HTTP layer calls it (submit, list, get, cancel, retry; dead
//! letters, redrive, schedules and webhook rules for admins) with a [`Caller`] that decides
//! what is visible. [`Jobs::start`] (inside an actix `System`) starts three supervised actors
//! per instance: the worker pool ([`runner`]), the heartbeat and lease reaper
//! ([`heartbeat`]) and the [`scheduler`]. [`Jobs::webhooks`] is the component the replication
//! consumer calls with each transaction before acknowledging it.
//!
//! Delivery is at least once: a run whose worker dies is run again after its lease; handlers
//! (and `http` receivers, through `X-Fluxbase-Job-Id`) should be idempotent.

pub mod address;
mod error;
pub mod handler;
mod heartbeat;
pub mod http;
mod instance;
mod job;
pub mod purge;
mod queue;
mod rules;
mod runner;
mod schedule;
mod scheduler;
mod settings;
pub mod sql;
mod stats;
mod webhook;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Supervisor;
use fluxbase_migrations::Db;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::supervise::Supervision;

pub use error::JobError;
pub use handler::{FailureReason, JobFailure, JobHandler, JobRun, Registry, Retry, RunResult};
pub use job::{Caller, Job, JobPage, JobQuery, JobStatus, NewJob, Submitted};
pub use queue::backoff;
pub use rules::{NewWebhookRule, WebhookRule};
pub use runner::{CONFIG_CHANNEL, JOBS_CHANNEL};
pub use schedule::{CronSpec, NewSchedule, Schedule, SchedulePatch};
pub use settings::{
    JobsSettings, MAX_ATTEMPTS_LIMIT, MAX_IDEMPOTENCY_KEY, SIGNING_SECRET_CONTEXT,
    derive_signing_secret,
};
pub use stats::{
    ActiveWorker, JobsHealth, JobsHealthStatus, JobsStats, LocalWorker, MAX_LISTED_WORKERS,
    WorkersStats,
};
pub use webhook::Webhooks;

use heartbeat::{Heartbeat, StopBeating};
use instance::{Actors, Shared};
use job::JOB_COLUMNS;
use runner::{Runner, Stop, Wake};
use scheduler::{Scheduler, StopScheduling, Tick};
use stats::Counters;

/// Longest delay a submit may ask for: a year.
const MAX_DELAY_SECONDS: i64 = 366 * 24 * 3600;

/// A submit's kind, payload and attempts, checked.
struct Work {
    payload: Value,
    max_attempts: i32,
}

/// Checks a name (of a job, schedule or rule), naming `field`.
fn check_name(name: &str, field: &'static str) -> Result<(), JobError> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(JobError::invalid(field, "must be 1 to 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(JobError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks `max_attempts` (default 3).
fn check_max_attempts(value: Option<i64>) -> Result<i32, JobError> {
    match value {
        None => Ok(settings::DEFAULT_MAX_ATTEMPTS),
        Some(n) if (1..=i64::from(MAX_ATTEMPTS_LIMIT)).contains(&n) => Ok(n as i32),
        Some(n) => Err(JobError::invalid(
            "max_attempts",
            format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {n}"),
        )),
    }
}

/// The jobs service; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Jobs {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("worker_id", &self.shared.worker_id)
            .field("kinds", &self.shared.registry)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// The service over `db` (and `pg`, for its LISTEN connection), with the `http`, `sql`
    /// and `auth.purge_sessions` kinds registered. Nothing runs until [`Jobs::start`].
    pub fn new(
        db: Db,
        pg: tokio_postgres::Config,
        settings: JobsSettings,
        supervision: Supervision,
    ) -> Result<Jobs, JobError> {
        settings.validate().map_err(JobError::Config)?;
        let registry = Registry::default();
        let http = http::HttpHandler::new(
            &settings.signing_secret,
            settings.allow_private_urls,
            settings.http_timeout,
            settings.http_max_response_size,
            settings.backoff_max,
        )
        .map_err(|err| JobError::Config(format!("building the HTTP client: {err}")))?;
        registry.register(Arc::new(http));
        registry.register(Arc::new(sql::SqlHandler::new(
            db.clone(),
            settings.sql_timeout,
        )));
        registry.register(Arc::new(purge::PurgeSessions::new(db.clone())));
        for name in [Runner::NAME, Heartbeat::NAME, Scheduler::NAME] {
            supervision.register(name);
        }
        Counters::register();
        let webhooks = Webhooks::new(db.clone(), settings.max_payload_size);
        Ok(Jobs {
            shared: Arc::new(Shared {
                pg,
                settings,
                registry,
                supervision,
                worker_id: Uuid::new_v4(),
                running: Mutex::default(),
                idle: Notify::new(),
                started: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                beats: tokio::sync::Mutex::new(false),
                claims: AtomicUsize::new(0),
                shutdown: watch::channel(false).0,
                actors: Mutex::default(),
                webhooks,
                counters: Counters::default(),
                counts: Mutex::default(),
                last_beat: Mutex::default(),
                db,
            }),
        })
    }

    /// Adds (or replaces) the handler of a kind: the server registers `storage.sweep` here.
    pub fn register(&self, handler: Arc<dyn JobHandler>) {
        self.shared.registry.register(handler);
    }

    /// Every registered kind.
    pub fn kinds(&self) -> Vec<String> {
        self.shared.registry.kinds()
    }

    /// This instance's id in `jobs.workers`.
    pub fn worker_id(&self) -> Uuid {
        self.shared.worker_id
    }

    /// The settings in force.
    pub fn settings(&self) -> &JobsSettings {
        &self.shared.settings
    }

    /// The database-webhook component, for the replication consumer.
    pub fn webhooks(&self) -> Webhooks {
        self.shared.webhooks.clone()
    }

    /// Registers this worker in `jobs.workers` and starts the worker pool, the heartbeat and
    /// the scheduler under supervision. Must run inside an actix `System`. Idempotent.
    pub async fn start(&self) -> Result<(), JobError> {
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let s = &self.shared;
        queue::heartbeat(
            &s.db,
            s.worker_id,
            &s.settings.hostname,
            s.settings.max_concurrent_per_worker as i32,
            s.settings.lease,
            &[],
        )
        .await?;
        s.beat_at(Instant::now());
        Counters::register_kinds(&s.registry.kinds());
        s.refresh_counts().await?;
        let (a, b, c) = (s.clone(), s.clone(), s.clone());
        let runner = Supervisor::start(move |_| Runner::new(a));
        let heartbeat = Supervisor::start(move |_| Heartbeat::new(b));
        let scheduler = Supervisor::start(move |_| Scheduler::new(c));
        *s.actors() = Actors {
            runner: Some(runner),
            heartbeat: Some(heartbeat),
            scheduler: Some(scheduler),
        };
        tracing::info!(
            worker_id = %s.worker_id,
            concurrency = s.settings.max_concurrent_per_worker,
            "job workers started"
        );
        Ok(())
    }

    /// Graceful shutdown: stop claiming and scheduling, let running jobs finish within
    /// `jobs.shutdown_timeout`, put the rest back in the queue, mark the worker stopped.
    pub async fn shutdown(&self) {
        let s = &self.shared;
        if !s.started.load(Ordering::Acquire) || s.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        let deadline = tokio::time::Instant::now() + s.settings.shutdown_timeout;
        loop {
            let ended = s.idle.notified();
            // A claim in flight has jobs that are `running` in the table but not yet here:
            // wait for it too, or they would be left `running` with no one running them.
            if s.running_count() == 0 && !s.claim_in_flight() {
                break;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        // No beat from here on (one in flight finishes first): nothing marks the worker
        // active again once it is marked stopped below.
        *s.beats.lock().await = true;
        let left = s.running_ids();
        if !left.is_empty() {
            s.abort(&left);
            match queue::release(&s.db, s.worker_id, &left).await {
                Ok(n) => tracing::warn!(jobs = n, "jobs still running at shutdown were put back"),
                Err(err) => {
                    tracing::warn!(error = %err, "could not put running jobs back; their leases will")
                }
            }
        }
        if let Err(err) = queue::stop_worker(&s.db, s.worker_id).await {
            tracing::warn!(error = %err, "could not mark the worker stopped");
        }
        let actors = std::mem::take(&mut *s.actors());
        if let Some(a) = actors.runner {
            a.do_send(Stop);
        }
        if let Some(a) = actors.heartbeat {
            a.do_send(StopBeating);
        }
        if let Some(a) = actors.scheduler {
            a.do_send(StopScheduling);
        }
        let _ = s.shutdown.send(true);
        for name in [Runner::NAME, Heartbeat::NAME, Scheduler::NAME] {
            s.supervision.stopped(name);
        }
        stats::publish_local(&s.local_worker());
        tracing::info!(worker_id = %s.worker_id, "job workers stopped");
    }

    /// Checks a kind, payload and `max_attempts` for `caller`.
    fn check_work(
        &self,
        kind: &str,
        payload: Option<Value>,
        max_attempts: Option<i64>,
        caller: &Caller,
    ) -> Result<Work, JobError> {
        let handler = self.shared.registry.require(kind, "kind")?;
        if !caller.sees_all() && !handler.open_to_users() {
            return Err(JobError::Forbidden(format!(
                "kind {kind:?} may only be submitted with a service key or by an admin"
            )));
        }
        let payload = payload.unwrap_or_else(|| Value::Object(Default::default()));
        let size = serde_json::to_vec(&payload).map_or(usize::MAX, |b| b.len());
        let max = self.shared.settings.max_payload_size;
        if size > max {
            return Err(JobError::invalid(
                "payload",
                format!("is {size} bytes; the limit (jobs.max_payload_size) is {max}"),
            ));
        }
        handler.validate(&payload)?;
        Ok(Work {
            payload,
            max_attempts: check_max_attempts(max_attempts)?,
        })
    }

    /// Submits a job. With an `idempotency_key` that exists, returns that job (`created:
    /// false`) and never makes a second one, however many submit it at once.
    pub async fn submit(&self, caller: &Caller, new: NewJob) -> Result<Submitted, JobError> {
        check_name(&new.name, "name")?;
        let work = self.check_work(&new.kind, new.payload, new.max_attempts, caller)?;
        if let Some(key) = &new.idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY)
        {
            return Err(JobError::invalid(
                "idempotency_key",
                format!(
                    "must be 1 to {MAX_IDEMPOTENCY_KEY} bytes, got {}",
                    key.len()
                ),
            ));
        }
        let delay = new.delay_seconds.unwrap_or(0);
        if !(0..=MAX_DELAY_SECONDS).contains(&delay) {
            return Err(JobError::invalid(
                "delay_seconds",
                format!("must be between 0 and {MAX_DELAY_SECONDS}, got {delay}"),
            ));
        }
        let insert = queue::Insert {
            name: new.name,
            kind: new.kind,
            payload: work.payload,
            idempotency_key: new.idempotency_key,
            max_attempts: work.max_attempts,
            priority: new.priority.unwrap_or(0),
            delay: Duration::from_secs(delay as u64),
            owner: caller.owner(),
            created_by: caller.label(),
        };
        let (job, created) = queue::insert(&self.shared.db, &insert).await?;
        // A user must not learn another submitter's job through its key.
        if !created && !caller.sees_all() && job.owner != caller.owner() {
            return Err(JobError::Conflict(
                "idempotency_key: this key is already used by another submitter".into(),
            ));
        }
        Ok(Submitted { job, created })
    }

    /// One job the caller may see.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Job, JobError> {
        let owner = (!caller.sees_all()).then(|| caller.owner()).flatten();
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs.jobs \
                     WHERE id = $1 AND ($2::uuid IS NULL OR owner = $2)"
                ),
                &[&id, &owner],
            )
            .await?;
        rows.first()
            .map(Job::from_row)
            .unwrap_or_else(|| Err(JobError::not_found("job", id)))
    }

    /// A page of the jobs the caller may see, newest first, by status and name.
    pub async fn list(&self, caller: &Caller, query: &JobQuery) -> Result<JobPage, JobError> {
        let status = query
            .status
            .as_deref()
            .map(JobStatus::parse)
            .transpose()?
            .map(JobStatus::as_str);
        self.page(caller, status, query, "created_at DESC, id DESC")
            .await
    }

    /// The dead letters (failed jobs), last failed first; service keys and admins only.
    pub async fn dead_letters(
        &self,
        caller: &Caller,
        query: &JobQuery,
    ) -> Result<JobPage, JobError> {
        caller.require_all()?;
        self.page(caller, Some("failed"), query, "updated_at DESC, id DESC")
            .await
    }

    async fn page(
        &self,
        caller: &Caller,
        status: Option<&str>,
        query: &JobQuery,
        order: &'static str,
    ) -> Result<JobPage, JobError> {
        let (limit, offset) = query.page()?;
        let owner = (!caller.sees_all()).then(|| caller.owner()).flatten();
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs.jobs \
                     WHERE ($1::uuid IS NULL OR owner = $1) AND ($2::text IS NULL OR status = $2) \
                       AND ($3::text IS NULL OR name = $3) \
                     ORDER BY {order} LIMIT $4 OFFSET $5"
                ),
                &[&owner, &status, &query.name, &(limit + 1), &offset],
            )
            .await?;
        let more = rows.len() as i64 > limit;
        let jobs = rows
            .iter()
            .take(limit as usize)
            .map(Job::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JobPage {
            jobs,
            next_offset: more.then_some(offset + limit),
        })
    }

    /// Cancels a pending or running job (a running one is stopped on its worker).
    pub async fn cancel(&self, caller: &Caller, id: Uuid) -> Result<Job, JobError> {
        let job = self
            .transition(
                caller,
                id,
                "status = 'cancelled', finished_at = now(), lease_expires_at = NULL",
                &["pending", "running"],
            )
            .await?;
        // Running here: stop it now (elsewhere, that worker's next heartbeat stops it).
        if self.shared.abort(&[id]) > 0
            && let Some(runner) = self.shared.runner()
        {
            runner.do_send(Wake);
        }
        Ok(job)
    }

    /// Runs a failed or cancelled job again, from attempt 1.
    pub async fn retry(&self, caller: &Caller, id: Uuid) -> Result<Job, JobError> {
        self.transition(caller, id, REQUEUE, &["failed", "cancelled"])
            .await
    }

    /// Redrives one dead letter (service keys and admins).
    pub async fn redrive(&self, caller: &Caller, id: Uuid) -> Result<Job, JobError> {
        caller.require_all()?;
        self.transition(caller, id, REQUEUE, &["failed"]).await
    }

    /// Redrives every dead letter named `name`; returns how many.
    pub async fn redrive_failed(&self, caller: &Caller, name: &str) -> Result<u64, JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "UPDATE jobs.jobs SET {REQUEUE}, updated_at = now() \
                     WHERE name = $1 AND status = 'failed' RETURNING 1"
                ),
                &[&name],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// Moves a visible job from one of `from` by `set`; not found, or a conflict naming its
    /// status.
    async fn transition(
        &self,
        caller: &Caller,
        id: Uuid,
        set: &str,
        from: &[&str],
    ) -> Result<Job, JobError> {
        let owner = (!caller.sees_all()).then(|| caller.owner()).flatten();
        let from: Vec<&str> = from.to_vec();
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "UPDATE jobs.jobs SET {set}, updated_at = now() \
                     WHERE id = $1 AND ($2::uuid IS NULL OR owner = $2) AND status = ANY($3) \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[&id, &owner, &from],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Job::from_row(row);
        }
        let job = self.get(caller, id).await?;
        Err(JobError::Conflict(format!(
            "job {id} is {}; this needs one that is {}",
            job.status.as_str(),
            from.join(" or ")
        )))
    }

    /// Schedule ticks this instance fired (tests compare instances).
    pub fn schedule_fires(&self) -> u64 {
        self.shared.counters.schedule_fires()
    }

    /// Jobs this instance runs now.
    pub fn running(&self) -> usize {
        self.shared.running_count()
    }

    /// Wakes the scheduler now.
    pub fn poke_scheduler(&self) {
        if let Some(scheduler) = self.shared.scheduler() {
            scheduler.do_send(Tick);
        }
    }
}

/// The `SET` of a redrive: what the runbook's SQL does, and the run's traces cleared.
const REQUEUE: &str = "status = 'pending', attempts = 0, error = NULL, result = NULL, \
     scheduled_at = now(), started_at = NULL, finished_at = NULL, lease_expires_at = NULL";
