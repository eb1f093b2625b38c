//! Stream-level behaviour: large transactions, new tables, messages, status.

use std::time::Duration;

use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::{Lsn, Op};
use serde_json::json;
use tokio::time::timeout;

use crate::support::{WAIT, config_for, finish, next, start_streaming, stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_transaction_arrives_whole_and_in_order() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE bulk (id int PRIMARY KEY, label text)")
        .await
        .unwrap();
    let slot = "stream_bulk";
    let (handle, mut rx) = stream(&db, slot).await;

    client
        .batch_execute("INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series(1, 100000) g")
        .await
        .unwrap();
    let tx = next(&handle, &mut rx).await;
    assert_eq!(tx.changes.len(), 100_000);
    for (i, change) in tx.changes.iter().enumerate() {
        assert_eq!(change.op, Op::Insert);
        let record = change.record.as_ref().unwrap();
        assert_eq!(record["id"], json!(i + 1));
        assert_eq!(record["label"], json!(format!("row {}", i + 1)));
    }
    assert!(tx.begin_lsn < tx.commit_lsn && tx.commit_lsn < tx.end_lsn);
    finish(&db, handle, slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_created_later_are_published_and_messages_arrive() {
    let db = TestDb::new().await;
    let client = db.client().await;
    // Until the migrations create it, make the internal table the publication must include.
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS auth; CREATE TABLE IF NOT EXISTS auth.sessions (id uuid PRIMARY KEY)")
        .await
        .unwrap();
    let slot = "stream_new_tables";
    let (handle, mut rx) = stream(&db, slot).await;

    // Tables are listed in the publication one by one: a table created after the stream
    // started is added by the next refresh, or at once by whoever subscribes to it (the
    // engine does it on subscribe), as here; changes after that are streamed.
    client
        .batch_execute(&format!(
            "CREATE TABLE later (id int PRIMARY KEY); ALTER PUBLICATION pub_{slot} ADD TABLE later; INSERT INTO later VALUES (1)"
        ))
        .await
        .unwrap();
    let tx = next(&handle, &mut rx).await;
    assert_eq!(
        (&*tx.changes[0].table, tx.changes[0].op),
        ("later", Op::Insert)
    );

    // A schema change mid-stream: the server re-describes the relation, new types included.
    client
        .batch_execute(
            "CREATE TYPE color AS ENUM ('red', 'blue');
             ALTER TABLE later ADD COLUMN c color[] DEFAULT '{blue}';
             INSERT INTO later VALUES (2)",
        )
        .await
        .unwrap();
    let tx = next(&handle, &mut rx).await;
    assert_eq!(
        serde_json::Value::Object(tx.changes[0].record.clone().unwrap()),
        json!({"id": 2, "c": ["blue"]})
    );
    assert_eq!(tx.changes[0].columns[1].type_name, "_color");

    // auth.sessions is published too.
    let published: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND schemaname = 'auth' AND tablename = 'sessions'",
            &[&format!("pub_{slot}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(published, 1);

    client
        .batch_execute("SELECT pg_logical_emit_message(false, 'fluxbase', 'hé')")
        .await
        .unwrap();
    let tx = next(&handle, &mut rx).await;
    assert_eq!(tx.changes[0].op, Op::Message);
    assert_eq!(tx.changes[0].message.as_ref().unwrap().content, "hé");

    // Status: connected, and the sampled lag reaches the slot's confirmed LSN.
    let mut status = handle.watch_status();
    let acked = handle.acknowledged();
    let s = timeout(
        WAIT,
        status.wait_for(|s| s.confirmed_lsn.is_some_and(|c| c >= acked)),
    )
    .await
    .expect("lag sampled")
    .unwrap()
    .clone();
    assert!(s.connected && s.lag_bytes.is_some() && !s.degraded);
    assert_eq!((s.slot.as_str(), s.plugin), (slot, "pgoutput"));
    finish(&db, handle, slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_slows_the_stream() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE ticks (id int PRIMARY KEY)")
        .await
        .unwrap();
    let slot = "stream_backpressure";
    let mut config = config_for(db.config(), slot);
    config.channel_capacity = 2;
    let (handle, mut rx) = start_streaming(config).await;

    for i in 0..20 {
        client
            .execute("INSERT INTO ticks VALUES ($1)", &[&i])
            .await
            .unwrap();
    }
    // Nothing consumed yet: at most the channel's capacity is buffered, nothing flushed.
    let first = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert!(rx.len() <= 2);
    assert_eq!(handle.acknowledged(), Lsn::ZERO);
    let mut ids = vec![first.changes[0].record.as_ref().unwrap()["id"].clone()];
    handle.ack(first.end_lsn);
    for _ in 1..20 {
        let tx = next(&handle, &mut rx).await;
        ids.push(tx.changes[0].record.as_ref().unwrap()["id"].clone());
    }
    assert_eq!(ids, (0..20).map(|i| json!(i)).collect::<Vec<_>>());
    assert!(
        timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "no duplicates"
    );
    finish(&db, handle, slot).await;
}
