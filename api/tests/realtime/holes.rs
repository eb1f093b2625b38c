//! The realtime holes of issue 10 (item 4) and issue 11 (items 5–7), TRUNCATE, and metrics
//! from the first scrape — each against a real server, real PostgreSQL and real sockets;
//! each test fails on the code before the hub's restructuring.

use serde_json::{Value, json};

use fluxbase_migrations::test_utils::TestDb;

use super::post_json;
use crate::support::{Ws, WsEvent, http, realtime_server, token};

/// Reads frames until a close; returns its code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        match ws.next_event().await {
            WsEvent::Closed(Some(close)) => return close,
            WsEvent::Closed(None) => panic!("closed without a close frame"),
            WsEvent::Frame(_) => continue,
        }
    }
}

/// Proves nothing else is queued for `ws`: the answer to a heartbeat comes after anything
/// queued before it.
async fn nothing_else(ws: &mut Ws, what: &str) {
    ws.send(json!({"type": "heartbeat"})).await;
    let f = ws.frame().await;
    assert_eq!(f["type"], "heartbeat", "{what}: {f}");
}

/// Issue 10 item 4: after expiry, `subscribe` without a new token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_context_neither_subscribes_nor_receives() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.items (id bigserial PRIMARY KEY, v text);
             GRANT SELECT ON public.items TO anon, authenticated;",
        )
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let sub = "6f1c2a3e-1111-4222-8333-944455556666";
    let short =
        token(json!({"sub": sub, "role": "authenticated", "exp": crate::support::now() + 4}));
    let mut ws = Ws::connect(&server.addr, Some(&short)).await;
    assert_eq!(
        ws.subscribe("c", json!({"table": "items"})).await["type"],
        "ack"
    );
    let f = ws.frame_of("error").await;
    assert_eq!(f["code"], "token_expired", "{f}");

    // The same socket, no new token: refused, named.
    let again = ws.subscribe("c2", json!({"table": "items"})).await;
    assert_eq!(
        again["type"], "error",
        "an expired context subscribed: {again}"
    );
    assert_eq!(again["code"], "token_expired", "{again}");
    // Nor may it join a channel.
    let join = ws.subscribe("room", json!({})).await;
    assert_eq!(join["code"], "token_expired", "{join}");

    let mut witness = Ws::connect(&server.addr, None).await;
    assert_eq!(
        witness.subscribe("w", json!({"table": "items"})).await["type"],
        "ack"
    );
    client
        .batch_execute("INSERT INTO items (v) VALUES ('after expiry')")
        .await
        .unwrap();
    assert_eq!(
        witness.frame_of("postgres_changes").await["payload"]["record"]["v"],
        "after expiry"
    );
    nothing_else(&mut ws, "delivered to an expired context").await;
}

/// Signs a user up on the server: (access token, user id).
async fn sign_up(addr: &str, email: &str) -> (String, String) {
    let (status, body) = post_json(
        addr,
        "/api/v1/auth/signup",
        "",
        json!({"email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["user"]["id"].as_str().unwrap().to_string(),
    )
}

/// Issue 11 item 5: after the runbook's session revocation, or after the user is deleted,
/// the old token opens no socket, and re-authorises none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_sessions_and_deleted_users_open_no_socket() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.notes (id bigserial PRIMARY KEY, body text);
             GRANT SELECT ON public.notes TO anon, authenticated;",
        )
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let (alice, alice_id) = sign_up(&server.addr, "alice@example.com").await;
    let (bob, bob_id) = sign_up(&server.addr, "bob@example.com").await;

    let mut live = Ws::connect(&server.addr, Some(&alice)).await;
    assert_eq!(
        live.subscribe("n", json!({"table": "notes"})).await["type"],
        "ack"
    );
    client
        .execute(
            "DELETE FROM auth.sessions WHERE user_id = $1::text::uuid",
            &[&alice_id],
        )
        .await
        .unwrap();
    assert_eq!(closed(&mut live).await.0, 4001);

    // A new socket with the revoked token is refused with the reason.
    let mut again = Ws::connect(&server.addr, Some(&alice)).await;
    let f = again.frame().await;
    assert_eq!(f["type"], "error", "a revoked session opened a socket: {f}");
    assert_eq!(f["code"], "session_not_found", "{f}");
    assert_eq!(closed(&mut again).await.0, 4001);

    // Nor can an open socket take the revoked token.
    let mut anon = Ws::connect(&server.addr, None).await;
    anon.send(json!({"type": "access_token", "token": alice}))
        .await;
    let f = anon.frame().await;
    assert_eq!(f["code"], "session_not_found", "{f}");

    // A deleted user's token is refused the same way.
    let mut bobs = Ws::connect(&server.addr, Some(&bob)).await;
    nothing_else(&mut bobs, "bob's socket").await;
    client
        .execute(
            "DELETE FROM auth.users WHERE id = $1::text::uuid",
            &[&bob_id],
        )
        .await
        .unwrap();
    assert_eq!(closed(&mut bobs).await.0, 4001);
    let mut after = Ws::connect(&server.addr, Some(&bob)).await;
    let f = after.frame().await;
    assert_eq!(
        f["code"], "session_not_found",
        "a deleted user opened a socket: {f}"
    );
    assert_eq!(closed(&mut after).await.0, 4001);
}

