//! Database webhooks fed by the engine's replication consumer: the slot is acknowledged
//! only once webhooks took a transaction, delivery to sockets never waits for them, and
//! each change fires its rule exactly once — across a replication restart and across a
//! server restart (a new engine on the same slot replaying what the old one never
//! acknowledged).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fluxbase_auth::AuthContext;
use fluxbase_engine::jobs::{Caller, Jobs, JobsSettings, NewWebhookRule};
use fluxbase_engine::realtime::RealtimeSettings;
use fluxbase_engine::supervise::Supervision;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};
use fluxbase_replication::Lsn;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{TestEngine, connect, next_change, subscribe};

/// Upper bound of any awaited condition.
const WAIT: Duration = Duration::from_secs(30);

/// Bodies POSTed to a local receiver, by order id.
type Seen = Arc<Mutex<BTreeMap<i64, usize>>>;

/// A local HTTP receiver answering 200; counts the `record.id` of each body.
async fn receiver() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // One request per connection is enough here: head, then the body.
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&body[..length])
                        && let Some(id) = v["record"]["id"].as_i64()
                    {
                        *counts.lock().unwrap().entry(id).or_default() += 1;
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, seen)
}

/// Polls `check` until true, failing after [`WAIT`].
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn jobs_settings() -> JobsSettings {
    JobsSettings {
        signing_secret: "test-signing-secret-0123456789".into(),
        allow_private_urls: true,
        lease: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(250),
        backoff_base: Duration::from_millis(200),
        http_timeout: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(5),
        ..JobsSettings::default()
    }
}

fn db_pool(db: &TestDb) -> Db {
    Db::new(
        db.config(),
        PoolSettings {
            max_connections: 10,
            min_connections: 0,
            ..PoolSettings::default()
        },
    )
}

/// The current WAL position.
async fn wal_lsn(client: &tokio_postgres::Client) -> Lsn {
    let text: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    text.parse().unwrap()
}

/// The engine's acknowledged LSN.
fn acknowledged(engine: &fluxbase_engine::realtime::Engine) -> Lsn {
    engine
        .stats()
        .replication
        .map_or(Lsn::ZERO, |r| r.acknowledged_lsn)
}

/// `public.orders` (readable by anon), jobs running, and a webhook rule on its INSERTs
/// POSTing to a local receiver; returns a client, the jobs and what the receiver saw.
async fn orders_with_webhook(db: &TestDb) -> (tokio_postgres::Client, Jobs, Seen) {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, status text);
             GRANT SELECT ON public.orders TO anon;",
        )
        .await
        .unwrap();
    let (url, seen) = receiver().await;
    let jobs = Jobs::new(
        db_pool(db),
        db.config(),
        jobs_settings(),
        Supervision::default(),
    )
    .unwrap();
    jobs.start().await.unwrap();
    jobs.create_webhook(
        &Caller::Admin("ops".into()),
        NewWebhookRule {
            name: "orders".into(),
            table: "orders".into(),
            events: vec!["INSERT".into()],
            url,
            ..NewWebhookRule::default()
        },
    )
    .await
    .unwrap();
    (client, jobs, seen)
}

/// Holds `jobs.jobs` in EXCLUSIVE mode until the transaction ends: webhooks' INSERT waits.
/// Unlike ACCESS EXCLUSIVE (WAL-logged for hot standby) it takes no xid, so the other
/// tests' slot creations, which wait for every xid-holding transaction in the shared
/// cluster, do not wait for this one.
async fn lock_jobs(locker: &mut tokio_postgres::Client) -> tokio_postgres::Transaction<'_> {
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE jobs.jobs IN EXCLUSIVE MODE")
        .await
        .unwrap();
    lock
}

/// Stops the engine and jobs, and drops the engine's slot (the tests share one cluster).
async fn wind_down(engine: TestEngine, jobs: &Jobs, client: &tokio_postgres::Client) {
    let slot = engine.slot.clone();
    engine.stop().await;
    jobs.shutdown().await;
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .ok();
}

