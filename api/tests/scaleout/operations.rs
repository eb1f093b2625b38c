//! What operators see of a scaled-out cluster: metrics, health, the admin restart.

use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::{Redis, health, leader_of, start_instances};
use crate::support::{Ws, http, request, token};

/// A metric's value in a Prometheus scrape.
fn metric(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Two instances: the scale-out metrics are in the first scrape of both, exactly one
/// reports itself leader (gauge and health), the health endpoint shows the bus; the admin
/// restart answers on the follower, and a change still reaches the follower's socket after
/// it (its bus reader resumed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_restart_on_any_instance() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.notes (id bigserial PRIMARY KEY, body text);
             GRANT SELECT ON public.notes TO anon;",
        )
        .await
        .unwrap();
    let redis = Redis::start().await;
    let instances = start_instances(&db, &redis, 2).await;
    let addrs: Vec<String> = instances.iter().map(|(s, _)| s.addr.clone()).collect();
    let leader = leader_of(&addrs).await;
    let follower = 1 - leader;

    let mut leaders = 0.0;
    for addr in &addrs {
        let scrape = http(addr, "GET", "/metrics").await.body;
        for name in [
            "fluxbase_realtime_leader",
            "fluxbase_bus_lag_seconds",
            "fluxbase_bus_published_total",
            "fluxbase_bus_consumed_total",
        ] {
            assert!(metric(&scrape, name).is_some(), "{name} missing on {addr}");
        }
        leaders += metric(&scrape, "fluxbase_realtime_leader").unwrap();
    }
    assert_eq!(leaders, 1.0);
    let h = health(&addrs[follower]).await;
    assert_eq!(h["components"]["bus"]["role"], "follower", "{h}");
    assert_eq!(h["components"]["bus"]["connected"], true, "{h}");
    assert_eq!(h["components"]["realtime"]["bus"], "redis", "{h}");
    let h = health(&addrs[leader]).await;
    assert_eq!(h["components"]["bus"]["role"], "leader", "{h}");
    assert_eq!(h["components"]["replication"]["connected"], true, "{h}");

    let mut ws = Ws::connect(&addrs[follower], None).await;
    let ack = ws.subscribe("notes", json!({"table": "notes"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let admin = format!("Bearer {}", token(json!({"role": "service_role"})));
    let res = request(
        &addrs[follower],
        "POST",
        "/api/v1/admin/realtime/restart",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        "{}",
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["restarted"], true);
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('after the restart')")
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["body"], "after the restart");
    // The follower fanned out what the leader published (counted just after the socket
    // got it: polled).
    for (addr, name) in [
        (&addrs[follower], "fluxbase_bus_consumed_total"),
        (&addrs[leader], "fluxbase_bus_published_total"),
    ] {
        let deadline = std::time::Instant::now() + crate::support::EVENT_TIMEOUT;
        loop {
            let scrape = http(addr, "GET", "/metrics").await.body;
            if metric(&scrape, name).unwrap() >= 1.0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{name} stayed 0");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