/// Issue 11 item 6: `access_token` cannot make a socket its user's one too many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_cannot_bypass_the_per_user_limit() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let owner = "6f1c2a3e-1111-4222-8333-944455556666";
    client
        .batch_execute(
            "CREATE TABLE public.mine (id bigserial PRIMARY KEY, owner uuid, body text);
             ALTER TABLE public.mine ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own ON public.mine FOR SELECT USING (owner = auth.uid());
             GRANT SELECT ON public.mine TO anon, authenticated;",
        )
        .await
        .unwrap();
    let (server, _dir) =
        realtime_server(&db, &[("FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER", "3")]).await;
    let user = token(json!({"sub": owner, "role": "authenticated"}));
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = Ws::connect(&server.addr, Some(&user)).await;
        nothing_else(&mut ws, "a user socket under the limit").await;
        sockets.push(ws);
    }
    let mut anon = Ws::connect(&server.addr, None).await;
    anon.send(json!({"type": "access_token", "token": user}))
        .await;
    let f = anon.frame().await;
    assert_eq!(
        f["code"], "connection_limit",
        "became the user's 4th socket: {f}"
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("max_connections_per_user"),
        "{f}"
    );
    // Still anon: the user's rows do not reach it.
    assert_eq!(
        anon.subscribe("m", json!({"table": "mine"})).await["type"],
        "ack"
    );
    assert_eq!(
        sockets[0].subscribe("m", json!({"table": "mine"})).await["type"],
        "ack"
    );
    client
        .execute(
            "INSERT INTO mine (owner, body) VALUES ($1::text::uuid, 'private')",
            &[&owner],
        )
        .await
        .unwrap();
    assert_eq!(
        sockets[0].frame_of("postgres_changes").await["payload"]["record"]["body"],
        "private"
    );
    nothing_else(&mut anon, "the user's row reached the refused socket").await;

    // Once the user has room, the same frame is accepted.
    let first = sockets.remove(0);
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        anon.send(json!({"type": "access_token", "token": user}))
            .await;
        let f = anon.frame().await;
        if f["type"] == "system" {
            break;
        }
        assert_eq!(f["code"], "connection_limit", "{f}");
        assert!(
            std::time::Instant::now() < deadline,
            "the closed socket never freed its slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Issue 11 item 7: channel joins per socket and channel-name length are bounded, with
/// keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_joins_and_names_are_bounded() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(
        &db,
        &[
            ("FLUXBASE_REALTIME_MAX_CHANNELS_PER_CONNECTION", "3"),
            ("FLUXBASE_REALTIME_MAX_CHANNEL_NAME_LENGTH", "16"),
        ],
    )
    .await;
    let mut ws = Ws::connect(&server.addr, None).await;
    for room in ["r1", "r2", "r3"] {
        assert_eq!(
            ws.subscribe(room, json!({})).await["type"],
            "presence_state"
        );
    }
    let f = ws.subscribe("r4", json!({})).await;
    assert_eq!(f["code"], "too_many_subscriptions", "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("max_channels_per_connection"),
        "{f}"
    );
    // Implied joins count too: a broadcast, a presence track.
    ws.send(json!({"type": "broadcast", "channel": "r5", "payload": {"event": "e", "data": 1}}))
        .await;
    assert_eq!(ws.frame().await["code"], "too_many_subscriptions");
    ws.send(
        json!({"type": "presence", "channel": "r6", "payload": {"event": "track", "state": {}}}),
    )
    .await;
    assert_eq!(ws.frame().await["code"], "too_many_subscriptions");
    // Joined channels still work.
    assert_eq!(ws.subscribe("r1", json!({})).await["type"], "ack");

    let mut other = Ws::connect(&server.addr, None).await;
    let long = "x".repeat(17);
    let f = other.subscribe(&long, json!({})).await;
    assert_eq!(f["code"], "invalid_message", "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("max_channel_name_length"),
        "{f}"
    );
    other
        .send(json!({"type": "broadcast", "channel": long, "payload": {"event": "e"}}))
        .await;
    assert_eq!(other.frame().await["code"], "invalid_message");
    assert_eq!(
        other.subscribe(&"y".repeat(16), json!({})).await["type"],
        "presence_state"
    );
}

