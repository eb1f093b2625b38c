//! Changes across instances: one slot leader, every instance fanning out with its own RLS
//! decisions; the leader SIGKILLed mid-burst; Redis restarted mid-stream.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::{Redis, is_leader, leader_of, start_instances};
use crate::support::{Ws, WsEvent, token};

/// Owners of rows: the first three have sockets on every instance; the fourth has none
/// (its rows must reach nobody).
const OWNERS: [&str; 4] = [
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "33333333-3333-4333-8333-333333333333",
    "44444444-4444-4444-8444-444444444444",
];

/// `items`, readable by its owner only.
async fn setup(db: &TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.items (id bigserial PRIMARY KEY, owner uuid NOT NULL, n int NOT NULL);
             ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;
             CREATE POLICY items_owner ON public.items FOR SELECT TO authenticated USING (owner = auth.uid());
             GRANT SELECT ON public.items TO authenticated;",
        )
        .await
        .unwrap();
    client
}

/// A socket of `owner` on `addr`, subscribed to `items`.
async fn subscriber(addr: &str, owner: &str) -> Ws {
    let t = token(json!({"sub": owner, "role": "authenticated"}));
    let mut ws = Ws::connect(addr, Some(&t)).await;
    let ack = ws.subscribe("items", json!({"table": "items"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ws
}

/// Reads `want` changes (or fails at the deadline or on a close); returns their `n`s.
async fn collect(ws: &mut Ws, owner: &str, want: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < want {
        match ws.next_event().await {
            WsEvent::Frame(f) if f["type"] == "postgres_changes" => {
                let record = &f["payload"]["record"];
                assert_eq!(record["owner"], owner, "a row of another owner leaked: {f}");
                got.push(record["n"].as_i64().unwrap());
            }
            WsEvent::Frame(_) => {}
            WsEvent::Closed(c) => panic!("socket closed after {} events: {c:?}", got.len()),
        }
    }
    // Nothing more: a heartbeat's answer comes next.
    ws.send(json!({"type": "heartbeat"})).await;
    loop {
        match ws.next_event().await {
            WsEvent::Frame(f) if f["type"] == "heartbeat" => break,
            WsEvent::Frame(f) if f["type"] == "postgres_changes" => {
                panic!("an extra (duplicated?) change after {want}: {f}")
            }
            WsEvent::Frame(_) => {}
            WsEvent::Closed(c) => panic!("socket closed: {c:?}"),
        }
    }
    got
}

/// Inserts rows `from..to`, one transaction each, owners in turn.
async fn burst(client: &tokio_postgres::Client, from: i32, to: i32) {
    for n in from..to {
        let owner: uuid::Uuid = OWNERS[n as usize % OWNERS.len()].parse().unwrap();
        client
            .execute(
                "INSERT INTO items (owner, n) VALUES ($1, $2)",
                &[&owner, &n],
            )
            .await
            .unwrap();
    }
}

/// The `n`s `owner` may see among `0..total`, in commit order.
fn expected(owner: usize, total: i32) -> Vec<i64> {
    (0..total)
        .filter(|n| *n as usize % OWNERS.len() == owner)
        .map(i64::from)
        .collect()
}

/// Three instances, sockets of three owners on each, a burst of single-row transactions;
/// the leader is SIGKILLed in the middle of it. Every socket on a surviving instance gets
/// exactly its owner's rows, in commit order: none lost, none twice, none of another owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_burst_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let client = setup(&db).await;
    let redis = Redis::start().await;
    let mut instances = start_instances(&db, &redis, 3).await;
    let addrs: Vec<String> = instances.iter().map(|(s, _)| s.addr.clone()).collect();
    let leader = leader_of(&addrs).await;

    // Sockets on the instances that survive; those on the leader die with it.
    let mut sockets = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        for (o, owner) in OWNERS[..3].iter().enumerate() {
            sockets.push((i, o, subscriber(addr, owner).await));
        }
    }

    const TOTAL: i32 = 240;
    let writer = {
        let db_client = db.client().await;
        tokio::spawn(async move {
            burst(&db_client, 0, TOTAL / 3).await;
            db_client
        })
    };
    let db_client = writer.await.unwrap();
    // Killed while the burst is under way: the writer goes on meanwhile.
    let rest = tokio::spawn(async move {
        burst(&db_client, TOTAL / 3, TOTAL).await;
    });
    let (killed, _dir) = instances.remove(leader);
    let killed_at = Instant::now();
    let (status, _) = killed.stop(libc::SIGKILL).await;
    assert!(!status.success());
    let survivors: Vec<String> = instances.iter().map(|(s, _)| s.addr.clone()).collect();
    let new_leader = loop {
        let mut found = None;
        for (i, addr) in survivors.iter().enumerate() {
            if is_leader(addr).await {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break i;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "no new leader"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let failover = killed_at.elapsed();
    println!("scale-out failover: a new leader {failover:?} after SIGKILL of the old one");
    // `realtime.leader_failover_timeout` (5 s) plus the health poll's granularity.
    assert!(
        failover < Duration::from_secs(6),
        "failover took {failover:?}"
    );
    rest.await.unwrap();

    let mut checked = 0;
    for (i, o, mut ws) in sockets {
        if i == leader {
            continue;
        }
        let want = expected(o, TOTAL);
        let got = collect(&mut ws, OWNERS[o], want.len()).await;
        assert_eq!(got, want, "instance {i}, owner {o}");
        checked += 1;
    }
    assert_eq!(checked, 6);
    // The new leader is the only one.
    assert_eq!(leader_of(&survivors).await, new_leader);
    let _ = (client, redis);
}

/// Redis restarted (SIGKILL, then started on its append-only file) while transactions
/// stream: the leader holds the slot until Redis is back, the readers resume from their
/// position; every socket gets each of its rows once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let _client = setup(&db).await;
    let mut redis = Redis::start().await;
    let instances = start_instances(&db, &redis, 2).await;
    let mut sockets = Vec::new();
    for (i, (server, _)) in instances.iter().enumerate() {
        for (o, owner) in OWNERS[..3].iter().enumerate() {
            sockets.push((i, o, subscriber(&server.addr, owner).await));
        }
    }
    const TOTAL: i32 = 120;
    let writer = db.client().await;
    burst(&writer, 0, TOTAL / 2).await;
    redis.restart().await;
    burst(&writer, TOTAL / 2, TOTAL).await;
    let mut by_instance: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, o, mut ws) in sockets {
        let want = expected(o, TOTAL);
        let got = collect(&mut ws, OWNERS[o], want.len()).await;
        assert_eq!(got, want, "instance {i}, owner {o}");
        *by_instance.entry(i).or_default() += 1;
    }
    assert_eq!(by_instance, BTreeMap::from([(0, 3), (1, 3)]));
}

/// The leader's lock session is cut (terminated by the server, as a lost connection ends
/// it): the leader notices, stops its stream and steps down; a leader (either instance) is
/// elected again and every row reaches a socket once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lock_connection_makes_the_leader_step_down_without_loss() {
    let db = TestDb::new().await;
    let client = setup(&db).await;
    let redis = Redis::start().await;
    let mut instances = start_instances(&db, &redis, 2).await;
    let addrs: Vec<String> = instances.iter().map(|(s, _)| s.addr.clone()).collect();
    let leader = leader_of(&addrs).await;
    let mut sockets = Vec::new();
    for addr in &addrs {
        sockets.push(subscriber(addr, OWNERS[0]).await);
    }
    const TOTAL: i32 = 80;
    burst(&client, 0, TOTAL / 2).await;
    // The lock holder's session only (this database's: the tests share one cluster).
    let cut: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a \
             JOIN pg_locks l ON l.pid = a.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cut, 1);
    instances[leader]
        .0
        .wait_for_log("stepped down as realtime leader; electing again")
        .await;
    burst(&client, TOTAL / 2, TOTAL).await;
    for mut ws in sockets {
        let want = expected(0, TOTAL);
        assert_eq!(collect(&mut ws, OWNERS[0], want.len()).await, want);
    }
    leader_of(&addrs).await;
}
