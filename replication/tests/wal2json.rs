//! wal2json: the same transactions as pgoutput, slot plugin checks, reconnects. These tests
//! fail (never skip) when the server lacks the plugin; see `support::require_wal2json`.

use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::{Plugin, ReplicationHandle, Transaction};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::resilience::collect;
use crate::support::{WAIT, config_for, finish, next, require_wal2json, start_streaming};
use crate::types;

/// Tables beside `types::SCHEMA`: a TOASTed document, a composite key with a generated
/// column, a key-less table (not published) and a table outside the published schemas.
const MORE_SCHEMA: &str = "
    CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
    CREATE TABLE comp (a int, b text, c int, twice int GENERATED ALWAYS AS (a * 2) STORED,
                       PRIMARY KEY (c, a));
    CREATE TABLE keyless (a int);
    CREATE SCHEMA elsewhere;
    CREATE TABLE elsewhere.t (id int PRIMARY KEY);";

/// One statement list per transaction, in commit order.
const WORKLOAD: &[&str] = &[
    types::INSERT,
    "UPDATE everything SET t = 'ñ', a_i4 = '{}' WHERE id = 1",
    "UPDATE everything SET id = 3 WHERE id = 2",
    "DELETE FROM everything WHERE id = 3",
    "ALTER TABLE everything REPLICA IDENTITY FULL",
    "UPDATE everything SET i2 = 5 WHERE id = 1",
    "DELETE FROM everything WHERE id = 1",
    "INSERT INTO docs SELECT 1, 'first', string_agg(md5(g::text), '') FROM generate_series(1, 40000) g",
    "UPDATE docs SET title = 'second'",
    "UPDATE docs SET body = body || 'x'",
    "INSERT INTO comp VALUES (1, 'b', 2)",
    "UPDATE comp SET b = 'c'",
    "UPDATE comp SET a = 5",
    "DELETE FROM comp",
    "INSERT INTO keyless VALUES (1); INSERT INTO elsewhere.t VALUES (1)",
    "BEGIN; INSERT INTO everything (id, t) VALUES (9, 'in tx'); \
     SELECT pg_logical_emit_message(true, 'fluxbase', 'transactional'); COMMIT",
    "SELECT pg_logical_emit_message(false, 'fluxbase', 'hé')",
    "CREATE TABLE later (id int PRIMARY KEY); ALTER PUBLICATION pub_diff_pgoutput ADD TABLE later; \
     ALTER PUBLICATION pub_diff_wal2json ADD TABLE later; INSERT INTO later VALUES (1)",
    "CREATE TYPE color AS ENUM ('red', 'blue'); \
     ALTER TABLE later ADD COLUMN c color[] DEFAULT '{blue}'; INSERT INTO later VALUES (2)",
    "INSERT INTO everything (id, j, jb) VALUES (20, 'null', ' null'), (21, NULL, NULL)",
    "DELETE FROM everything WHERE id IN (20, 21)",
    "TRUNCATE everything, comp",
    "SELECT pg_logical_emit_message(false, 'end', '')",
];

