//! `realtime.max_connections_per_user` across instances, atomic in Redis.

use std::time::{Duration, Instant};

use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::{Redis, cluster_env};
use crate::support::{EVENT_TIMEOUT, Ws, WsEvent, realtime_server, token};

/// Whether a socket of `t` on `addr` is refused with the per-user limit's close.
async fn refused(addr: &str, t: &str) -> bool {
    let mut ws = Ws::connect(addr, Some(t)).await;
    ws.send(json!({"type": "heartbeat"})).await;
    loop {
        match ws.next_event().await {
            WsEvent::Frame(f) if f["type"] == "heartbeat" => return false,
            WsEvent::Frame(_) => {}
            WsEvent::Closed(Some((code, reason))) => {
                assert_eq!(code, 4029, "{reason}");
                assert!(
                    reason.contains("realtime.max_connections_per_user"),
                    "{reason}"
                );
                return true;
            }
            WsEvent::Closed(None) => panic!("closed without a reason"),
        }
    }
}

/// With a limit of 2 per user, a user's third socket is refused on whichever instance it
/// lands; once one closes, a new one is admitted elsewhere. Another user is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_limit_holds_across_instances() {
    let db = TestDb::new().await;
    let redis = Redis::start().await;
    let mut env = cluster_env(&redis);
    env.push(("FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER", "2".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, _da) = realtime_server(&db, &env).await;
    let (b, _db) = realtime_server(&db, &env).await;
    let user =
        token(json!({"sub": "9a1b2c3d-0000-4000-8000-000000000001", "role": "authenticated"}));
    let other =
        token(json!({"sub": "9a1b2c3d-0000-4000-8000-000000000002", "role": "authenticated"}));

    let mut first = Ws::connect(&a.addr, Some(&user)).await;
    first.send(json!({"type": "heartbeat"})).await;
    assert_eq!(first.frame().await["type"], "heartbeat");
    let mut second = Ws::connect(&b.addr, Some(&user)).await;
    second.send(json!({"type": "heartbeat"})).await;
    assert_eq!(second.frame().await["type"], "heartbeat");
    // One per instance, two in all: the third is refused on either instance.
    assert!(refused(&a.addr, &user).await);
    assert!(refused(&b.addr, &user).await);
    assert!(!refused(&a.addr, &other).await);

    // A socket closes on a; a new one on b is admitted once the release reached Redis.
    first.inner.close(None).await.unwrap();
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while refused(&b.addr, &user).await {
        assert!(
            Instant::now() < deadline,
            "the closed socket was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `security.rate_limit.requests_per_minute` (5 here) per address across two instances:
/// three requests on each, the sixth is refused with 429 and `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_minute_rate_limit_holds_across_instances() {
    let db = TestDb::new().await;
    let redis = Redis::start().await;
    let mut env = cluster_env(&redis);
    env.push((
        "FLUXBASE_SECURITY_RATE_LIMIT_REQUESTS_PER_MINUTE",
        "5".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, _da) = realtime_server(&db, &env).await;
    let (b, _db) = realtime_server(&db, &env).await;
    let mut statuses = Vec::new();
    for addr in [&a.addr, &b.addr, &a.addr, &b.addr, &a.addr, &b.addr] {
        let res = crate::support::http(addr, "GET", "/api/v1/monitoring/health").await;
        if res.status == 429 {
            assert!(res.header("retry-after").is_some(), "{res:?}");
            assert!(
                res.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("security.rate_limit.requests_per_minute"),
                "{res:?}"
            );
        }
        statuses.push(res.status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429], "{statuses:?}");
}
