//! The control surface of a running stream: acknowledge, restart, status, shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::lsn::Lsn;

/// A snapshot of the stream's health, for `/api/v1/monitoring/health`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Slot name.
    pub slot: String,
    /// Output plugin.
    pub plugin: &'static str,
    /// Publication name.
    pub publication: String,
    /// Whether the stream is connected and streaming.
    pub connected: bool,
    /// Highest LSN the consumer acknowledged.
    pub acknowledged_lsn: Lsn,
    /// The slot's confirmed flush LSN at the last sample.
    pub confirmed_lsn: Option<Lsn>,
    /// WAL bytes retained beyond the confirmed LSN at the last sample.
    pub lag_bytes: Option<u64>,
    /// Lag above `replication.max_lag_bytes`, or not connected.
    pub degraded: bool,
    /// Kind and text of the last error, if the last session ended with one.
    pub last_error: Option<String>,
    /// Reconnects since start.
    pub reconnects: u64,
}

/// State shared by the stream task, the lag sampler and handles.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Highest acknowledged end LSN; atomics because acks come from any task.
    pub(crate) acked: AtomicU64,
    /// Wakes the stream to drop its session and reconnect at once.
    pub(crate) restart: Notify,
    /// Set to true to stop every task.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Current status; a watch so the API (and tests) can await changes instead of polling.
    pub(crate) status: watch::Sender<ReplicationStatus>,
    /// Lag above which status is degraded.
    pub(crate) max_lag_bytes: u64,
    /// The tasks, awaited by `shutdown`; a std mutex, never held across `.await`.
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    /// Applies `f` to the status.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ReplicationStatus)) {
        let max_lag = self.max_lag_bytes;
        self.status.send_if_modified(|status| {
            let before = status.clone();
            f(status);
            status.degraded = !status.connected || status.lag_bytes.is_some_and(|l| l > max_lag);
            *status != before
        });
    }

    /// The acknowledged LSN.
    pub(crate) fn acked(&self) -> Lsn {
        Lsn(self.acked.load(Ordering::Acquire))
    }
}

/// Cloneable handle to a running stream.
#[derive(Debug, Clone)]
pub struct ReplicationHandle {
    /// Shared state.
    pub(crate) shared: Arc<Shared>,
}

impl ReplicationHandle {
    /// Acknowledges that every transaction with `end_lsn <= lsn` has been taken. Only
    /// acknowledged positions are reported to the server as flushed, and a reconnect never
    /// re-delivers them. Acknowledging backwards is ignored.
    pub fn ack(&self, lsn: Lsn) {
        let previous = self.shared.acked.fetch_max(lsn.0, Ordering::AcqRel);
        if lsn.0 > previous {
            self.shared.update(|s| s.acknowledged_lsn = lsn);
        }
    }

    /// The highest acknowledged LSN.
    pub fn acknowledged(&self) -> Lsn {
        self.shared.acked()
    }

    /// Drops the current session and reconnects at once (admin "restart realtime").
    /// Unacknowledged transactions are delivered again.
    pub fn restart(&self) {
        self.shared.restart.notify_one();
    }

    /// A snapshot of the stream's state.
    pub fn status(&self) -> ReplicationStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver of status changes, e.g. `watch_status().wait_for(|s| s.connected)`.
    pub fn watch_status(&self) -> watch::Receiver<ReplicationStatus> {
        self.shared.status.subscribe()
    }

    /// Stops the stream (sending a last status update) and waits for its tasks.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}