/// Receives (and acknowledges) transactions up to the one carrying the `end` message.
async fn until_end(
    handle: &ReplicationHandle,
    rx: &mut mpsc::Receiver<Transaction>,
) -> Vec<Transaction> {
    let mut out = Vec::new();
    loop {
        let tx = next(handle, rx).await;
        let end = tx
            .changes
            .iter()
            .any(|c| c.message.as_ref().is_some_and(|m| m.prefix == "end"));
        out.push(tx);
        if end {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_plugins_give_the_same_transactions() {
    let db = TestDb::new().await;
    require_wal2json(&db).await;
    let client = db.client().await;
    client.batch_execute(types::SCHEMA).await.unwrap();
    client.batch_execute(MORE_SCHEMA).await.unwrap();
    let (pg_slot, w2j_slot) = ("diff_pgoutput", "diff_wal2json");
    let (pg, mut pg_rx) = start_streaming(config_for(db.config(), pg_slot)).await;
    let mut config = config_for(db.config(), w2j_slot);
    config.plugin = Plugin::Wal2json;
    let (w2j, mut w2j_rx) = start_streaming(config).await;
    assert_eq!(w2j.status().plugin, "wal2json");

    for statements in WORKLOAD {
        client.batch_execute(statements).await.unwrap();
    }
    let expected = until_end(&pg, &mut pg_rx).await;
    let got = until_end(&w2j, &mut w2j_rx).await;

    // Sanity of the reference: every published change arrived, nothing of key-less or
    // unconfigured tables, the DDL-only transaction not at all.
    assert_eq!(expected.len(), WORKLOAD.len() - 2, "{expected:#?}");
    let tables: Vec<&str> = expected
        .iter()
        .flat_map(|t| &t.changes)
        .map(|c| &*c.table)
        .collect();
    assert!(
        !tables.contains(&"keyless") && !tables.contains(&"t"),
        "{tables:?}"
    );
    assert_eq!(
        Value::Object(got[0].changes[0].record.clone().unwrap()),
        types::expected_row_1()
    );

    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        // Whole transactions, commit and end LSNs and commit times included. `begin_lsn` is
        // where each plugin wrote its Begin: the transaction's first record for wal2json,
        // the first published change for pgoutput (which delays Begin from PG 15).
        let without_begin = |tx: &Transaction| {
            let mut value = shrink(serde_json::to_value(tx).unwrap());
            value.as_object_mut().unwrap().remove("begin_lsn");
            value
        };
        assert_eq!(without_begin(g), without_begin(e), "wal2json vs pgoutput");
        assert!(g.begin_lsn <= e.begin_lsn && g.begin_lsn <= g.commit_lsn);
    }
    // A few of the semantics compared above, spelled out.
    let change = |i: usize| &got[i].changes[0];
    assert!(change(1).old_record.is_none(), "key unchanged: no old key");
    assert_eq!(change(2).old_record.as_ref().unwrap()["id"], json!(2));
    assert_eq!(change(4).old_record.as_ref().unwrap()["t"], json!("ñ"));
    assert_eq!(change(7).unchanged_toast, vec!["body".to_owned()]);
    assert_eq!(
        Value::Object(change(11).old_record.clone().unwrap()),
        json!({"a": 1, "c": 2})
    );
    assert!(!change(10).record.as_ref().unwrap().contains_key("twice"));
    // JSON null literals are told apart from SQL NULL, in new and old rows alike.
    let nulls = got
        .iter()
        .find(|t| {
            t.changes.iter().any(|c| {
                c.record
                    .as_ref()
                    .is_some_and(|r| r.get("id") == Some(&json!(20)))
            })
        })
        .expect("the json null insert");
    assert_eq!(
        nulls.changes[0].json_nulls,
        vec!["j".to_owned(), "jb".to_owned()]
    );
    assert_eq!(nulls.changes[0].record.as_ref().unwrap()["jb"], Value::Null);
    assert!(nulls.changes[1].json_nulls.is_empty());
    let deleted = got
        .iter()
        .find(|t| t.changes.len() == 2 && t.changes[0].op == fluxbase_replication::Op::Delete)
        .expect("the json null delete");
    assert_eq!(
        deleted.changes[0].old_json_nulls,
        vec!["j".to_owned(), "jb".to_owned()]
    );
    assert!(deleted.changes[1].old_json_nulls.is_empty());

    finish(&db, pg, pg_slot).await;
    finish(&db, w2j, w2j_slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_of_another_plugin_is_an_error_naming_both() {
    let db = TestDb::new().await;
    require_wal2json(&db).await;
    let client = db.client().await;
    let slot = "wal2json_mismatch";
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .unwrap();
    let mut config = config_for(db.config(), slot);
    config.plugin = Plugin::Wal2json;
    let (handle, _rx) = fluxbase_replication::start(config).unwrap();
    let mut status = handle.watch_status();
    let status = timeout(WAIT, status.wait_for(|s| s.last_error.is_some()))
        .await
        .expect("the stream reports the error")
        .unwrap()
        .clone();
    let error = status.last_error.unwrap();
    assert!(!status.connected);
    assert!(
        error.contains("slot") && error.contains("pgoutput") && error.contains("wal2json"),
        "{error}"
    );
    let plugin: String = client
        .query_one(
            "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plugin, "pgoutput", "the slot is left alone");
    finish(&db, handle, slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal2json_creates_its_slot_and_survives_a_killed_walsender() {
    let db = TestDb::new().await;
    require_wal2json(&db).await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE events (id int8 PRIMARY KEY)")
        .await
        .unwrap();
    let slot = "wal2json_kill";
    let mut config = config_for(db.config(), slot);
    config.plugin = Plugin::Wal2json;
    let (handle, mut rx) = start_streaming(config).await;
    let plugin: String = client
        .query_one(
            "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plugin, "wal2json");

    let producer_client = db.client().await;
    let producer = tokio::spawn(async move {
        for i in 1..=100i64 {
            producer_client
                .execute("INSERT INTO events VALUES ($1)", &[&i])
                .await
                .unwrap();
        }
    });
    let mut seen = Vec::new();
    collect(&handle, &mut rx, &mut seen, 30).await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots \
             WHERE slot_name = $1 AND active",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    collect(&handle, &mut rx, &mut seen, 100).await;
    producer.await.unwrap();
    // Everything may have been buffered before the kill: wait for the reconnect, then check
    // the new session streams on without re-delivering anything.
    timeout(
        WAIT,
        handle
            .watch_status()
            .wait_for(|s| s.reconnects >= 1 && s.connected),
    )
    .await
    .expect("reconnected in time")
    .unwrap();
    client
        .batch_execute("INSERT INTO events VALUES (101)")
        .await
        .unwrap();
    collect(&handle, &mut rx, &mut seen, 101).await;
    assert_eq!(seen, (1..=101).collect::<Vec<_>>());
    finish(&db, handle, slot).await;
}

/// `value` with long strings (the TOASTed document) replaced by their length and a checksum,
/// so a failed comparison prints something readable.
fn shrink(value: Value) -> Value {
    match value {
        Value::String(s) if s.len() > 100 => {
            let sum = s
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            json!(format!("<{} bytes, checksum {sum:x}>", s.len()))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(shrink).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, shrink(v))).collect()),
        other => other,
    }
}
