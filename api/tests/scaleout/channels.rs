//! Broadcast and presence across instances, and the presences of an instance that died.

use std::time::{Duration, Instant};

use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::{Redis, start_instances};
use crate::support::{Ws, WsEvent, request, token};

/// Joins `room` and returns the presence state's keys.
async fn join(ws: &mut Ws, room: &str) -> Vec<String> {
    let f = ws.subscribe(room, json!({})).await;
    assert_eq!(f["type"], "presence_state", "{f}");
    let mut keys: Vec<String> = f["payload"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The next presence diff's joined and left keys.
async fn diff(ws: &mut Ws) -> (Vec<String>, Vec<String>) {
    let f = ws.frame_of("presence_diff").await;
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    (keys(&f["payload"]["joins"]), keys(&f["payload"]["leaves"]))
}

/// Asserts nothing but the heartbeat's answer is queued on `ws`.
async fn quiet(ws: &mut Ws) {
    ws.send(json!({"type": "heartbeat"})).await;
    match ws.next_event().await {
        WsEvent::Frame(f) => assert_eq!(f["type"], "heartbeat", "unexpected frame: {f}"),
        WsEvent::Closed(c) => panic!("closed: {c:?}"),
    }
}

/// One socket per instance: a broadcast from a socket reaches the other two instances'
/// members once (not its sender), one from `POST /api/v1/realtime/broadcast` on any
/// instance reaches all three once; presence state is the union across instances; when
/// an instance is SIGKILLed its presence leaves the others' state within the heartbeat TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_presence_span_instances_and_a_dead_instance_leaves() {
    let db = TestDb::new().await;
    let redis = Redis::start().await;
    let mut instances = start_instances(&db, &redis, 3).await;
    let addrs: Vec<String> = instances.iter().map(|(s, _)| s.addr.clone()).collect();
    let mut a = Ws::connect(&addrs[0], None).await;
    let mut b = Ws::connect(&addrs[1], None).await;
    let mut c = Ws::connect(&addrs[2], None).await;

    assert!(join(&mut a, "room").await.is_empty());
    a.send(json!({"type": "presence", "channel": "room", "payload": {"event": "track", "state": {"name": "ada"}}})).await;
    let (joins, _) = diff(&mut a).await;
    assert_eq!(joins.len(), 1);
    let ada = joins[0].clone();
    // b and c join after: the state they get holds a's presence, tracked on another
    // instance.
    assert_eq!(join(&mut b, "room").await, vec![ada.clone()]);
    assert_eq!(join(&mut c, "room").await, vec![ada.clone()]);
    c.send(json!({"type": "presence", "channel": "room", "payload": {"event": "track", "state": {"name": "cy"}}})).await;
    let mut cy = String::new();
    for ws in [&mut a, &mut b, &mut c] {
        // b and c may still get a's join, published just before they joined (the bus is
        // asynchronous): it is already in their state, and skipped here.
        let (joins, leaves) = loop {
            let (joins, leaves) = diff(ws).await;
            if joins != vec![ada.clone()] {
                break (joins, leaves);
            }
        };
        assert_eq!(joins.len(), 1);
        assert!(leaves.is_empty());
        cy = joins[0].clone();
    }
    assert_ne!(cy, ada, "presence keys are unique across instances");

    // A socket's broadcast: the other instances' members, once; not the sender.
    a.send(json!({"type": "broadcast", "channel": "room", "payload": {"event": "cursor", "data": {"x": 1}}})).await;
    for ws in [&mut b, &mut c] {
        let f = ws.frame_of("broadcast").await;
        assert_eq!(f["payload"]["data"]["x"], 1, "{f}");
        quiet(ws).await;
    }
    quiet(&mut a).await;

    // The server's broadcast, from the third instance: everyone, once.
    let service = token(json!({"role": "service_role"}));
    let body = json!({"channel": "room", "event": "news", "payload": {"n": 7}}).to_string();
    let auth = format!("Bearer {service}");
    let res = request(
        &addrs[2],
        "POST",
        "/api/v1/realtime/broadcast",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
    .await;
    assert_eq!(res.status, 202, "{res:?}");
    for ws in [&mut a, &mut b, &mut c] {
        let f = ws.frame_of("broadcast").await;
        assert_eq!(f["payload"]["event"], "news", "{f}");
        quiet(ws).await;
    }

    // The third instance dies with c's presence: a and b see it leave.
    let (third, _dir) = instances.remove(2);
    let killed_at = Instant::now();
    third.stop(libc::SIGKILL).await;
    drop(c);
    for ws in [&mut a, &mut b] {
        let (joins, leaves) = diff(ws).await;
        assert!(joins.is_empty());
        assert_eq!(leaves, vec![cy.clone()]);
    }
    let gone = killed_at.elapsed();
    println!("scale-out: a dead instance's presence left after {gone:?}");
    // The heartbeat TTL (realtime.leader_failover_timeout, 5 s) and one sweep period.
    assert!(gone < Duration::from_secs(10), "{gone:?}");
    // The state a new member gets has only a's presence.
    let mut d = Ws::connect(&addrs[1], None).await;
    assert_eq!(join(&mut d, "room").await, vec![ada]);
}
