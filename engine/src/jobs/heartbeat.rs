//! The heartbeat of one instance, as a supervised actor: every `jobs.heartbeat_interval` it
//! beats in `jobs.workers`, renews the leases of the jobs it runs (and stops those that were
//! cancelled or taken from it), re-queues jobs of any instance whose lease passed, marks
//! silent workers stopped, and refreshes the queue gauges.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::Shared;
use super::handler::FailureReason;
use super::queue;
use super::runner::Wake;
use crate::supervise;

/// The heartbeat actor.
pub(crate) struct Heartbeat {
    shared: Arc<Shared>,
    /// A beat is in flight (a slow database must not pile beats up).
    beating: bool,
}

impl Heartbeat {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "jobs.heartbeat";

    pub(crate) fn new(shared: Arc<Shared>) -> Heartbeat {
        Heartbeat {
            shared,
            beating: false,
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.beating {
            return;
        }
        self.beating = true;
        let shared = self.shared.clone();
        ctx.spawn(
            supervise::catch_async(beat(shared))
                .into_actor(self)
                .map(|result, act, ctx| {
                    act.beating = false;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "jobs heartbeat failed; retrying next beat");
                        }
                        Err(panic) => {
                            act.shared.supervision.failed(Self::NAME, &panic);
                            ctx.stop();
                        }
                    }
                }),
        );
    }
}

/// One beat (none once shutdown marked the worker stopped).
async fn beat(shared: Arc<Shared>) -> Result<(), fluxbase_migrations::DbError> {
    let stopped = shared.beats.lock().await;
    if *stopped {
        return Ok(());
    }
    let settings = &shared.settings;
    let running = shared.running_ids();
    let mine = queue::heartbeat(
        &shared.db,
        shared.worker_id,
        &settings.hostname,
        settings.max_concurrent_per_worker as i32,
        settings.lease,
        &running,
    )
    .await?;
    shared.beat_at(Instant::now());
    // Jobs this worker runs that are no longer its own: cancelled by a caller, or re-queued
    // after the lease passed while this process could not reach the database. Stop them.
    let lost: Vec<_> = running
        .into_iter()
        .filter(|id| !mine.contains(id))
        .collect();
    if !lost.is_empty() {
        let stopped = shared.abort(&lost);
        if stopped > 0 {
            tracing::info!(
                jobs = stopped,
                "stopped running jobs that were cancelled or re-queued"
            );
            if let Some(runner) = shared.runner() {
                runner.do_send(Wake);
            }
        }
    }
    let failed = queue::reap(
        &shared.db,
        settings.lease,
        settings.stopped_worker_retention,
    )
    .await?;
    for _ in 0..failed {
        shared.counters.failed(FailureReason::LeaseExpired);
    }
    shared.refresh_counts().await?;
    Ok(())
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared.supervision.running(Self::NAME);
        self.beat(ctx);
        ctx.run_interval(self.shared.settings.heartbeat_interval, |act, ctx| {
            act.beat(ctx)
        });
    }
}

impl Supervised for Heartbeat {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.beating = false;
    }
}

/// Stop for good (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopBeating;

impl Handler<StopBeating> for Heartbeat {
    type Result = ();
    fn handle(&mut self, _: StopBeating, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
