//! Supervision of the engine's actors, with the test-only fault hook of debug builds
//! (`FLUXBASE_TEST_FAULTS`): a dispatcher that panics mid-fan-out restarts and delivers
//! every change once (the connections it had reached are skipped by LSN); a change that
//! crashes it three times is set aside, counted, and the slot moves past it; the health
//! endpoint shows `realtime: degraded` while the dispatcher is down, then healthy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use fluxbase_migrations::test_utils::TestDb;

use crate::support::{Ws, http, realtime_server};

/// The faults armed in these tests' servers, whose health is polled often (no rate limit).
const ENV: &[(&str, &str)] = &[
    ("FLUXBASE_TEST_FAULTS", "dispatcher_panic,slow_restarts"),
    ("FLUXBASE_SECURITY_RATE_LIMIT_ENABLED", "false"),
];

/// Health snapshots taken every 20 ms by a background task until stopped.
struct HealthLog {
    seen: Arc<Mutex<Vec<Value>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthLog {
    fn start(addr: &str) -> HealthLog {
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (addr, log) = (addr.to_string(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let res = http(&addr, "GET", "/api/v1/monitoring/health").await;
                if let Ok(v) = serde_json::from_str::<Value>(&res.body) {
                    log.lock().unwrap().push(v);
                }
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        });
        HealthLog { seen, stop, task }
    }

    /// Stops and returns the snapshots.
    async fn finish(self) -> Vec<Value> {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

/// The dispatcher's state in a health snapshot.
fn dispatcher(health: &Value) -> &Value {
    &health["components"]["realtime"]["actors"]["realtime.dispatcher"]
}

/// Polls the health endpoint until realtime is healthy with the dispatcher running after
/// `restarts` restarts; returns that snapshot.
async fn healthy_after(addr: &str, restarts: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = http(addr, "GET", "/api/v1/monitoring/health").await;
        let v: Value = serde_json::from_str(&res.body).unwrap();
        if v["components"]["realtime"]["status"] == "healthy"
            && dispatcher(&v)["restarts"] == restarts
        {
            return v;
        }
        assert!(Instant::now() < deadline, "never healthy again: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `metric{labels} value` line's value.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn setup(db: &TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.events (id bigserial PRIMARY KEY, n int NOT NULL, fault text);
             GRANT SELECT ON public.events TO anon;",
        )
        .await
        .unwrap();
    client
}

/// The `n` of the next `count` changes a socket receives.
async fn received(ws: &mut Ws, count: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for _ in 0..count {
        let f = ws.frame_of("postgres_changes").await;
        out.push(f["payload"]["record"]["n"].as_i64().unwrap());
    }
    out
}

/// Proves nothing else is queued for `ws`.
async fn nothing_else(ws: &mut Ws, what: &str) {
    ws.send(json!({"type": "heartbeat"})).await;
    let f = ws.frame().await;
    assert_eq!(f["type"], "heartbeat", "{what}: {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_dispatcher_restarts_without_loss_or_duplicates() {
    let db = TestDb::new().await;
    let client = setup(&db).await;
    let (server, _dir) = realtime_server(&db, ENV).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = Ws::connect(&server.addr, None).await;
        assert_eq!(
            ws.subscribe("e", json!({"table": "events"})).await["type"],
            "ack"
        );
        sockets.push(ws);
    }
    let health = HealthLog::start(&server.addr);
    // Rows 4 and 7 crash the dispatcher once each, after it queued them for the first
    // socket.
    for n in 1..=9 {
        let fault = (n == 4 || n == 7).then_some("panic_once");
        client
            .execute(
                "INSERT INTO events (n, fault) VALUES ($1, $2)",
                &[&n, &fault],
            )
            .await
            .unwrap();
    }
    for ws in &mut sockets {
        assert_eq!(received(ws, 9).await, (1..=9).collect::<Vec<_>>());
        nothing_else(ws, "a change was delivered twice").await;
    }
    let healthy = healthy_after(&server.addr, 2).await;
    let seen = health.finish().await;
    assert!(
        seen.iter()
            .any(|h| h["components"]["realtime"]["status"] == "degraded"
                && dispatcher(h)["running"] == false),
        "realtime never showed degraded while the dispatcher restarted"
    );
    let error = dispatcher(&healthy)["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("lsn") && error.contains("test fault"),
        "{error}"
    );
    let metrics = http(&server.addr, "GET", "/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_engine_restarts_total{actor=\"realtime.dispatcher\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_realtime_poison_changes_total"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_change_is_set_aside_after_three_crashes() {
    let db = TestDb::new().await;
    let client = setup(&db).await;
    let (mut server, _dir) = realtime_server(&db, ENV).await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = Ws::connect(&server.addr, None).await;
        assert_eq!(
            ws.subscribe("e", json!({"table": "events"})).await["type"],
            "ack"
        );
        sockets.push(ws);
    }
    client
        .batch_execute("INSERT INTO events (n) VALUES (1)")
        .await
        .unwrap();
    for ws in &mut sockets {
        assert_eq!(received(ws, 1).await, [1]);
    }
    let health = HealthLog::start(&server.addr);
    client
        .batch_execute("INSERT INTO events (n, fault) VALUES (2, 'panic_always')")
        .await
        .unwrap();
    let after_poison: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute("INSERT INTO events (n) VALUES (3)")
        .await
        .unwrap();
    // Each crash came after one more socket had the change (never twice: by LSN); after
    // the third the change is set aside, and the fourth socket never gets it.
    for ws in &mut sockets[..3] {
        assert_eq!(received(ws, 2).await, [2, 3]);
    }
    assert_eq!(received(&mut sockets[3], 1).await, [3]);
    for ws in &mut sockets {
        nothing_else(ws, "a change was delivered twice").await;
    }
    let line = server
        .wait_for_log("change set aside: it crashed the dispatcher 3 times")
        .await;
    assert!(
        line["lsn"].as_str().is_some_and(|l| l.contains('/')),
        "{line}"
    );
    healthy_after(&server.addr, 3).await;
    let seen = health.finish().await;
    assert!(
        seen.iter()
            .any(|h| h["components"]["realtime"]["status"] == "degraded"),
        "realtime never showed degraded"
    );
    let metrics = http(&server.addr, "GET", "/metrics").await.body;
    assert_eq!(
        metric(&metrics, "fluxbase_realtime_poison_changes_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_engine_restarts_total{actor=\"realtime.dispatcher\"}"
        ),
        Some(3.0)
    );
    // The slot moved past the poison change: row 3, committed after it, is acknowledged.
    let after: fluxbase_replication::Lsn = after_poison.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = http(&server.addr, "GET", "/api/v1/monitoring/metrics")
            .await
            .json();
        let acked: fluxbase_replication::Lsn = m["realtime"]["replication"]["acknowledged_lsn"]
            .as_str()
            .unwrap_or_else(|| panic!("no acknowledged_lsn in {m}"))
            .parse()
            .unwrap();
        if acked > after {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never moved past the poison change: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
