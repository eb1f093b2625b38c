//! The realtime engine end to end: a real server, real PostgreSQL, real WebSocket clients.

use serde_json::json;

use fluxbase_migrations::test_utils::TestDb;

use crate::support::{Ws, WsEvent, http, realtime_server, token};

mod holes;
mod supervision;

async fn setup_public_table(db: &TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.todos (id bigserial PRIMARY KEY, user_id int, title text, done bool DEFAULT false);
             GRANT SELECT ON public.todos TO anon, authenticated;",
        )
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_subscribers_in_commit_order_with_filters() {
    let db = TestDb::new().await;
    let client = setup_public_table(&db).await;
    let (server, _dir) = realtime_server(&db, &[]).await;

    let mut all = Ws::connect(&server.addr, None).await;
    let ack = all.subscribe("c1", json!({"table": "todos"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["subscribed"], true);
    assert_eq!(ack["event"], "*");
    let sub_id = ack["subscription_id"].as_str().unwrap().to_string();

    let mut only42 = Ws::connect(&server.addr, None).await;
    let ack = only42
        .subscribe("mine", json!({"event": "INSERT", "schema": "public", "table": "todos", "filter": "user_id=eq.42"}))
        .await;
    assert_eq!(ack["filter"], "user_id=eq.42");

    client
        .batch_execute(
            "INSERT INTO todos (user_id, title) VALUES (1, 'one'), (42, 'Grüße ✓');
             UPDATE todos SET done = true WHERE user_id = 1;
             DELETE FROM todos WHERE user_id = 1;",
        )
        .await
        .unwrap();

    let f = all.frame_of("postgres_changes").await;
    assert_eq!(f["channel"], "c1");
    assert_eq!(f["subscription_ids"], json!([sub_id]));
    assert_eq!(f["payload"]["type"], "INSERT");
    assert_eq!(f["payload"]["record"]["title"], "one");
    assert_eq!(f["payload"]["schema"], "public");
    assert!(
        f["payload"]["commit_timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(
        f["payload"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "title")
    );
    let f = all.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["title"], "Grüße ✓");
    let f = all.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["type"], "UPDATE");
    assert_eq!(f["payload"]["record"]["done"], true);
    let f = all.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["type"], "DELETE");
    assert_eq!(f["payload"]["record"], serde_json::Value::Null);
    assert_eq!(f["payload"]["old_record"]["id"], 1);

    // The filtered subscriber saw exactly one event: the row of user 42.
    let f = only42.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["user_id"], 42);
    only42.send(json!({"type": "heartbeat"})).await;
    assert_eq!(
        only42.frame().await["type"],
        "heartbeat",
        "an unexpected change was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_created_after_start_are_subscribable_at_once() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.late (id int PRIMARY KEY, v text);
             CREATE TABLE public.keyless (v text);
             GRANT SELECT ON public.late, public.keyless TO anon;",
        )
        .await
        .unwrap();
    let mut ws = Ws::connect(&server.addr, None).await;
    let ack = ws.subscribe("l", json!({"table": "late"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    client
        .batch_execute("INSERT INTO late VALUES (1, 'first')")
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["v"], "first");

    // A key-less table is refused with the reason, and stays writable.
    let err = ws.subscribe("k", json!({"table": "keyless"})).await;
    assert_eq!(err["code"], "no_primary_key", "{err}");
    client
        .batch_execute(
            "INSERT INTO keyless VALUES ('a'); UPDATE keyless SET v = 'b'; DELETE FROM keyless",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal2json_plugin_delivers_the_same_events() {
    let db = TestDb::new().await;
    db.require_wal2json().await;
    let client = setup_public_table(&db).await;
    let (server, _dir) = realtime_server(&db, &[("FLUXBASE_REPLICATION_PLUGIN", "wal2json")]).await;
    let mut ws = Ws::connect(&server.addr, None).await;
    assert_eq!(
        ws.subscribe("c", json!({"table": "todos"})).await["type"],
        "ack"
    );
    client
        .batch_execute("INSERT INTO todos (user_id, title) VALUES (7, 'via wal2json')")
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["title"], "via wal2json", "{f}");
    assert_eq!(f["payload"]["record"]["user_id"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_errors_and_the_connection_survives() {
    let db = TestDb::new().await;
    let _client = setup_public_table(&db).await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut ws = Ws::connect(&server.addr, None).await;

    let cases: Vec<(&str, &str)> = vec![
        ("{not json", "invalid_json"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"type":"subscribe"}"#, "invalid_message"),
        (
            r#"{"type":"subscribe","channel":"c","config":{"table":"nope"}}"#,
            "unknown_table",
        ),
        (
            r#"{"type":"subscribe","channel":"c","config":{"schema":"auth","table":"users"}}"#,
            "unknown_table",
        ),
        (
            r#"{"type":"subscribe","channel":"c","config":{"table":"todos","filter":"nope=eq.1"}}"#,
            "unknown_column",
        ),
        (
            r#"{"type":"subscribe","channel":"c","config":{"table":"todos","filter":"user_id=between.1"}}"#,
            "invalid_filter",
        ),
        (
            r#"{"type":"subscribe","channel":"c","config":{"table":"todos","event":"UPSERT"}}"#,
            "invalid_event",
        ),
        (
            r#"{"type":"subscribe","channel":"c","config":{"table":"todos; DROP TABLE todos"}}"#,
            "unknown_table",
        ),
        (
            r#"{"type":"access_token","token":"forged.token.here"}"#,
            "invalid_token",
        ),
        // A NUL, which PostgreSQL cannot even compare, names no table.
        (
            r#"{"type":"subscribe","channel":"c","config":{"schema":"pub\u0000lic","table":"todos"}}"#,
            "unknown_table",
        ),
        (
            r#"{"type":"broadcast","channel":"r","payload":"not an object"}"#,
            "invalid_message",
        ),
    ];
    for (frame, code) in cases {
        ws.send_raw(frame).await;
        let reply = ws.frame().await;
        assert_eq!(reply["type"], "error", "{frame} → {reply}");
        assert_eq!(reply["code"], code, "{frame} → {reply}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
    // Still usable.
    let ack = ws.subscribe("c", json!({"table": "todos"})).await;
    assert_eq!(ack["type"], "ack");
    let res = http(&server.addr, "GET", "/ready").await;
    assert_eq!(res.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_alg_none_tokens_are_refused() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let forged = fluxbase_auth::JwtKeys::hs256(b"someone-elses-secret-0123456789abcdef").sign(
        json!({"sub": "u", "role": "service_role"})
            .as_object()
            .unwrap(),
    );
    let expired = token(json!({"sub": "u", "role": "authenticated", "exp": 1000}));
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.";
    for (t, code) in [
        (forged.as_str(), "invalid_token"),
        (expired.as_str(), "token_expired"),
        (none, "invalid_token"),
    ] {
        let mut ws = Ws::connect(&server.addr, Some(t)).await;
        let f = ws.frame().await;
        assert_eq!(f["type"], "error");
        assert_eq!(f["code"], code, "{f}");
        match ws.next_event().await {
            WsEvent::Closed(Some((code, reason))) => {
                assert_eq!(code, 4001);
                assert!(!reason.is_empty());
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_presence() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut a = Ws::connect(&server.addr, None).await;
    let mut b = Ws::connect(&server.addr, None).await;
    for ws in [&mut a, &mut b] {
        let f = ws.subscribe("room1", json!({})).await;
        assert_eq!(f["type"], "presence_state", "{f}");
    }
    a.send(json!({"type": "presence", "channel": "room1", "payload": {"event": "track", "state": {"name": "ada"}}})).await;
    for ws in [&mut a, &mut b] {
        let f = ws.frame_of("presence_diff").await;
        let joins = f["payload"]["joins"].as_object().unwrap();
        assert_eq!(joins.len(), 1);
        assert_eq!(joins.values().next().unwrap()["name"], "ada");
    }
    a.send(json!({"type": "broadcast", "channel": "room1", "payload": {"event": "cursor", "data": {"x": 1}}})).await;
    let f = b.frame_of("broadcast").await;
    assert_eq!(f["payload"]["data"]["x"], 1);
    // The sender does not get its own broadcast.
    a.send(json!({"type": "heartbeat"})).await;
    assert_eq!(a.frame().await["type"], "heartbeat");

    // Server-side broadcast needs service_role.
    let res = crate::support::http(&server.addr, "POST", "/api/v1/realtime/broadcast").await;
    assert_eq!(res.status, 401, "{}", res.body);
    let service = token(json!({"role": "service_role"}));
    let res = post_json(
        &server.addr,
        "/api/v1/realtime/broadcast",
        &service,
        json!({"channel": "room1", "event": "news", "payload": {"n": 7}}),
    )
    .await;
    assert_eq!(res.0, 202, "{}", res.1);
    for ws in [&mut a, &mut b] {
        let f = ws.frame_of("broadcast").await;
        assert_eq!(f["payload"]["event"], "news");
    }
    let user = token(json!({"sub": "u1", "role": "authenticated"}));
    let res = post_json(
        &server.addr,
        "/api/v1/realtime/broadcast",
        &user,
        json!({"channel": "room1", "event": "x"}),
    )
    .await;
    assert_eq!(res.0, 403, "{}", res.1);

    // Leaving: b sees a's presence leave.
    a.inner.close(None).await.unwrap();
    let f = b.frame_of("presence_diff").await;
    assert_eq!(f["payload"]["leaves"].as_object().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_admin_restart() {
    let db = TestDb::new().await;
    let (server, _dir) =
        realtime_server(&db, &[("FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER", "1")]).await;
    let t = token(json!({"sub": "6f1c2a3e-1111-4222-8333-944455556666", "role": "authenticated"}));
    let mut first = Ws::connect(&server.addr, Some(&t)).await;
    first.send(json!({"type": "heartbeat"})).await;
    assert_eq!(first.frame().await["type"], "heartbeat");
    let mut second = Ws::connect(&server.addr, Some(&t)).await;
    let f = second.frame().await;
    assert_eq!(f["code"], "connection_limit");
    match second.next_event().await {
        WsEvent::Closed(Some((code, reason))) => {
            assert_eq!(code, 4029);
            assert!(reason.contains("max_connections_per_user"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let res = post_json(
        &server.addr,
        "/api/v1/admin/realtime/restart",
        "",
        json!({}),
    )
    .await;
    assert_eq!(res.0, 401, "{}", res.1);
    let res = post_json(
        &server.addr,
        "/api/v1/admin/realtime/restart",
        &t,
        json!({}),
    )
    .await;
    assert_eq!(res.0, 403, "{}", res.1);
    let admin = token(json!({"role": "service_role"}));
    let res = post_json(
        &server.addr,
        "/api/v1/admin/realtime/restart",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(res.0, 200, "{}", res.1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&res.1).unwrap()["restarted"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_close_frames() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut ws = Ws::connect(&server.addr, None).await;
    ws.send(json!({"type": "heartbeat"})).await;
    ws.frame().await;
    let pid = server.child.id().unwrap() as i32;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    match ws.next_event().await {
        WsEvent::Closed(Some((code, _))) => assert_eq!(code, 1001),
        other => panic!("{other:?}"),
    }
    let (status, lines) = server.stop(0).await;
    assert!(status.success(), "{}", lines.join("\n"));
}

/// POST with a bearer token and a JSON body; returns (status, body).
async fn post_json(addr: &str, path: &str, token: &str, body: serde_json::Value) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_rls_and_session_revocation() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let (alice, bob) = (
        "6f1c2a3e-1111-4222-8333-944455556666",
        "7a2d3b4f-2222-4333-9444-a55566667777",
    );
    client
        .batch_execute(&format!(
            "CREATE TABLE public.notes (id bigserial PRIMARY KEY, owner uuid NOT NULL, body text);
             ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid());
             GRANT SELECT ON public.notes TO anon, authenticated;
             INSERT INTO auth.users (id, email) VALUES ('{alice}', 'alice@example.com'), ('{bob}', 'bob@example.com');
             INSERT INTO auth.sessions (user_id) VALUES ('{alice}');
             INSERT INTO auth.sessions (id, user_id) VALUES
               ('11111111-1111-4111-8111-111111111111', '{bob}'),
               ('22222222-2222-4222-8222-222222222222', '{bob}');"
        ))
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut a = Ws::connect(
        &server.addr,
        Some(&token(json!({"sub": alice, "role": "authenticated"}))),
    )
    .await;
    let mut b = Ws::connect(
        &server.addr,
        Some(&token(json!({"sub": bob, "role": "authenticated", "session_id": "11111111-1111-4111-8111-111111111111"}))),
    )
    .await;
    let mut anon = Ws::connect(&server.addr, None).await;
    for ws in [&mut a, &mut b, &mut anon] {
        assert_eq!(
            ws.subscribe("n", json!({"table": "notes"})).await["type"],
            "ack"
        );
    }
    client
        .batch_execute(&format!(
            "INSERT INTO notes (owner, body) VALUES ('{bob}', 'for bob'), ('{alice}', 'for alice');
             DELETE FROM notes WHERE owner = '{bob}';"
        ))
        .await
        .unwrap();
    // Alice sees her row only; then the DELETE of Bob's row as a key only (its old row,
    // under the default replica identity, cannot be judged).
    let f = a.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["body"], "for alice", "{f}");
    let f = a.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["type"], "DELETE");
    assert_eq!(
        f["payload"]["old_record"].as_object().unwrap().len(),
        1,
        "{f}"
    );
    let f = b.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["body"], "for bob", "{f}");
    // anon has no policy on notes: it can never see a row, so it gets nothing at all, not
    // even the key of the delete (queued frames go out before a reply to a later request).
    anon.send(json!({"type": "heartbeat"})).await;
    let f = anon.frame().await;
    assert_eq!(f["type"], "heartbeat", "anon received {f}");

    // The runbook's revocation closes Alice's socket, not Bob's.
    client
        .execute(
            "DELETE FROM auth.sessions WHERE user_id = $1::text::uuid",
            &[&alice],
        )
        .await
        .unwrap();
    loop {
        match a.next_event().await {
            WsEvent::Closed(Some((code, reason))) => {
                assert_eq!(code, 4001);
                assert_eq!(reason, "session revoked");
                break;
            }
            WsEvent::Frame(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    b.send(json!({"type": "heartbeat"})).await;
    assert_eq!(b.frame_of("heartbeat").await["type"], "heartbeat");

    // Bob signs out on another device: his socket on this session stays open…
    client
        .batch_execute(
            "DELETE FROM auth.sessions WHERE id = '22222222-2222-4222-8222-222222222222'",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO notes (owner, body) VALUES ('{bob}', 'still here')"
        ))
        .await
        .unwrap();
    let f = b.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["body"], "still here");
    // …and closes when its own session goes.
    client
        .batch_execute(
            "DELETE FROM auth.sessions WHERE id = '11111111-1111-4111-8111-111111111111'",
        )
        .await
        .unwrap();
    loop {
        match b.next_event().await {
            WsEvent::Closed(Some((code, _))) => {
                assert_eq!(code, 4001);
                break;
            }
            WsEvent::Frame(_) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_operator_and_unsubscribe() {
    let db = TestDb::new().await;
    let client = setup_public_table(&db).await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut ws = Ws::connect(&server.addr, None).await;
    let filters = [
        ("eq", "user_id=eq.5"),
        ("neq", "user_id=neq.5"),
        ("gt", "user_id=gt.5"),
        ("gte", "user_id=gte.5"),
        ("lt", "user_id=lt.5"),
        ("lte", "user_id=lte.5"),
        ("like", "title=like.Wa%"),
        ("ilike", "title=ilike.wa%"),
        ("is", "title=is.null"),
        ("in", "user_id=in.(4,6)"),
    ];
    for (name, filter) in filters {
        let ack = ws
            .subscribe(
                name,
                json!({"table": "todos", "event": "INSERT", "filter": filter}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    client
        .batch_execute(
            "INSERT INTO todos (user_id, title) VALUES (4, 'Walk'), (5, 'wash'), (6, NULL)",
        )
        .await
        .unwrap();
    // Which channels each row reached (one frame per matching channel, in commit order).
    let expected = [
        (4, vec!["in", "like", "ilike", "lt", "lte", "neq"]),
        (5, vec!["eq", "gte", "ilike", "lte"]),
        (6, vec!["gt", "gte", "in", "is", "neq"]),
    ];
    let mut seen: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    let total: usize = expected.iter().map(|(_, c)| c.len()).sum();
    for _ in 0..total {
        let f = ws.frame_of("postgres_changes").await;
        let user = f["payload"]["record"]["user_id"].as_i64().unwrap();
        seen.entry(user)
            .or_default()
            .push(f["channel"].as_str().unwrap().to_string());
    }
    for (user, mut channels) in expected {
        channels.sort();
        let mut got = seen.remove(&user).unwrap_or_default();
        got.sort();
        assert_eq!(got, channels, "user_id {user}");
    }

    // Unsubscribe stops delivery on that channel only.
    ws.send(json!({"type": "unsubscribe", "channel": "eq"}))
        .await;
    let ack = ws.frame_of("ack").await;
    assert_eq!(ack["subscribed"], false);
    assert_eq!(ack["subscription_ids"].as_array().unwrap().len(), 1);
    client
        .batch_execute("INSERT INTO todos (user_id, title) VALUES (5, 'again')")
        .await
        .unwrap();
    let mut channels = Vec::new();
    for _ in 0..2 {
        let f = ws.frame_of("postgres_changes").await;
        channels.push(f["channel"].as_str().unwrap().to_string());
    }
    channels.sort();
    assert_eq!(channels, ["gte", "lte"]);
    ws.send(json!({"type": "heartbeat"})).await;
    let f = ws.frame().await;
    assert_eq!(
        f["type"], "heartbeat",
        "the unsubscribed eq channel still delivered: {f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_restarts_lose_nothing() {
    let db = TestDb::new().await;
    let client = setup_public_table(&db).await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut ws = Ws::connect(&server.addr, None).await;
    assert_eq!(
        ws.subscribe("c", json!({"table": "todos", "event": "INSERT"}))
            .await["type"],
        "ack"
    );
    let admin = token(json!({"role": "service_role"}));
    let total = 60;
    for n in 0..total {
        client
            .execute("INSERT INTO todos (user_id, title) VALUES ($1, 'n')", &[&n])
            .await
            .unwrap();
        if n == 20 {
            let (status, body) = post_json(
                &server.addr,
                "/api/v1/admin/realtime/restart",
                &admin,
                json!({}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        if n == 40 {
            // The walsender dies under the stream.
            client
                .batch_execute(
                    // This database's walsenders only: the tests share one cluster.
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE backend_type = 'walsender' AND datname = current_database()",
                )
                .await
                .unwrap();
        }
    }
    // Every row exactly once, in commit order.
    for n in 0..total {
        let f = ws.frame_of("postgres_changes").await;
        assert_eq!(f["payload"]["record"]["user_id"], n, "{f}");
    }
    ws.send(json!({"type": "heartbeat"})).await;
    assert_eq!(
        ws.frame().await["type"],
        "heartbeat",
        "a duplicate was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_drops_subscriptions_and_access_token_restores_them() {
    let db = TestDb::new().await;
    let client = setup_public_table(&db).await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sub = "6f1c2a3e-1111-4222-8333-944455556666";
    let short = token(json!({"sub": sub, "role": "authenticated", "exp": now + 4}));
    let mut ws = Ws::connect(&server.addr, Some(&short)).await;
    assert_eq!(
        ws.subscribe("c", json!({"table": "todos"})).await["type"],
        "ack"
    );
    // The expiry is the event awaited (about 4 s: room for a loaded CI box to subscribe first).
    let f = ws.frame_of("error").await;
    assert_eq!(f["code"], "token_expired", "{f}");
    // A witness socket proves the next change was dispatched before we look.
    let mut witness = Ws::connect(&server.addr, None).await;
    assert_eq!(
        witness.subscribe("w", json!({"table": "todos"})).await["type"],
        "ack"
    );
    client
        .batch_execute("INSERT INTO todos (user_id, title) VALUES (1, 'after expiry')")
        .await
        .unwrap();
    assert_eq!(
        witness.frame_of("postgres_changes").await["payload"]["record"]["title"],
        "after expiry"
    );
    ws.send(json!({"type": "heartbeat"})).await;
    assert_eq!(
        ws.frame().await["type"],
        "heartbeat",
        "delivered after expiry"
    );

    // A forged refresh is refused; a real one re-authorizes and subscriptions work again.
    ws.send(json!({"type": "access_token", "token": "eyJhbGciOiJub25lIn0.e30."}))
        .await;
    assert_eq!(ws.frame().await["code"], "invalid_token");
    let fresh = token(json!({"sub": sub, "role": "authenticated"}));
    ws.send(json!({"type": "access_token", "token": fresh}))
        .await;
    assert_eq!(ws.frame().await["type"], "system");
    assert_eq!(
        ws.subscribe("c", json!({"table": "todos"})).await["type"],
        "ack"
    );
    client
        .batch_execute("INSERT INTO todos (user_id, title) VALUES (2, 'again')")
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["title"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_with_1009_and_others_are_unaffected() {
    let db = TestDb::new().await;
    let (server, _dir) =
        realtime_server(&db, &[("FLUXBASE_REALTIME_MESSAGE_SIZE_LIMIT", "1KB")]).await;
    let mut big = Ws::connect(&server.addr, None).await;
    let mut other = Ws::connect(&server.addr, None).await;
    let payload = "x".repeat(4096);
    big.send(
        json!({"type": "broadcast", "channel": "r", "payload": {"event": "e", "data": payload}}),
    )
    .await;
    match big.next_event().await {
        WsEvent::Closed(Some((code, reason))) => {
            assert_eq!(code, 1009);
            assert!(reason.contains("message_size_limit"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    other.send(json!({"type": "heartbeat"})).await;
    assert_eq!(other.frame().await["type"], "heartbeat");
}
