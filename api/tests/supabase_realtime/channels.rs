//! Channels over Phoenix sockets: broadcasts between the two versions (JSON and binary
//! frames, self and ack), presence state and diffs, and the broadcast API reaching Phoenix
//! and native sockets.

use base64::Engine as _;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::anon_key;
use super::protocol::join_payload;
use crate::support::phoenix::{Phx, PhxMsg};
use crate::support::{Ws, realtime_server};

/// The payload of a broadcast message (JSON or binary frame).
fn broadcast_of(m: &PhxMsg) -> (&str, &Value) {
    assert_eq!(m.payload["type"], "broadcast");
    (m.payload["event"].as_str().unwrap(), &m.payload["payload"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_cross_versions_and_binary_frames() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let key = anon_key();
    let mut a = Phx::connect(&server.addr, Some(&key), "2.0.0").await;
    let mut b = Phx::connect(&server.addr, Some(&key), "1.0.0").await;
    let mut c = Phx::connect(&server.addr, Some(&key), "2.0.0").await;
    let mut acked = join_payload(json!([]), None);
    acked["config"]["broadcast"] = json!({"self": false, "ack": true});
    let (ja, _) = a.join("realtime:room", acked).await;
    let (jb, _) = b.join("realtime:room", join_payload(json!([]), None)).await;
    c.join("realtime:room", join_payload(json!([]), None)).await;

    // A JSON broadcast in a binary frame (kind 3), acknowledged.
    let r = a.make_ref();
    let push = fluxbase_engine::realtime::codec::phoenix::wire::user_broadcast_push(
        &ja,
        &r,
        "realtime:room",
        "cursor",
        &fluxbase_engine::realtime::codec::Payload::Json("{\"x\":1}".into()),
    );
    a.send_raw(Message::binary(push)).await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    let got_b = b.message_of("broadcast").await;
    assert!(!got_b.binary);
    assert_eq!(broadcast_of(&got_b), ("cursor", &json!({"x": 1})));
    let got_c = c.message_of("broadcast").await;
    assert!(got_c.binary, "vsn 2 receives kind 4");
    assert_eq!(broadcast_of(&got_c), ("cursor", &json!({"x": 1})));

    // Raw bytes: kind 4 with encoding 0 to vsn 2, base64 to vsn 1.
    let bytes = vec![0u8, 159, 146, 150];
    let push = fluxbase_engine::realtime::codec::phoenix::wire::user_broadcast_push(
        &ja,
        "",
        "realtime:room",
        "blob",
        &fluxbase_engine::realtime::codec::Payload::Binary(bytes.clone().into()),
    );
    a.send_raw(Message::binary(push)).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let got_c = c.message_of("broadcast").await;
    assert_eq!(broadcast_of(&got_c), ("blob", &json!({"binary": b64})));
    let got_b = b.message_of("broadcast").await;
    assert_eq!(broadcast_of(&got_b), ("blob", &json!({"binary": b64})));

    // A JSON-text broadcast from vsn 1 (self off, no ack): a gets it, b does not.
    b.push(
        &jb,
        "realtime:room",
        "broadcast",
        json!({"type": "broadcast", "event": "wave", "payload": {"from": "b"}}),
    )
    .await;
    let got_a = a.message_of("broadcast").await;
    assert_eq!(broadcast_of(&got_a), ("wave", &json!({"from": "b"})));
    assert_eq!(broadcast_of(&c.message_of("broadcast").await).0, "wave");
    // b's next broadcast is a's, not its own.
    a.push(
        &ja,
        "realtime:room",
        "broadcast",
        json!({"type": "broadcast", "event": "back", "payload": {}}),
    )
    .await;
    let next = b.message_of("broadcast").await;
    assert_eq!(broadcast_of(&next).0, "back");

    // A broadcast to a topic not joined is refused.
    let r = b
        .push(
            &jb,
            "realtime:elsewhere",
            "broadcast",
            json!({"type": "broadcast", "event": "e", "payload": {}}),
        )
        .await;
    let reply = b.reply(&r).await;
    assert_eq!(reply.payload["status"], "error");
    assert!(
        reply.payload["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("unmatched topic")
    );
}

/// `{key: [phx_ref…]}` of a presence map.
fn refs(map: &Value) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = map
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let metas = v["metas"].as_array().unwrap();
            (
                k.clone(),
                metas
                    .iter()
                    .map(|m| m["phx_ref"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_state_and_diffs() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let key = anon_key();
    let presence = |k: &str| {
        let mut p = join_payload(json!([]), None);
        p["config"]["presence"] = json!({"key": k, "enabled": true});
        p
    };
    let mut a = Phx::connect(&server.addr, Some(&key), "1.0.0").await;
    let (ja, reply) = a.join("realtime:lobby", presence("ada")).await;
    assert_eq!(reply.payload["status"], "ok");
    let state = a.message_of("presence_state").await;
    assert_eq!(
        (state.payload.clone(), state.join_ref),
        (json!({}), json!(ja))
    );
    let r = a
        .push(
            &ja,
            "realtime:lobby",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"mood": "ok"}}),
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    let diff = a.message_of("presence_diff").await;
    assert_eq!(diff.payload["joins"]["ada"]["metas"][0]["mood"], "ok");
    assert_eq!(diff.payload["leaves"], json!({}));
    let ada_ref = diff.payload["joins"]["ada"]["metas"][0]["phx_ref"].clone();

    // A second socket (vsn 2, presence enabled) gets ada in its state; its track reaches a.
    let mut b = Phx::connect(&server.addr, Some(&key), "2.0.0").await;
    let (jb, _) = b.join("realtime:lobby", presence("bob")).await;
    let state = b.message_of("presence_state").await;
    assert_eq!(
        refs(&state.payload),
        vec![("ada".into(), vec![ada_ref.as_str().unwrap().to_string()])]
    );
    b.push(
        &jb,
        "realtime:lobby",
        "presence",
        json!({"type": "presence", "event": "track", "payload": {"n": 1}}),
    )
    .await;
    let diff = a
        .first(|m| m.event == "presence_diff" && m.payload["joins"].get("bob").is_some())
        .await;
    let bob_ref = diff.payload["joins"]["bob"]["metas"][0]["phx_ref"].clone();
    // Tracking again replaces the meta: the old ref leaves, a new one joins.
    b.push(
        &jb,
        "realtime:lobby",
        "presence",
        json!({"type": "presence", "event": "track", "payload": {"n": 2}}),
    )
    .await;
    let diff = a
        .first(|m| m.event == "presence_diff" && m.payload["joins"].get("bob").is_some())
        .await;
    assert_eq!(
        diff.payload["leaves"]["bob"]["metas"][0]["phx_ref"],
        bob_ref
    );
    let new_ref = diff.payload["joins"]["bob"]["metas"][0]["phx_ref"].clone();
    assert_ne!(new_ref, bob_ref);
    assert_eq!(diff.payload["joins"]["bob"]["metas"][0]["n"], 2);
    // A socket without presence enabled never receives diffs, only what it asked for.
    let mut quiet = Phx::connect(&server.addr, Some(&key), "1.0.0").await;
    let (jq, _) = quiet
        .join("realtime:lobby", join_payload(json!([]), None))
        .await;
    // b goes away: a sees bob leave with the ref it had.
    drop(b);
    let diff = a
        .first(|m| m.event == "presence_diff" && m.payload["leaves"].get("bob").is_some())
        .await;
    assert_eq!(
        diff.payload["leaves"]["bob"]["metas"][0]["phx_ref"],
        new_ref
    );
    let r = quiet.push(&jq, "phoenix", "heartbeat", json!({})).await;
    let next = quiet.next().await;
    assert_eq!(
        (next.event.as_str(), next.msg_ref),
        ("phx_reply", json!(r)),
        "no presence before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_api_reaches_phoenix_and_native_sockets() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let key = anon_key();
    let mut phx = Phx::connect(&server.addr, Some(&key), "1.0.0").await;
    phx.join("realtime:news", join_payload(json!([]), None))
        .await;
    // A native client of the same channel.
    let mut native = Ws::connect(&server.addr, None).await;
    native
        .send(json!({"type": "subscribe", "channel": "news", "config": {}}))
        .await;
    native.frame().await;
    let headers = [
        ("apikey", key.as_str()),
        ("Content-Type", "application/json"),
    ];
    let post = |path: &'static str, body: Value| {
        let addr = server.addr.clone();
        async move {
            crate::support::http::request(&addr, "POST", path, &headers, &body.to_string()).await
        }
    };
    let r = post(
        "/realtime/v1/api/broadcast",
        json!({"messages": [{"topic": "news", "event": "flash", "payload": {"n": 1}, "private": false}]}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m = phx.message_of("broadcast").await;
    assert_eq!(broadcast_of(&m), ("flash", &json!({"n": 1})));
    let f = native.frame_of("broadcast").await;
    assert_eq!(f["payload"], json!({"event": "flash", "data": {"n": 1}}));
    let r = post(
        "/realtime/v1/api/broadcast/news/events/flash",
        json!({"n": 2}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m = phx.message_of("broadcast").await;
    assert_eq!(broadcast_of(&m), ("flash", &json!({"n": 2})));

    // Refusals name the field; none of a batch is sent when one is refused.
    let r = post(
        "/realtime/v1/api/broadcast",
        json!({"messages": [{"topic": "news", "event": "x", "payload": {}},
                            {"topic": "news", "event": "y", "private": true}]}),
    )
    .await;
    assert_eq!(r.status, 403);
    // Not our `{"error":{…}}`: realtime-js shows `error || message` of an error body.
    assert_eq!(r.json()["code"], "forbidden", "{}", r.body);
    assert!(r.json().get("error").is_none(), "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("messages[1].private")
    );
    let r = post(
        "/realtime/v1/api/broadcast",
        json!({"messages": [{"topic": "", "event": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("messages[0].topic")
    );
    let r = post("/realtime/v1/api/broadcast", json!({"topic": "news"})).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("messages"), "{}", r.body);
    let r = post(
        "/realtime/v1/api/broadcast/news/events/x?private=true",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403);
    // The refused batch sent nothing: the next broadcast is the next one sent.
    post("/realtime/v1/api/broadcast/news/events/last", json!({})).await;
    let m = phx.message_of("broadcast").await;
    assert_eq!(broadcast_of(&m).0, "last");
}
