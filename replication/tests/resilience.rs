//! Reconnects: killed walsender, restarted PostgreSQL, restart handle, a new process.

use fluxbase_migrations::test_utils::{DedicatedCluster, TestDb};
use fluxbase_replication::{Lsn, ReplicationHandle, Transaction};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::support::{WAIT, config_for, finish, next, start_streaming, stream};

/// The inserted id of a one-row transaction.
fn id_of(tx: &Transaction) -> i64 {
    tx.changes[0].record.as_ref().unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Receives until `want` distinct ids arrived; asserts order and that nothing acknowledged
/// comes again.
pub async fn collect(
    handle: &ReplicationHandle,
    rx: &mut mpsc::Receiver<Transaction>,
    seen: &mut Vec<i64>,
    want: usize,
) {
    while seen.len() < want {
        let acked = handle.acknowledged();
        let tx = next(handle, rx).await;
        assert!(tx.end_lsn > acked, "acknowledged transaction re-delivered");
        let id = id_of(&tx);
        assert!(
            seen.last().is_none_or(|last| *last < id),
            "out of order: {id} after {seen:?}"
        );
        seen.push(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_walsender_reconnects_without_loss_or_redelivery() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE events (id int8 PRIMARY KEY)")
        .await
        .unwrap();
    let slot = "resilience_kill";
    let (handle, mut rx) = stream(&db, slot).await;

    // A producer commits 200 one-row transactions while we consume.
    let producer_client = db.client().await;
    let producer = tokio::spawn(async move {
        for i in 1..=200i64 {
            producer_client
                .execute("INSERT INTO events VALUES ($1)", &[&i])
                .await
                .unwrap();
        }
    });
    let mut seen = Vec::new();
    collect(&handle, &mut rx, &mut seen, 50).await;

    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = $1 AND active",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    collect(&handle, &mut rx, &mut seen, 200).await;
    producer.await.unwrap();
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
    assert!(handle.status().reconnects >= 1);
    finish(&db, handle, slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_handle_and_a_new_process_resume_from_the_slot() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE events (id int8 PRIMARY KEY)")
        .await
        .unwrap();
    let slot = "resilience_restart";
    let (handle, mut rx) = stream(&db, slot).await;

    client
        .batch_execute("INSERT INTO events VALUES (1)")
        .await
        .unwrap();
    assert_eq!(id_of(&next(&handle, &mut rx).await), 1);
    handle.restart();
    client
        .batch_execute("INSERT INTO events VALUES (2)")
        .await
        .unwrap();
    assert_eq!(id_of(&next(&handle, &mut rx).await), 2);
    assert!(
        timeout(WAIT, handle.watch_status().wait_for(|s| s.reconnects >= 1))
            .await
            .is_ok()
    );

    // Receive 3 without acknowledging it, then stop: a new stream (a restarted server)
    // reuses slot and publication and delivers 3 again, but not 1 or 2.
    client
        .batch_execute("INSERT INTO events VALUES (3)")
        .await
        .unwrap();
    let unacked = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(id_of(&unacked), 3);
    let acked = handle.acknowledged();
    handle.shutdown().await;
    drop(rx);
    // Only what was acknowledged was reported as flushed.
    let confirmed: String = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    let confirmed: Lsn = confirmed.parse().unwrap();
    assert!(
        confirmed >= acked && confirmed < unacked.end_lsn,
        "{confirmed} vs {acked}..{}",
        unacked.end_lsn
    );

    let slots: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    let (handle, mut rx) = stream(&db, slot).await;
    let again: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, again, "slot reused");
    client
        .batch_execute("INSERT INTO events VALUES (4)")
        .await
        .unwrap();
    let tx = next(&handle, &mut rx).await;
    assert!(tx.end_lsn > acked);
    assert_eq!(id_of(&tx), 3, "unacknowledged transaction delivered again");
    assert_eq!(id_of(&next(&handle, &mut rx).await), 4);
    finish(&db, handle, slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_loses_nothing() {
    let mut cluster = DedicatedCluster::start().await;
    let conn: tokio_postgres::Config = cluster.url().parse().unwrap();
    let slot = "resilience_pg_restart";
    let connect = || async {
        let (client, connection) = conn.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    };
    let client = connect().await;
    client
        .batch_execute("CREATE TABLE events (id int8 PRIMARY KEY)")
        .await
        .unwrap();
    let (handle, mut rx) = start_streaming(config_for(conn.clone(), slot)).await;

    // The consumer keeps taking (and acknowledging) while PostgreSQL restarts: a consumer
    // holding unacknowledged transactions would hold up the server's shutdown, which waits
    // for walsenders' clients to confirm everything sent.
    let consumer_handle = handle.clone();
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        collect(&consumer_handle, &mut rx, &mut seen, 20).await;
        seen
    });
    for i in 1..=10i64 {
        client
            .execute("INSERT INTO events VALUES ($1)", &[&i])
            .await
            .unwrap();
    }
    drop(client);

    let mut status = handle.watch_status();
    cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    timeout(WAIT, status.wait_for(|s| s.reconnects >= 1 && s.connected))
        .await
        .unwrap()
        .unwrap();

    let client = connect().await;
    for i in 11..=20i64 {
        client
            .execute("INSERT INTO events VALUES ($1)", &[&i])
            .await
            .unwrap();
    }
    let seen = timeout(WAIT, consumer).await.unwrap().unwrap();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    assert!(handle.acknowledged() > Lsn::ZERO);
    handle.shutdown().await;
    drop(cluster);
}
