//! The Phoenix protocol frame by frame, with a raw WebSocket client of each version: joins
//! and their replies, the "Subscribed to PostgreSQL" notice, changes, leaving, heartbeats,
//! re-authorisation refused exactly as on the native socket, expiry, bad input.

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{SCHEMA, anon_key};
use crate::support::phoenix::{Phx, PhxEvent};
use crate::support::{Ws, http, now, realtime_server, token};

const ALICE: &str = "a0000000-0000-4000-8000-000000000001";
const BOB: &str = "b0000000-0000-4000-8000-000000000002";

fn user(sub: &str) -> String {
    token(json!({"sub": sub, "role": "authenticated"}))
}

/// A join payload as realtime-js builds it.
pub(super) fn join_payload(bindings: Value, token: Option<&str>) -> Value {
    let mut payload = json!({"config": {
        "broadcast": {"ack": false, "self": false},
        "presence": {"key": "", "enabled": false},
        "postgres_changes": bindings,
        "private": false,
    }});
    if let Some(token) = token {
        payload["access_token"] = json!(token);
    }
    payload
}

async fn insert(client: &tokio_postgres::Client, owner: &str, title: &str) -> i64 {
    client
        .query_one(
            "INSERT INTO public.todos (user_id, title) VALUES ($1::text::uuid, $2) RETURNING id",
            &[&owner, &title],
        )
        .await
        .unwrap()
        .get(0)
}

