//! The replication consumer actor: reads transactions in commit order, has the dispatcher
//! fan each one out and hands it to database webhooks' own lane ([`WebhookLane`]), and
//! acknowledges to the slot only what both took (DESIGN invariant 1): the lesser of the
//! last transaction delivered and the last one webhooks enqueued. Delivery never waits for
//! webhooks (a locked or slow jobs table holds back only the acknowledgement), unless they
//! fall [`DEPTH`](super::webhooks::DEPTH) transactions behind. A transaction is retried
//! until the dispatcher took it: the dispatcher restarting after a crash never lets the
//! stream move past it.
//!
//! The transaction in hand, and the lane, survive a restart of the consumer itself (they
//! are kept beside the stream, not in the loop), so a restarted consumer resumes with the
//! first transaction not yet delivered. When the stream's task is gone it starts a new
//! stream, which resumes from the slot's confirmed position; transactions already handed
//! to both are skipped. A lane that dies takes what it held with it: a new lane starts from
//! what was acknowledged and the stream replays the rest (the dispatcher skips, by LSN,
//! what sockets already have; webhooks' idempotency keys skip what they enqueued).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use fluxbase_replication::{Lsn, ReplicationConfig, ReplicationHandle, Transaction};
use tokio::sync::{mpsc, watch};

use super::dispatcher::{Dispatch, Dispatcher};
use super::webhooks::WebhookLane;
use crate::realtime::engine::Engine;
use crate::realtime::restart::Restarts;
use crate::supervise;

/// The stream, the transaction in hand and the webhooks lane.
struct Stream {
    handle: ReplicationHandle,
    rx: mpsc::Receiver<Transaction>,
    /// Taken from the stream, not yet delivered.
    pending: Option<Arc<Transaction>>,
    /// End LSN of the last transaction delivered and handed to webhooks (what a new stream
    /// delivers again is skipped up to here).
    handed: Lsn,
    /// The last end LSN acknowledged.
    acked: Lsn,
    /// Webhooks' lane; started with the consume loop.
    lane: Option<WebhookLane>,
}

/// The replication consumer actor.
pub struct Consumer {
    engine: Engine,
    dispatcher: Addr<Dispatcher>,
    config: ReplicationConfig,
    /// A tokio lock: the consume loop holds it across `.await` for as long as it runs.
    stream: Arc<tokio::sync::Mutex<Stream>>,
    /// End LSN of the transaction in hand, for the log of a failure.
    at: Arc<AtomicU64>,
    restarts: Restarts,
}

impl Consumer {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "realtime.consumer";

    /// The actor over a started stream.
    pub fn new(
        engine: Engine,
        dispatcher: Addr<Dispatcher>,
        config: ReplicationConfig,
        handle: ReplicationHandle,
        rx: mpsc::Receiver<Transaction>,
    ) -> Consumer {
        engine.supervision().register(Self::NAME);
        Consumer {
            engine,
            dispatcher,
            config,
            stream: Arc::new(tokio::sync::Mutex::new(Stream {
                handle,
                rx,
                pending: None,
                handed: Lsn::ZERO,
                acked: Lsn::ZERO,
                lane: None,
            })),
            at: Arc::new(AtomicU64::new(0)),
            restarts: Restarts::default(),
        }
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        self.engine.supervision().running(Self::NAME);
        let work = consume(
            self.engine.clone(),
            self.dispatcher.clone(),
            self.config.clone(),
            self.stream.clone(),
            self.at.clone(),
        );
        ctx.spawn(supervise::catch_async(work).into_actor(self).map(
            |result, act, ctx| match result {
                Ok(()) => {
                    act.engine.supervision().stopped(Self::NAME);
                    tracing::info!("realtime consumer stopped");
                }
                Err(panic) => {
                    let lsn = Lsn(act.at.load(Ordering::Acquire));
                    act.engine
                        .supervision()
                        .failed(Self::NAME, &format!("end lsn {lsn}: {panic}"));
                    ctx.stop();
                }
            },
        ));
    }
}

impl Actor for Consumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.restarts.delay();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::sleep(delay))
                .map(|_, act, ctx| act.run(ctx)),
        );
    }
}

impl Supervised for Consumer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.failed();
    }
}

/// Resolves once shutdown begins.
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The consume loop, until shutdown.
async fn consume(
    engine: Engine,
    dispatcher: Addr<Dispatcher>,
    config: ReplicationConfig,
    stream: Arc<tokio::sync::Mutex<Stream>>,
    at: Arc<AtomicU64>,
) {
    let mut shutdown = engine.shutdown_signal();
    let mut guard = stream.lock().await;
    let stream = &mut *guard;
    loop {
        let lane = match &mut stream.lane {
            Some(lane) if !lane.is_gone() => lane,
            lost => {
                if lost.is_some() {
                    tracing::error!(acknowledged = %stream.acked, "webhooks lane ended; replaying from the slot");
                    // What the lost lane held is replayed from the slot.
                    stream.handed = stream.acked;
                    stream.pending = None;
                    restart_stream(&engine, &config, stream).await;
                }
                stream
                    .lane
                    .insert(WebhookLane::start(engine.clone(), stream.acked))
            }
        };
        // Acknowledge what both delivery and webhooks took.
        let taken = stream.handed.min(lane.taken());
        if taken > stream.acked {
            stream.handle.ack(taken);
            stream.acked = taken;
        }
        let tx = match stream.pending.clone() {
            Some(tx) => tx,
            None => {
                let next = tokio::select! {
                    tx = stream.rx.recv() => tx,
                    () = lane.progressed() => continue,
                    _ = shutting_down(&mut shutdown) => return,
                };
                match next {
                    Some(tx) if tx.end_lsn <= stream.handed => continue,
                    Some(tx) => Arc::new(tx),
                    None if *shutdown.borrow() => return,
                    None => {
                        restart_stream(&engine, &config, stream).await;
                        continue;
                    }
                }
            }
        };
        stream.pending = Some(tx.clone());
        at.store(tx.end_lsn.0, Ordering::Release);
        let handed = tokio::select! {
            handed = async {
                dispatch(&dispatcher, &tx).await;
                // Every change of the transaction is in its recipients' queues (or its
                // recipient was cut loose); now webhooks get it.
                lane.hand(tx.clone()).await
            } => handed,
            _ = shutting_down(&mut shutdown) => return,
        };
        stream.pending = None;
        if handed.is_ok() {
            stream.handed = tx.end_lsn;
        }
        // A lane gone is replaced (and the stream replayed) at the top of the loop.
    }
}

/// The stream's task ended (it should not): a new stream resumes from the slot.
async fn restart_stream(engine: &Engine, config: &ReplicationConfig, stream: &mut Stream) {
    tracing::error!(acknowledged = %stream.acked, "replication stream ended; starting it again from the slot");
    stream.handle.shutdown().await;
    loop {
        match fluxbase_replication::start(config.clone()) {
            Ok((handle, rx)) => {
                *engine.inner.replication.lock().expect("replication lock") = Some(handle.clone());
                stream.handle = handle;
                stream.rx = rx;
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot start the replication stream; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Until the dispatcher fanned `tx` out to this instance's sockets.
pub(crate) async fn dispatch(dispatcher: &Addr<Dispatcher>, tx: &Arc<Transaction>) {
    loop {
        match dispatcher.send(Dispatch(tx.clone())).await {
            Ok(Ok(())) => return,
            // Crashed: it restarts and takes the transaction again.
            Ok(Err(_)) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
