//! Helpers shared by the integration tests.

use std::time::Duration;

use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::{ReplicationConfig, ReplicationHandle, Transaction, start};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Upper bound for any single awaited event.
pub const WAIT: Duration = Duration::from_secs(60);

/// A config for `conn` with a test's own slot and short intervals.
pub fn config_for(conn: tokio_postgres::Config, slot: &str) -> ReplicationConfig {
    let mut config = ReplicationConfig::new(conn);
    config.slot_name = slot.to_owned();
    config.publication_name = format!("pub_{slot}");
    config.status_interval = Duration::from_millis(100);
    config.lag_interval = Duration::from_millis(200);
    config.backoff_min = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    config
}

/// A stream on `db`, returned once it is streaming (so later commits are captured).
pub async fn stream(db: &TestDb, slot: &str) -> (ReplicationHandle, mpsc::Receiver<Transaction>) {
    start_streaming(config_for(db.config(), slot)).await
}

/// Starts `config` and waits until it is connected.
pub async fn start_streaming(
    config: ReplicationConfig,
) -> (ReplicationHandle, mpsc::Receiver<Transaction>) {
    let (handle, rx) = start(config).expect("valid config");
    wait_connected(&handle).await;
    (handle, rx)
}

/// Waits for the stream to be connected.
pub async fn wait_connected(handle: &ReplicationHandle) {
    let mut status = handle.watch_status();
    timeout(WAIT, status.wait_for(|s| s.connected))
        .await
        .expect("stream connects in time")
        .expect("stream alive");
}

/// The next transaction, acknowledged.
pub async fn next(handle: &ReplicationHandle, rx: &mut mpsc::Receiver<Transaction>) -> Transaction {
    let tx = timeout(WAIT, rx.recv())
        .await
        .expect("transaction in time")
        .expect("stream open");
    handle.ack(tx.end_lsn);
    tx
}

/// Drops the slot once the stream is shut down (TestDb's drop also does it; this keeps the
/// cluster-wide slot count low while other tests run).
pub async fn finish(db: &TestDb, handle: ReplicationHandle, slot: &str) {
    handle.shutdown().await;
    let client = db.client().await;
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[&slot],
        )
        .await
        .expect("drop slot");
}

/// See `TestDb::require_wal2json`.
pub async fn require_wal2json(db: &TestDb) {
    db.require_wal2json().await;
}
