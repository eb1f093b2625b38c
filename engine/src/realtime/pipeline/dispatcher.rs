//! The dispatcher actor: takes one transaction at a time from the consumer and fans each
//! change out ([`Engine::fan_out`]). A panic is caught, logged with the LSN and the change
//! at hand, counted, and stops the actor; its supervisor restarts it (after a pause, see
//! [`Restarts`]) and the consumer hands the same transaction again — connections it was
//! already queued for skip it (by LSN), so nothing is lost or doubled. A change that
//! crashed the dispatcher [`POISON_CRASHES`] times is set aside (logged with its LSN and
//! counted in `fluxbase_realtime_poison_changes_total`) so the stream moves past it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actix::prelude::*;
use fluxbase_replication::{Lsn, Transaction};

use crate::realtime::engine::Engine;
use crate::realtime::restart::Restarts;
use crate::supervise;

/// Crashes after which a change is set aside.
pub const POISON_CRASHES: u32 = 3;

/// Fan one transaction out; answers once every change is in its recipients' queues.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Crashed>")]
pub struct Dispatch(pub Arc<Transaction>);

/// The dispatcher crashed on this transaction (and is restarting): hand it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crashed;

/// The dispatcher actor.
pub struct Dispatcher {
    engine: Engine,
    /// Crashes per (commit LSN, change index), kept across restarts (the supervisor
    /// restarts this same value).
    crashes: HashMap<(Lsn, u32), u32>,
    restarts: Restarts,
}

impl Dispatcher {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "realtime.dispatcher";

    /// The actor over `engine`.
    pub fn new(engine: Engine) -> Dispatcher {
        engine.supervision().register(Self::NAME);
        Dispatcher {
            engine,
            crashes: HashMap::new(),
            restarts: Restarts::default(),
        }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.restarts.delay();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::sleep(delay)).map(|_, act, _| {
                act.engine.supervision().running(Self::NAME);
            }),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if *self.engine.shutdown_signal().borrow() {
            self.engine.supervision().stopped(Self::NAME);
        }
    }
}

impl Supervised for Dispatcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.failed();
    }
}

impl Handler<Dispatch> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<(), Crashed>>;

    fn handle(&mut self, Dispatch(tx): Dispatch, _: &mut Context<Self>) -> Self::Result {
        // Changes that crashed us too often are set aside.
        let lsn = tx.commit_lsn;
        let poisoned: Vec<u32> = self
            .crashes
            .iter()
            .filter(|((l, _), n)| *l == lsn && **n >= POISON_CRASHES)
            .map(|((_, i), _)| *i)
            .collect();
        let current = Arc::new(AtomicU32::new(0));
        let engine = self.engine.clone();
        let (at, work) = (current.clone(), tx.clone());
        let run = async move {
            for (index, change) in work.changes.iter().enumerate() {
                let index = index as u32;
                if poisoned.contains(&index) {
                    continue;
                }
                at.store(index, Ordering::Release);
                engine.fan_out(&work, index, change).await;
            }
        };
        Box::pin(
            supervise::catch_async(run).into_actor(self).map(
                move |result, act, ctx| match result {
                    Ok(()) => {
                        act.restarts.succeeded();
                        act.crashes.retain(|(l, _), _| *l > lsn);
                        Ok(())
                    }
                    Err(panic) => {
                        let index = current.load(Ordering::Acquire);
                        let crashes = act.crashes.entry((lsn, index)).or_default();
                        *crashes += 1;
                        if *crashes >= POISON_CRASHES {
                            tracing::error!(
                                lsn = %lsn,
                                end_lsn = %tx.end_lsn,
                                change = index,
                                crashes = *crashes,
                                "change set aside: it crashed the dispatcher {POISON_CRASHES} times"
                            );
                            metrics::counter!("fluxbase_realtime_poison_changes_total")
                                .increment(1);
                        }
                        act.engine.supervision().failed(
                            Dispatcher::NAME,
                            &format!("lsn {lsn} change {index}: {panic}"),
                        );
                        ctx.stop();
                        Err(Crashed)
                    }
                },
            ),
        )
    }
}
