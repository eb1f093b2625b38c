//! Database webhooks' own lane beside delivery: transactions are handed to it in commit
//! order and a task of its own has webhooks take them ([`offer_webhooks`]) in that order,
//! reporting how far it got. Delivery never waits for it — a locked or slow `jobs.jobs`
//! delays only the slot's acknowledgement (the consumer acknowledges the lesser of what was
//! delivered and what webhooks took), and delivery waits only when webhooks fall
//! [`DEPTH`] transactions behind, which bounds the memory the lane holds.
//!
//! What the lane holds is not acknowledged, so a lane lost with its stream (a new leader,
//! a restart) loses nothing: the slot replays it, and webhooks' idempotency keys (rule,
//! commit LSN, change index) make a second take of a transaction enqueue nothing.

use std::sync::Arc;
use std::time::Duration;

use fluxbase_replication::{Lsn, Transaction};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::realtime::engine::Engine;

/// Transactions webhooks may fall behind delivery before delivery waits for them.
pub(crate) const DEPTH: usize = 1024;

/// The lane's task ended (it panicked): what it held is lost and must be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneGone;

/// The webhooks lane of one stream.
pub(crate) struct WebhookLane {
    queue: mpsc::Sender<Arc<Transaction>>,
    taken: watch::Receiver<Lsn>,
    task: JoinHandle<()>,
}

impl WebhookLane {
    /// A lane whose progress starts at `from` (everything up to it counts as taken).
    pub(crate) fn start(engine: Engine, from: Lsn) -> WebhookLane {
        let (queue, mut rx) = mpsc::channel::<Arc<Transaction>>(DEPTH);
        let (progress, taken) = watch::channel(from);
        let task = tokio::spawn(async move {
            while let Some(tx) = rx.recv().await {
                offer_webhooks(&engine, &tx).await;
                progress.send_replace(tx.end_lsn);
            }
        });
        WebhookLane { queue, taken, task }
    }

    /// Hands `tx` to webhooks; waits only while the lane is [`DEPTH`] behind.
    pub(crate) async fn hand(&self, tx: Arc<Transaction>) -> Result<(), LaneGone> {
        self.queue.send(tx).await.map_err(|_| LaneGone)
    }

    /// End LSN of the last transaction webhooks took.
    pub(crate) fn taken(&self) -> Lsn {
        *self.taken.borrow()
    }

    /// Resolves when webhooks took another transaction, or at once when the lane is gone
    /// (see [`WebhookLane::is_gone`]).
    pub(crate) async fn progressed(&mut self) {
        let _ = self.taken.changed().await;
    }

    /// Whether the lane's task ended (it only ends by panicking while the lane lives).
    pub(crate) fn is_gone(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for WebhookLane {
    fn drop(&mut self) {
        // Whatever it still held is replayed by the slot.
        self.task.abort();
    }
}

/// Until database webhooks (when jobs run) enqueued their jobs for `tx`.
async fn offer_webhooks(engine: &Engine, tx: &Arc<Transaction>) {
    let webhooks = engine
        .inner
        .webhooks
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(webhooks) = webhooks else {
        return;
    };
    let mut delay = Duration::from_millis(100);
    loop {
        match webhooks.take(tx).await {
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(error = %err, lsn = %tx.commit_lsn, "webhooks did not take the transaction; retrying before acknowledging it");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