/// Joins, subscribing, leaving; heartbeats; changes as realtime-js reads them.
async fn join_change_leave(vsn: &str) {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut phx = Phx::connect(&server.addr, Some(&anon_key()), vsn).await;

    // A heartbeat on topic phoenix is answered with its ref.
    let r = phx.make_ref();
    phx.send(&Value::Null, &json!(r), "phoenix", "heartbeat", json!({}))
        .await;
    let reply = phx.next().await;
    assert_eq!(
        (reply.topic.as_str(), reply.event.as_str(), &reply.msg_ref),
        ("phoenix", "phx_reply", &json!(r))
    );
    assert_eq!(reply.payload, json!({"status": "ok", "response": {}}));

    let bindings = json!([
        {"event": "INSERT", "schema": "public", "table": "todos", "filter": "title=eq.x"},
        {"event": "*", "schema": "public", "table": "todos"},
    ]);
    let token = user(ALICE);
    let (join_ref, reply) = phx
        .join("realtime:t", join_payload(bindings.clone(), Some(&token)))
        .await;
    assert_eq!(reply.join_ref, json!(join_ref));
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
    let echoed = reply.payload["response"]["postgres_changes"]
        .as_array()
        .unwrap()
        .clone();
    // The client's bindings, in its order, each with a server id.
    assert_eq!(echoed.len(), 2);
    let ids: Vec<String> = echoed
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(ids[0], ids[1]);
    for (got, sent) in echoed.iter().zip(bindings.as_array().unwrap()) {
        let mut got = got.clone();
        got.as_object_mut().unwrap().remove("id");
        assert_eq!(&got, sent);
    }
    // Only now live: the notice after the reply.
    let system = phx.next().await;
    assert_eq!(
        (system.event.as_str(), &system.join_ref),
        ("system", &json!(join_ref))
    );
    assert_eq!(
        system.payload,
        json!({"channel": "t", "extension": "postgres_changes", "status": "ok",
               "message": "Subscribed to PostgreSQL"})
    );

    // A second topic on the same table (it outlives the first).
    let (_, reply) = phx
        .join(
            "realtime:u",
            join_payload(
                json!([{"event": "*", "schema": "public", "table": "todos"}]),
                None,
            ),
        )
        .await;
    assert_eq!(reply.payload["status"], "ok");
    phx.message_of("system").await;

    let id = insert(&client, ALICE, "x").await;
    let change = phx
        .first(|m| m.event == "postgres_changes" && m.topic == "realtime:t")
        .await;
    assert_eq!(change.join_ref, json!(join_ref));
    let mut got_ids: Vec<String> = change.payload["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    got_ids.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got_ids, want, "both bindings matched: one message");
    let data = &change.payload["data"];
    assert_eq!(
        (
            &data["schema"],
            &data["table"],
            &data["type"],
            &data["eventType"]
        ),
        (
            &json!("public"),
            &json!("todos"),
            &json!("INSERT"),
            &json!("INSERT")
        )
    );
    assert_eq!(
        data["record"],
        json!({"id": id, "user_id": ALICE, "title": "x", "done": false})
    );
    assert_eq!(data["errors"], Value::Null);
    assert!(data["commit_timestamp"].is_string());
    assert!(data.get("old_record").is_none());
    let columns: Vec<&Value> = data["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(
        columns,
        [
            &json!("id"),
            &json!("user_id"),
            &json!("title"),
            &json!("done")
        ]
    );
    assert_eq!(data["columns"][0]["type"], "int8");

    // Leaving: the reply, then phx_close; no change reaches the topic afterwards.
    let r = phx
        .push(&join_ref, "realtime:t", "phx_leave", json!({}))
        .await;
    let reply = phx.reply(&r).await;
    assert_eq!(reply.payload["status"], "ok");
    let close = phx.first(|m| m.event == "phx_close").await;
    assert_eq!(
        (close.topic.as_str(), &close.join_ref),
        ("realtime:t", &json!(join_ref))
    );
    let after = insert(&client, ALICE, "x").await;
    let marker = insert(&client, ALICE, "marker").await;
    let mut seen = Vec::new();
    loop {
        let m = phx.first(|m| m.event == "postgres_changes").await;
        assert_eq!(m.topic, "realtime:u", "a change after leaving: {m:?}");
        let got = m.payload["data"]["record"]["id"].as_i64().unwrap();
        seen.push(got);
        if got == marker {
            break;
        }
    }
    assert_eq!(seen, vec![id, after, marker]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_change_leave_vsn_1() {
    join_change_leave("1.0.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_change_leave_vsn_2() {
    join_change_leave("2.0.0").await;
}

/// The native socket's error frame for `access_token` with `token`.
async fn native_refusal(addr: &str, token: &str) -> Value {
    let mut ws = Ws::connect(addr, None).await;
    ws.send(json!({"type": "access_token", "token": token}))
        .await;
    ws.frame().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_reauthorises_and_is_refused_as_natively() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut phx = Phx::connect(&server.addr, Some(&anon_key()), "2.0.0").await;
    // Joined as anon (the apikey): alice's rows are not visible.
    let (join_ref, reply) = phx
        .join(
            "realtime:mine",
            join_payload(
                json!([{"event": "*", "schema": "public", "table": "todos"}]),
                None,
            ),
        )
        .await;
    assert_eq!(reply.payload["status"], "ok");
    phx.message_of("system").await;
    // A service-role socket: once it has a change, the engine has judged it for everyone.
    let mut sentinel =
        Ws::connect(&server.addr, Some(&token(json!({"role": "service_role"})))).await;
    assert_eq!(
        sentinel.subscribe("all", json!({"table": "todos"})).await["type"],
        "ack"
    );
    let hidden = insert(&client, ALICE, "hidden").await;
    let f = sentinel.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["id"], json!(hidden));

    let expired = token(json!({"sub": ALICE, "role": "authenticated", "exp": now() - 10}));
    let mut codes = Vec::new();
    for bad in [expired.as_str(), "eyJhbGciOiJub25lIn0.e30."] {
        let native = native_refusal(&server.addr, bad).await;
        assert_eq!(native["type"], "error");
        let r = phx
            .push(
                &join_ref,
                "realtime:mine",
                "access_token",
                json!({"access_token": bad}),
            )
            .await;
        let reply = phx.reply(&r).await;
        assert_eq!(reply.payload["status"], "error");
        assert_eq!(
            reply.payload["response"]["code"], native["code"],
            "{reply:?}"
        );
        assert_eq!(reply.payload["response"]["reason"], native["message"]);
        let system = phx.message_of("system").await;
        assert_eq!(system.payload["status"], "error");
        assert_eq!(system.payload["message"], native["message"]);
        codes.push(native["code"].clone());
    }
    assert_eq!(codes, [json!("token_expired"), json!("invalid_token")]);
    // A valid token re-authorises the socket live: alice's next row arrives (the hidden
    // one, committed before, never does).
    let r = phx
        .push(
            &join_ref,
            "realtime:mine",
            "access_token",
            json!({"access_token": user(ALICE)}),
        )
        .await;
    assert_eq!(phx.reply(&r).await.payload["status"], "ok");
    let seen = insert(&client, ALICE, "seen").await;
    let change = phx.message_of("postgres_changes").await;
    assert_ne!(change.payload["data"]["record"]["id"], json!(hidden));
    assert_eq!(change.payload["data"]["record"]["id"], json!(seen));
    // Bob's rows stay his.
    insert(&client, BOB, "bob's").await;
    let last = insert(&client, ALICE, "last").await;
    let change = phx.message_of("postgres_changes").await;
    assert_eq!(change.payload["data"]["record"]["id"], json!(last));

    // A join carrying a refused token is refused with the same code.
    let (_, reply) = phx
        .join("realtime:other", join_payload(json!([]), Some(&expired)))
        .await;
    assert_eq!(reply.payload["status"], "error");
    assert_eq!(reply.payload["response"]["code"], "token_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_closes_every_topic() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut phx = Phx::connect(&server.addr, Some(&anon_key()), "1.0.0").await;
    let short = token(json!({"sub": ALICE, "role": "authenticated", "exp": now() + 2}));
    let binding = json!([{"event": "*", "schema": "public", "table": "todos"}]);
    let (one, _) = phx
        .join("realtime:one", join_payload(binding.clone(), Some(&short)))
        .await;
    let (two, _) = phx
        .join("realtime:two", join_payload(json!([]), None))
        .await;
    // At expiry: a system error and phx_close on each topic, with its join ref.
    let mut closed = Vec::new();
    while closed.len() < 2 {
        let m = phx.first(|m| m.event == "phx_close").await;
        closed.push((m.topic, m.join_ref));
    }
    closed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        closed,
        vec![
            ("realtime:one".into(), json!(one)),
            ("realtime:two".into(), json!(two))
        ]
    );
    let system = phx
        .first(|m| m.event == "system" && m.payload["status"] == "error")
        .await;
    assert!(
        system.payload["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // A fresh join with a fresh token works again.
    let (_, reply) = phx
        .join("realtime:one", join_payload(binding, Some(&user(ALICE))))
        .await;
    assert_eq!(reply.payload["status"], "ok");
    phx.message_of("system").await;
    let id = insert(&client, ALICE, "after").await;
    let change = phx.message_of("postgres_changes").await;
    assert_eq!(change.payload["data"]["record"]["id"], json!(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason() {
    let db = TestDb::new().await;
    db.client().await.batch_execute(SCHEMA).await.unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let response = http(&server.addr, "GET", "/realtime/v1/websocket?vsn=3.0.0").await;
    assert_eq!(response.status, 400);
    assert!(response.json()["message"].as_str().unwrap().contains("vsn"));

    let mut phx = Phx::connect(&server.addr, Some(&anon_key()), "1.0.0").await;
    let table = |t: Value| json!([{"event": "*", "schema": "public", "table": t}]);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "room",
            join_payload(json!([]), None),
            "invalid_message",
            "unmatched topic",
        ),
        (
            "realtime:p",
            {
                let mut p = join_payload(json!([]), None);
                p["config"]["private"] = json!(true);
                p
            },
            "forbidden",
            "private",
        ),
        (
            "realtime:a",
            join_payload(json!([{"event": "*", "schema": "public"}]), None),
            "invalid_message",
            "table",
        ),
        (
            "realtime:b",
            join_payload(table(json!("nope")), None),
            "unknown_table",
            "nope",
        ),
        (
            "realtime:c",
            join_payload(
                json!([{"event": "*", "schema": "public", "table": "todos", "filter": "title=zz.1"}]),
                None,
            ),
            "invalid_filter",
            "",
        ),
        (
            "realtime:d",
            join_payload(
                json!([{"event": "SOMETIMES", "schema": "public", "table": "todos"}]),
                None,
            ),
            "invalid_event",
            "SOMETIMES",
        ),
        (
            "realtime:e",
            json!({"config": {"postgres_changes": "all"}}),
            "invalid_message",
            "phx_join payload",
        ),
    ];
    for (topic, payload, code, reason) in cases {
        let (_, reply) = phx.join(topic, payload).await;
        assert_eq!(reply.payload["status"], "error", "{topic}: {reply:?}");
        assert_eq!(
            reply.payload["response"]["code"], code,
            "{topic}: {reply:?}"
        );
        assert!(
            reply.payload["response"]["reason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{topic}: {reply:?}"
        );
    }
    // A refused join leaves nothing behind: pushing to it is an unmatched topic.
    let r = phx
        .push("9", "realtime:b", "presence", json!({"event": "track"}))
        .await;
    assert!(
        phx.reply(&r).await.payload["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("unmatched")
    );
    let (jr, _) = phx.join("realtime:ok", join_payload(json!([]), None)).await;
    let r = phx.push(&jr, "realtime:ok", "dance", json!({})).await;
    assert_eq!(
        phx.reply(&r).await.payload["response"]["code"],
        "unknown_type"
    );
    // Undecodable frames: a system error on topic phoenix, and the socket stays.
    for raw in [
        Message::text("not json"),
        Message::text("[1,2]"),
        Message::binary(vec![3u8, 0]),
    ] {
        phx.send_raw(raw).await;
        let m = phx.next().await;
        assert_eq!((m.topic.as_str(), m.event.as_str()), ("phoenix", "system"));
        assert_eq!(m.payload["status"], "error");
    }
    let r = phx.make_ref();
    phx.send(&Value::Null, &json!(r), "phoenix", "heartbeat", json!({}))
        .await;
    assert_eq!(phx.reply(&r).await.payload["status"], "ok");
    // A refused credential: the system error, then close 4001.
    let mut bad = Phx::connect(&server.addr, Some("not.a.token"), "2.0.0").await;
    let m = bad.next().await;
    assert_eq!(m.payload["code"], "invalid_token");
    assert!(matches!(
        bad.next_event().await,
        PhxEvent::Closed(Some((4001, _)))
    ));
}
