//! The slot leader: waits for the lock, then consumes the slot with the bus as the target
//! until the lock is lost, the stream ends or the engine shuts down; then stops the stream
//! and waits for the lock again (a new stream resumes from the slot's confirmed position).
//!
//! The transactions waiting in the stream's channel are taken together (up to
//! [`BATCH`]): the bus appends them in one round trip and database webhooks' own lane
//! ([`WebhookLane`]) gets each; the slot is acknowledged up to what both took (DESIGN
//! invariant 1). The bus never waits for webhooks, unless they fall far behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxbase_replication::{Lsn, ReplicationConfig, ReplicationHandle, Transaction};
use tokio::sync::{mpsc, watch};

use super::lease::Lease;
use super::{Appender, Cluster, Role};
use crate::realtime::engine::Engine;
use crate::realtime::pipeline::WebhookLane;

/// Most transactions appended in one round trip.
const BATCH: usize = 256;

/// The leader loop's entry points.
pub(crate) struct Leader;

impl Leader {
    /// Name in supervision and the restarts metric.
    pub(crate) const NAME: &'static str = "realtime.leader";

    /// The loop, until shutdown.
    pub(crate) async fn run(engine: Engine, cluster: Cluster, config: ReplicationConfig) {
        let mut shutdown = engine.shutdown_signal();
        loop {
            let started = Instant::now();
            let mut lease = tokio::select! {
                lease = Lease::acquire(engine.pg(), &cluster) => lease,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let (handle, rx) = match fluxbase_replication::start(config.clone()) {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::error!(error = %err, "cannot start the replication stream as realtime leader; releasing the lock");
                    drop(lease);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            engine.set_replication(Some(handle.clone()));
            cluster.set_role(Role::Leader);
            tracing::info!(
                slot = %config.slot_name,
                waited_ms = started.elapsed().as_millis() as u64,
                "elected realtime leader"
            );
            let appender = Appender::new(cluster.clone());
            let ended = tokio::select! {
                () = lead(&engine, &appender, &handle, rx, shutdown.clone()) => "the replication stream ended".to_string(),
                reason = lease.lost() => reason,
            };
            if let Some(handle) = engine.set_replication(None) {
                handle.shutdown().await;
            }
            drop(lease);
            cluster.set_role(Role::Follower);
            if *shutdown.borrow() {
                return;
            }
            tracing::warn!(reason = %ended, "stepped down as realtime leader; electing again");
        }
    }
}

/// Consumes the stream: batches of waiting transactions, appended to the bus and handed to
/// webhooks' lane, acknowledged as far as both took them. Returns when the stream ends,
/// the lane is lost or shutdown begins (a new stream replays what was not acknowledged).
async fn lead(
    engine: &Engine,
    appender: &Appender,
    handle: &ReplicationHandle,
    mut rx: mpsc::Receiver<Transaction>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lane = WebhookLane::start(engine.clone(), Lsn::ZERO);
    let (mut appended, mut acked) = (Lsn::ZERO, Lsn::ZERO);
    loop {
        let taken = appended.min(lane.taken());
        if taken > acked {
            handle.ack(taken);
            acked = taken;
        }
        if lane.is_gone() {
            tracing::error!(acknowledged = %acked, "webhooks lane ended; replaying from the slot");
            return;
        }
        let first = tokio::select! {
            tx = rx.recv() => tx,
            () = lane.progressed() => continue,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![Arc::new(first)];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(tx) => batch.push(Arc::new(tx)),
                Err(_) => break,
            }
        }
        let handed = tokio::select! {
            handed = async {
                appender.append(&batch).await;
                for tx in &batch {
                    if lane.hand(tx.clone()).await.is_err() {
                        return false;
                    }
                }
                true
            } => handed,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if !handed {
            tracing::error!(acknowledged = %acked, "webhooks lane ended; replaying from the slot");
            return;
        }
        appended = batch.last().expect("not empty").end_lsn;
    }
}
