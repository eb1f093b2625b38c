//! Database webhooks fed by real transactions from the replication stream: a change fires
//! its rule once; the same transaction taken again, replayed by the slot after a stream
//! restart, or taken by a new server instance enqueues nothing new.

use std::time::Duration;

use fluxbase_engine::jobs::{Caller, JobQuery, NewWebhookRule};
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::{ReplicationConfig, ReplicationHandle, Transaction};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::support::{Receiver, WAIT, eventually, service, service_key, settings, started};

/// A stream on `db` with its own slot, once it is connected.
async fn stream(db: &TestDb, slot: &str) -> (ReplicationHandle, mpsc::Receiver<Transaction>) {
    let mut config = ReplicationConfig::new(db.config());
    config.slot_name = slot.into();
    config.publication_name = format!("pub_{slot}");
    config.status_interval = Duration::from_millis(100);
    config.backoff_min = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    let (handle, rx) = fluxbase_replication::start(config).expect("valid config");
    let mut status = handle.watch_status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.connected))
        .await
        .expect("stream connects")
        .expect("stream alive");
    (handle, rx)
}

/// The next transaction touching `orders` (not acknowledged).
async fn next_orders_tx(rx: &mut mpsc::Receiver<Transaction>) -> Transaction {
    loop {
        let tx = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a transaction in time")
            .expect("stream open");
        if tx.changes.iter().any(|c| &*c.table == "orders") {
            return tx;
        }
    }
}

#[actix::test]
async fn a_change_fires_its_rule_once_across_replays_and_restarts() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        .await
        .unwrap();
    let mut receiver = Receiver::always(200, "{}").await;
    let jobs = started(&db, settings()).await;
    let admin = Caller::Admin("ops".into());
    let rule = jobs
        .create_webhook(
            &admin,
            NewWebhookRule {
                name: "paid-orders".into(),
                table: "orders".into(),
                events: vec!["insert".into(), "UPDATE".into()],
                filter: Some("status=eq.paid".into()),
                url: receiver.url.clone(),
                headers: [(
                    "authorization".to_string(),
                    "Bearer receiver-token".to_string(),
                )]
                .into(),
                ..NewWebhookRule::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rule.events, ["INSERT", "UPDATE"]);
    assert_eq!(jobs.list_webhooks(&admin).await.unwrap().len(), 1);

    let slot = "jobs_webhooks_once";
    let (handle, mut rx) = stream(&db, slot).await;
    // One transaction, three changes: a paid insert (fires), an open insert (filtered
    // out), and an update to paid (fires).
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO orders VALUES (1, 'paid');
             INSERT INTO orders VALUES (2, 'open');
             UPDATE orders SET status = 'paid' WHERE id = 2;
             COMMIT;",
        )
        .await
        .unwrap();
    let tx = next_orders_tx(&mut rx).await;
    assert_eq!(tx.changes.len(), 3);
    let webhooks = jobs.webhooks();
    assert_eq!(webhooks.take(&tx).await.unwrap(), 2);
    assert_eq!(
        webhooks.take(&tx).await.unwrap(),
        0,
        "taken twice: nothing new"
    );

    // Not acknowledged: after a stream restart the slot replays the same transaction.
    handle.shutdown().await;
    let (handle, mut rx) = stream(&db, slot).await;
    let replayed = next_orders_tx(&mut rx).await;
    assert_eq!(replayed.commit_lsn, tx.commit_lsn);
    // A new server instance (fresh rule cache) takes the replay.
    let restarted = service(&db, settings());
    assert_eq!(restarted.webhooks().take(&replayed).await.unwrap(), 0);
    handle.ack(replayed.end_lsn);

    // Each change reached the receiver once, in Supabase's shape, with the rule's header.
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let request = receiver.next().await;
        assert_eq!(
            request.header("authorization"),
            Some("Bearer receiver-token")
        );
        bodies.push(serde_json::from_slice::<Value>(&request.body).unwrap());
    }
    bodies.sort_by_key(|b| b["type"].as_str().unwrap().to_string());
    assert_eq!(bodies[0]["type"], "INSERT");
    assert_eq!(bodies[0]["schema"], "public");
    assert_eq!(bodies[0]["table"], "orders");
    assert_eq!(bodies[0]["record"], json!({"id": 1, "status": "paid"}));
    assert_eq!(bodies[0]["old_record"], Value::Null);
    assert_eq!(bodies[0]["commit_lsn"], tx.commit_lsn.to_string());
    assert_eq!(bodies[1]["type"], "UPDATE");
    assert_eq!(bodies[1]["record"], json!({"id": 2, "status": "paid"}));
    let delivered = eventually("both webhook jobs completed", || async {
        let page = jobs
            .list(
                &service_key(),
                &JobQuery {
                    name: Some("webhook:paid-orders".into()),
                    status: Some("completed".into()),
                    ..JobQuery::default()
                },
            )
            .await
            .unwrap();
        (page.jobs.len() == 2).then_some(page)
    })
    .await;
    assert!(delivered.jobs.iter().all(|j| j.owner.is_none()));
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM jobs.jobs WHERE name = 'webhook:paid-orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 2, "exactly one job per firing change");
    assert_eq!(receiver.received(), 2);
    handle.shutdown().await;
    jobs.shutdown().await;
}

#[actix::test]
async fn rule_changes_are_seen_by_the_next_transaction() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        .await
        .unwrap();
    let jobs = started(
        &db,
        fluxbase_engine::jobs::JobsSettings {
            max_concurrent_per_worker: 0,
            ..settings()
        },
    )
    .await;
    let slot = "jobs_webhooks_rules";
    let (handle, mut rx) = stream(&db, slot).await;
    let webhooks = jobs.webhooks();
    client
        .batch_execute("INSERT INTO orders VALUES (1, 'paid')")
        .await
        .unwrap();
    let first = next_orders_tx(&mut rx).await;
    assert_eq!(webhooks.take(&first).await.unwrap(), 0, "no rule yet");
    // A rule written by SQL (not through the API): the NOTIFY invalidates the cache.
    client
        .batch_execute(
            "INSERT INTO jobs.webhooks (name, table_name, events, url) \
             VALUES ('deletes', 'orders', ARRAY['DELETE'], 'https://example.com/hook')",
        )
        .await
        .unwrap();
    client
        .batch_execute("DELETE FROM orders WHERE id = 1")
        .await
        .unwrap();
    let second = next_orders_tx(&mut rx).await;
    let taken = eventually("the rule to be seen", || async {
        let n = webhooks.take(&second).await.unwrap();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(taken, 1);
    let payload = client
        .query_one(
            "SELECT payload FROM jobs.jobs WHERE name = 'webhook:deletes'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, Value>(0);
    assert_eq!(payload["body"]["type"], "DELETE");
    assert_eq!(payload["body"]["old_record"]["id"], 1);
    handle.ack(second.end_lsn);
    handle.shutdown().await;
    jobs.shutdown().await;
}