#[actix::test]
async fn a_webhook_fires_once_per_change_across_replication_and_server_restarts() {
    let db = TestDb::new().await;
    let (client, jobs, seen) = orders_with_webhook(&db).await;

    let pool = fluxbase_engine::realtime::rls::fallback_pool(db.config(), 4);
    let first = TestEngine::new(&db, pool.clone(), RealtimeSettings::default()).await;
    first.engine.set_webhooks(jobs.webhooks());
    first.start(&db).await;
    let (conn, mut rx) = connect(&first.engine, AuthContext::anon());
    subscribe(&first.engine, &conn, "orders").await;
    let insert = |id: i32| {
        let client = &client;
        async move {
            client
                .execute("INSERT INTO orders VALUES ($1, 'new')", &[&id])
                .await
                .unwrap();
        }
    };
    for id in 1..=2 {
        insert(id).await;
    }
    let before = wal_lsn(&client).await;
    insert(3).await;
    for id in 1..=3 {
        let frame = next_change(&mut rx).await;
        assert_eq!(frame["payload"]["record"]["id"], id, "{frame}");
    }
    until("rows 1-3 taken", || acknowledged(&first.engine) > before).await;

    // Webhooks cannot enqueue (jobs.jobs locked): the slot is not acknowledged past the
    // row, though realtime delivered it. Meanwhile replication restarts, twice over.
    let mut locker = db.client().await;
    let lock = lock_jobs(&mut locker).await;
    let before = wal_lsn(&client).await;
    insert(4).await;
    // Realtime does not wait for webhooks: row 4 is delivered while they are blocked.
    let frame = next_change(&mut rx).await;
    assert_eq!(frame["payload"]["record"]["id"], 4, "{frame}");
    // Webhooks are inside their INSERT, waiting for the lock: nothing can be acknowledged.
    let deadline = Instant::now() + WAIT;
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE relation = 'jobs.jobs'::regclass AND NOT granted",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks never tried to enqueue row 4"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first.engine.restart().await);
    client
        .batch_execute(
            // This database's walsenders only: the tests share one cluster.
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE backend_type = 'walsender' AND datname = current_database()",
        )
        .await
        .unwrap();
    assert!(
        acknowledged(&first.engine) < before,
        "acknowledged past a transaction webhooks had not taken"
    );
    lock.rollback().await.unwrap();
    until("the slot to move past row 4", || {
        acknowledged(&first.engine) > before
    })
    .await;
    insert(5).await;
    let frame = next_change(&mut rx).await;
    assert_eq!(
        frame["payload"]["record"]["id"], 5,
        "no duplicate, no gap: {frame}"
    );

    // Server restart while row 6 (and maybe row 5, whose webhook may not have enqueued
    // before the lock) is not taken yet: the new engine replays it.
    let lock = lock_jobs(&mut locker).await;
    let before = wal_lsn(&client).await;
    insert(6).await;
    assert_eq!(next_change(&mut rx).await["payload"]["record"]["id"], 6);
    first.stop().await;
    lock.rollback().await.unwrap();
    let second = TestEngine::new(&db, pool.clone(), RealtimeSettings::default()).await;
    second.engine.set_webhooks(jobs.webhooks());
    second.start(&db).await;
    until("the new engine to take row 6", || {
        acknowledged(&second.engine) > before
    })
    .await;
    insert(7).await;

    let want: BTreeMap<i64, usize> = (1..=7).map(|id| (id, 1)).collect();
    until("every webhook delivered", || {
        seen.lock().unwrap().len() == 7
    })
    .await;
    // Each change has one job (idempotency key: rule, commit LSN, change index).
    let jobs_total: i64 = client
        .query_one(
            "SELECT count(*) FROM jobs.jobs WHERE name = 'webhook:orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs_total, 7, "exactly one job per change");
    assert_eq!(*seen.lock().unwrap(), want, "each change POSTed once");
    wind_down(second, &jobs, &client).await;
}

#[actix::test]
async fn delivery_never_waits_for_webhooks_that_cannot_enqueue() {
    let db = TestDb::new().await;
    let (client, jobs, seen) = orders_with_webhook(&db).await;
    let pool = fluxbase_engine::realtime::rls::fallback_pool(db.config(), 2);
    let engine = TestEngine::new(&db, pool, RealtimeSettings::default()).await;
    engine.engine.set_webhooks(jobs.webhooks());
    engine.start(&db).await;
    let (conn, mut rx) = connect(&engine.engine, AuthContext::anon());
    subscribe(&engine.engine, &conn, "orders").await;

    // Webhooks blocked from the first transaction on: five transactions in a row still
    // reach the socket, in order, while the slot stays before the first.
    let mut locker = db.client().await;
    let lock = lock_jobs(&mut locker).await;
    let before = wal_lsn(&client).await;
    for id in 1..=5 {
        client
            .execute("INSERT INTO orders VALUES ($1, 'new')", &[&id])
            .await
            .unwrap();
    }
    for id in 1..=5 {
        let frame = next_change(&mut rx).await;
        assert_eq!(frame["payload"]["record"]["id"], id, "{frame}");
    }
    assert!(
        acknowledged(&engine.engine) < before,
        "acknowledged past transactions webhooks had not taken"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing enqueued yet");

    // Unblocked: webhooks catch up, each change fires once, and the slot follows.
    lock.rollback().await.unwrap();
    until("every webhook delivered", || {
        seen.lock().unwrap().len() == 5
    })
    .await;
    until("the slot to move on", || {
        acknowledged(&engine.engine) > before
    })
    .await;
    let want: BTreeMap<i64, usize> = (1..=5).map(|id| (id, 1)).collect();
    assert_eq!(*seen.lock().unwrap(), want, "each change POSTed once");
    wind_down(engine, &jobs, &client).await;
}
