//! The scheduler of one instance, as a supervised actor: it sleeps until the earliest
//! `next_run_at` (or 30 s, or until schedules change), then fires every due schedule.
//!
//! Firing a tick is one statement: move `next_run_at` from the due tick to the next one
//! (`… WHERE id = $1 AND next_run_at = $due`) and, only if that row was updated, insert the
//! job (idempotency key `schedule:<id>:<due>`). Every instance may try; one wins each tick.
//! The next tick is the first one after *now*: ticks missed while every instance was down
//! fire once, not once each.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use fluxbase_migrations::DbError;
use uuid::Uuid;

use super::Shared;
use super::schedule::CronSpec;
use crate::supervise;

/// Longest sleep between looks at the schedules.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Due schedules handled per round.
const BATCH: i64 = 100;

/// The scheduler actor.
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    busy: bool,
    again: bool,
    timer: Option<SpawnHandle>,
}

impl Scheduler {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "jobs.scheduler";

    pub(crate) fn new(shared: Arc<Shared>) -> Scheduler {
        Scheduler {
            shared,
            busy: false,
            again: false,
            timer: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.shared.is_draining() {
            return;
        }
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        self.again = false;
        let shared = self.shared.clone();
        ctx.spawn(
            supervise::catch_async(fire_due(shared))
                .into_actor(self)
                .map(|result, act, ctx| {
                    act.busy = false;
                    let sleep = match result {
                        Ok(Ok(sleep)) => sleep,
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "firing schedules failed; retrying");
                            Duration::from_secs(1)
                        }
                        Err(panic) => {
                            act.shared.supervision.failed(Self::NAME, &panic);
                            ctx.stop();
                            return;
                        }
                    };
                    if let Some(old) = act.timer.take() {
                        ctx.cancel_future(old);
                    }
                    if act.again {
                        ctx.notify(Tick);
                    } else {
                        act.timer = Some(ctx.run_later(sleep, |act, ctx| {
                            act.timer = None;
                            act.tick(ctx);
                        }));
                    }
                }),
        );
    }
}

/// Fires every due schedule; returns how long to sleep before the next one is due.
async fn fire_due(shared: Arc<Shared>) -> Result<Duration, DbError> {
    // A few batches at most per round: rows that cannot fire (a bad pattern written by SQL)
    // stay due and must not keep the round going.
    for _ in 0..10 {
        let rows = shared
            .db
            .query(
                "SELECT id, cron, timezone, next_run_at, now() FROM jobs.schedules \
                 WHERE enabled AND (next_run_at IS NULL OR next_run_at <= now()) \
                 ORDER BY next_run_at NULLS FIRST LIMIT $1",
                &[&BATCH],
            )
            .await?;
        for row in &rows {
            let id: Uuid = row.get(0);
            let (cron, zone): (String, String) = (row.get(1), row.get(2));
            let due: Option<SystemTime> = row.get(3);
            let now: SystemTime = row.get(4);
            let spec = match CronSpec::parse(&cron, &zone) {
                Ok(spec) => spec,
                Err(err) => {
                    // Written by SQL with a bad pattern: never fires; said once per round.
                    tracing::warn!(schedule_id = %id, error = %err, "schedule has an invalid pattern");
                    continue;
                }
            };
            let after = due.map_or(now, |due| due.max(now));
            let Some(next) = spec.next_after(after) else {
                continue;
            };
            match due {
                None => {
                    shared
                        .db
                        .query(
                            "UPDATE jobs.schedules SET next_run_at = $2 \
                             WHERE id = $1 AND next_run_at IS NULL",
                            &[&id, &next],
                        )
                        .await?;
                }
                Some(due) => {
                    if fire(&shared, id, due, next).await? {
                        shared.counters.schedule_fired();
                        tracing::debug!(schedule_id = %id, "schedule fired");
                    }
                }
            }
        }
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    let rows = shared
        .db
        .query(
            "SELECT EXTRACT(epoch FROM min(next_run_at) - now())::float8 \
             FROM jobs.schedules WHERE enabled",
            &[],
        )
        .await?;
    let secs: Option<f64> = rows.first().and_then(|r| r.get(0));
    Ok(match secs {
        Some(secs) if secs > 0.0 => Duration::from_secs_f64(secs).min(MAX_SLEEP),
        Some(_) => Duration::ZERO,
        None => MAX_SLEEP,
    })
}

/// Claims the tick `due` of schedule `id` (moving it to `next`) and submits its job, in one
/// statement. `false` when another instance claimed it first.
async fn fire(
    shared: &Shared,
    id: Uuid,
    due: SystemTime,
    next: SystemTime,
) -> Result<bool, DbError> {
    let due_micros = due
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let key = format!("schedule:{id}:{due_micros}");
    let job_id = Uuid::new_v4();
    let rows = shared
        .db
        .query(
            "WITH tick AS ( \
               UPDATE jobs.schedules SET next_run_at = $3, last_run_at = now(), last_job_id = $5 \
               WHERE id = $1 AND next_run_at = $2 AND enabled \
               RETURNING id, name, kind, payload, max_attempts, priority), \
             job AS ( \
               INSERT INTO jobs.jobs (id, name, kind, payload, payload_sha256, idempotency_key, \
                 max_attempts, priority, created_by) \
               SELECT $5, name, kind, payload, \
                 encode(sha256(convert_to(payload::text, 'UTF8')), 'hex'), $4, max_attempts, \
                 priority, 'schedule:' || id \
               FROM tick \
               ON CONFLICT (idempotency_key) DO NOTHING \
               RETURNING 1) \
             SELECT (SELECT count(*) FROM tick), (SELECT count(*) FROM job)",
            &[&id, &due, &next, &key, &job_id],
        )
        .await?;
    let (ticked, inserted): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    if ticked == 1 && inserted == 0 {
        tracing::warn!(schedule_id = %id, "schedule tick already had its job");
    }
    Ok(ticked == 1)
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared.supervision.running(Self::NAME);
        self.tick(ctx);
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.busy = false;
        self.again = false;
        self.timer = None;
    }
}

/// Look at the schedules now (they changed, or the timer rang).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Tick;

impl Handler<Tick> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        if let Some(old) = self.timer.take() {
            ctx.cancel_future(old);
        }
        self.tick(ctx);
    }
}

/// Stop for good (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopScheduling;

impl Handler<StopScheduling> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: StopScheduling, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