/// TRUNCATE reaches the subscribers whose role may SELECT the table, as an event without
/// rows; not those who may not, nor subscriptions of other events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_reaches_those_who_may_select_the_table() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let owner = "6f1c2a3e-1111-4222-8333-944455556666";
    client
        .batch_execute(
            "CREATE TABLE public.docs (id bigserial PRIMARY KEY, owner uuid, body text);
             ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own ON public.docs FOR SELECT USING (owner = auth.uid());
             GRANT SELECT ON public.docs TO authenticated;",
        )
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let user = token(json!({"sub": owner, "role": "authenticated"}));
    let mut reader = Ws::connect(&server.addr, Some(&user)).await;
    let ack = reader
        .subscribe("d", json!({"table": "docs", "filter": "body=eq.x"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut truncates = Ws::connect(&server.addr, Some(&user)).await;
    let ack = truncates
        .subscribe("t", json!({"table": "docs", "event": "TRUNCATE"}))
        .await;
    assert_eq!(ack["event"], "TRUNCATE", "{ack}");
    let mut inserts = Ws::connect(&server.addr, Some(&user)).await;
    assert_eq!(
        inserts
            .subscribe("i", json!({"table": "docs", "event": "INSERT"}))
            .await["type"],
        "ack"
    );
    let mut anon = Ws::connect(&server.addr, None).await;
    assert_eq!(
        anon.subscribe("a", json!({"table": "docs"})).await["type"],
        "ack"
    );

    client
        .execute(
            "INSERT INTO docs (owner, body) VALUES ($1::text::uuid, 'y')",
            &[&owner],
        )
        .await
        .unwrap();
    client.batch_execute("TRUNCATE docs").await.unwrap();
    for ws in [&mut reader, &mut truncates] {
        let f = ws.frame_of("postgres_changes").await;
        let payload = &f["payload"];
        assert_eq!(payload["type"], "TRUNCATE", "{f}");
        assert_eq!(payload["schema"], "public");
        assert_eq!(payload["table"], "docs");
        assert_eq!(payload["record"], Value::Null, "{f}");
        assert_eq!(payload["old_record"], Value::Null, "{f}");
    }
    // The INSERT subscriber got its insert, not the truncate.
    let f = inserts.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["type"], "INSERT");
    nothing_else(&mut inserts, "a TRUNCATE reached an INSERT subscription").await;
    nothing_else(&mut anon, "a TRUNCATE reached a role without SELECT").await;
}

/// The engine's counters and gauges are in the first scrape, before any event provoked
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exist_from_the_first_scrape() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let res = http(&server.addr, "GET", "/metrics").await;
    assert_eq!(res.status, 200);
    for name in [
        "fluxbase_replication_lag_bytes",
        "fluxbase_replication_decode_errors_total",
        "fluxbase_realtime_slow_clients_total",
        "fluxbase_realtime_messages_dropped_total",
        "fluxbase_realtime_poison_changes_total",
        "fluxbase_engine_restarts_total{actor=\"realtime.dispatcher\"}",
        "fluxbase_engine_restarts_total{actor=\"realtime.consumer\"}",
        "fluxbase_engine_restarts_total{actor=\"realtime.channels\"}",
    ] {
        assert!(
            res.body.lines().any(|l| l.starts_with(name)),
            "{name} missing from the first scrape:\n{}",
            res.body
        );
    }
}
