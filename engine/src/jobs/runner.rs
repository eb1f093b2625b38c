//! The worker pool of one instance, as a supervised actor: it claims due jobs (up to
//! `jobs.max_concurrent_per_worker` at once) when woken — by a NOTIFY on `fluxbase_jobs`,
//! by a job of its own finishing, by a timer set to the next due job, or by the safety-net
//! poll — and runs each on the arbiter as its own task, so a restart of the actor never
//! interrupts a running job. It also owns the instance's LISTEN connection, and passes
//! schedule and webhook-rule changes (`fluxbase_jobs_config`) on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use fluxbase_migrations::listen::{ListenEvent, ListenOptions, Listener};
use fluxbase_migrations::tls::MakeRustlsConnect;
use serde_json::Value;

use super::Shared;
use super::handler::{FailureReason, JobFailure, JobRun, Retry, RunResult};
use super::instance::ClaimInFlight;
use super::queue::{self, AfterFailure, Claimed};
use super::scheduler::Tick;
use crate::supervise;

/// Channel of the NOTIFY sent when a job becomes pending.
pub const JOBS_CHANNEL: &str = "fluxbase_jobs";
/// Channel of the NOTIFY sent when schedules or webhook rules change.
pub const CONFIG_CHANNEL: &str = "fluxbase_jobs_config";

/// How soon to look again when due jobs exist but none could be claimed (all locked).
const CONTENDED_RETRY: Duration = Duration::from_millis(100);

/// The worker pool actor.
pub(crate) struct Runner {
    shared: Arc<Shared>,
    /// A claim is in flight.
    claiming: bool,
    /// Woken while claiming: claim again when it returns.
    again: bool,
    /// The wake-up timer (next due job, or the safety-net poll).
    timer: Option<SpawnHandle>,
}

impl Runner {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "jobs.runner";

    pub(crate) fn new(shared: Arc<Shared>) -> Runner {
        Runner {
            shared,
            claiming: false,
            again: false,
            timer: None,
        }
    }

    /// Claims what there is room for, unless draining or already claiming.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        if self.shared.is_draining() {
            return;
        }
        if self.claiming {
            self.again = true;
            return;
        }
        let free = self
            .shared
            .settings
            .max_concurrent_per_worker
            .saturating_sub(self.shared.running_count());
        if free == 0 {
            // A finishing job wakes us again.
            return;
        }
        self.claiming = true;
        self.again = false;
        let shared = self.shared.clone();
        // Ends (dropped) when the closure below has tracked the claimed jobs.
        let in_flight = ClaimInFlight::new(shared.clone());
        let claim = async move {
            let claimed = queue::claim(
                &shared.db,
                shared.worker_id,
                free as i64,
                shared.settings.lease,
            )
            .await?;
            // Nothing more to take now: sleep until the next due job (or the poll).
            let next = if claimed.len() < free {
                queue::next_due(&shared.db).await?
            } else {
                Some(0.0)
            };
            Ok::<_, fluxbase_migrations::DbError>((claimed, next))
        };
        ctx.spawn(
            supervise::catch_async(claim)
                .into_actor(self)
                .map(move |result, act, ctx| {
                    let _in_flight = in_flight;
                    act.claiming = false;
                    let poll = act.shared.settings.poll_interval;
                    let delay = match result {
                        Ok(Ok((claimed, next))) => {
                            let took_some = !claimed.is_empty();
                            for job in claimed {
                                act.start_job(job, ctx.address());
                            }
                            match next {
                                Some(secs) if secs <= 0.0 && took_some => Duration::ZERO,
                                // Due jobs we could not take are locked by someone else
                                // (another instance's claim, an operator's transaction):
                                // look again shortly rather than spin.
                                Some(secs) if secs <= 0.0 => CONTENDED_RETRY.min(poll),
                                Some(secs) => Duration::from_secs_f64(secs).min(poll),
                                None => poll,
                            }
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "claiming jobs failed; retrying");
                            Duration::from_secs(1).min(poll)
                        }
                        Err(panic) => {
                            act.shared.supervision.failed(Self::NAME, &panic);
                            ctx.stop();
                            return;
                        }
                    };
                    if act.again || delay.is_zero() {
                        ctx.notify(Wake);
                    } else {
                        act.arm(delay, ctx);
                    }
                }),
        );
    }

    /// Sets the wake-up timer, replacing the previous one.
    fn arm(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(old) = self.timer.take() {
            ctx.cancel_future(old);
        }
        self.timer = Some(ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.wake(ctx);
        }));
    }

    /// Runs `job` as a task of its own on this arbiter.
    fn start_job(&mut self, job: Claimed, runner: Addr<Runner>) {
        let shared = self.shared.clone();
        let (id, attempt) = (job.id, job.attempt);
        let task = actix::spawn(execute(shared.clone(), job, runner));
        shared.track(id, attempt, task.abort_handle());
    }
}

