//! The slot leader: waits for the lock, then consumes the slot with the bus as the target
//! (the usual consume loop: webhooks and the append both take a transaction before the
//! slot is acknowledged), until the lock is lost or the engine shuts down; then stops the
//! stream and waits for the lock again.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use fluxbase_replication::ReplicationConfig;

use super::lease::Lease;
use super::{Appender, Cluster, Role};
use crate::realtime::engine::Engine;
use crate::realtime::pipeline::{Stream, Target, consume};

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
            let stream = Arc::new(tokio::sync::Mutex::new(Stream::new(handle, rx)));
            let target = Target::Bus(Appender::new(cluster.clone()));
            let at = Arc::new(AtomicU64::new(0));
            let lost = tokio::select! {
                () = consume(engine.clone(), target, config.clone(), stream, at) => None,
                reason = lease.lost() => Some(reason),
            };
            // The stream may have been replaced by the consume loop: stop the current one.
            if let Some(handle) = engine.set_replication(None) {
                handle.shutdown().await;
            }
            drop(lease);
            if let Some(reason) = lost {
                tracing::warn!(reason = %reason, "lost the realtime leader lock; stepped down");
                cluster.set_role(Role::Follower);
            }
            if *shutdown.borrow() {
                cluster.set_role(Role::Follower);
                return;
            }
        }
    }
}