/// Runs one claimed job to its end: checks its payload, runs its handler (catching panics),
/// records the outcome, frees the slot.
async fn execute(shared: Arc<Shared>, job: Claimed, runner: Addr<Runner>) {
    let started = Instant::now();
    let outcome = run_once(&shared, &job).await;
    let elapsed = started.elapsed();
    metrics::histogram!("fluxbase_jobs_duration_seconds", "kind" => shared.kind_label(&job.kind))
        .record(elapsed.as_secs_f64());
    let worker = shared.worker_id;
    let recorded = match &outcome {
        Ok(result) => queue::complete(&shared.db, &job, worker, result.as_ref())
            .await
            .map(|mine| {
                if mine {
                    shared.counters.completed();
                } else {
                    tracing::info!(job_id = %job.id, "job finished after it was cancelled or re-queued");
                }
            }),
        Err(failure) => {
            let retry_in = match failure.retry {
                Retry::No => None,
                Retry::Backoff => Some(queue::backoff(
                    job.attempt,
                    shared.settings.backoff_base,
                    shared.settings.backoff_max,
                )),
                Retry::After(delay) => Some(delay),
            };
            queue::fail(&shared.db, &job, worker, &failure.error_text(), retry_in)
                .await
                .map(|after| {
                    let reason = failure.reason;
                    match after {
                        AfterFailure::Retrying => {
                            shared.counters.retried(reason);
                            tracing::info!(job_id = %job.id, attempt = job.attempt, reason = reason.as_str(), "job failed; will retry");
                        }
                        AfterFailure::Failed => {
                            shared.counters.failed(reason);
                            tracing::warn!(job_id = %job.id, attempt = job.attempt, reason = reason.as_str(), error = %failure.message, "job failed for good");
                        }
                        AfterFailure::Lost => {
                            tracing::info!(job_id = %job.id, "job failed after it was cancelled or re-queued");
                        }
                    }
                })
        }
    };
    if let Err(err) = recorded {
        // The lease runs out and another worker takes the job again: at least once.
        tracing::warn!(job_id = %job.id, error = %err, "could not record a job's outcome");
    }
    shared.untrack(job.id, job.attempt);
    runner.do_send(Wake);
}

/// One attempt: the integrity check, then the handler.
async fn run_once(shared: &Shared, job: &Claimed) -> RunResult {
    if !job.payload_intact() {
        return Err(JobFailure::permanent(
            FailureReason::HashMismatch,
            "the payload's SHA-256 differs from the one stored at submit",
        ));
    }
    let payload: Value = serde_json::from_str(&job.payload_text).map_err(|err| {
        JobFailure::permanent(FailureReason::InvalidPayload, format!("payload: {err}"))
    })?;
    let Some(handler) = shared.registry.get(&job.kind) else {
        // Maybe registered later, or on another instance: retried, then a dead letter.
        return Err(JobFailure::retry(
            FailureReason::UnknownKind,
            format!("no handler for kind {:?} on this server", job.kind),
        ));
    };
    let run = JobRun {
        id: job.id,
        name: job.name.clone(),
        kind: job.kind.clone(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        payload,
    };
    match supervise::catch_async(handler.run(&run)).await {
        Ok(result) => result,
        Err(panic) => {
            tracing::error!(job_id = %job.id, kind = %job.kind, error = %panic, "job handler panicked");
            let message = panic.strip_prefix("panic: ").unwrap_or(&panic).to_string();
            Err(JobFailure::retry(FailureReason::Panic, message))
        }
    }
}

impl Actor for Runner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared.supervision.running(Self::NAME);
        let listener = Listener::spawn(
            self.shared.pg.clone(),
            MakeRustlsConnect::new(),
            &[JOBS_CHANNEL, CONFIG_CHANNEL],
            ListenOptions::default(),
            self.shared.shutdown.subscribe(),
        );
        ctx.add_stream(futures_util::stream::unfold(listener, |mut l| async move {
            l.recv().await.map(|event| (event, l))
        }));
        ctx.notify(Wake);
    }
}

impl Supervised for Runner {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The context's futures (a claim in flight, the timer) are gone with the old context.
        self.claiming = false;
        self.again = false;
        self.timer = None;
    }
}

/// Look for due jobs now.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

impl Handler<Wake> for Runner {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.wake(ctx);
    }
}

/// Stop for good (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stop;

impl Handler<Stop> for Runner {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl StreamHandler<ListenEvent> for Runner {
    fn handle(&mut self, event: ListenEvent, ctx: &mut Context<Self>) {
        match event {
            ListenEvent::Notification(n) if n.channel == JOBS_CHANNEL => self.wake(ctx),
            ListenEvent::Notification(_) => self.shared.config_changed(),
            // Listening, or back after a loss or a lag: something may have been missed.
            _ => {
                self.shared.config_changed();
                self.wake(ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.shared.is_draining() {
            self.shared
                .supervision
                .failed(Self::NAME, "the LISTEN connection task ended");
            ctx.stop();
        }
    }
}

/// Pokes the scheduler (schedules changed).
pub(crate) fn poke_scheduler(shared: &Shared) {
    if let Some(scheduler) = shared.scheduler() {
        scheduler.do_send(Tick);
    }
}
