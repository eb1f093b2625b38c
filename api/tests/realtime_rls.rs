//! No leak, no loss: randomized writes under several policy shapes (owner, tenant claim,
//! public flag, a membership subquery that takes the SQL fallback), with visibility flips,
//! compared socket by socket with what PostgreSQL says each user could SELECT.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use fluxbase_migrations::test_utils::TestDb;

use crate::support::{Ws, realtime_server, token};

/// What one socket should see of one change.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// INSERT/UPDATE of a row it may SELECT: exactly this record.
    Row {
        kind: &'static str,
        id: i64,
        record: Value,
    },
    /// DELETE of a row it could see: the event must arrive (old row or key only).
    Delete { id: i64 },
}

async fn visible(client: &mut tokio_postgres::Client, role: &str, claims: &Value, id: i64) -> bool {
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        &[&claims.to_string()],
    )
    .await
    .unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    let seen: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.docs WHERE id = $1)",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    tx.rollback().await.unwrap();
    seen
}

async fn row_json(client: &tokio_postgres::Client, id: i64) -> Value {
    client
        .query_one(
            "SELECT jsonb_build_object('id', id, 'owner', owner, 'tenant', tenant,
                    'is_public', is_public, 'team_id', team_id, 'body', body)::text
             FROM public.docs WHERE id = $1",
            &[&id],
        )
        .await
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .unwrap()
}

/// The docs event for row `id` of `kind` on the sentinel (service_role) socket: proof the
/// dispatcher has fanned that change out to every queue.
async fn await_sentinel(ws: &mut Ws, kind: &str, id: i64) {
    loop {
        let f = ws.frame_of("postgres_changes").await;
        let p = &f["payload"];
        let row = if kind == "DELETE" {
            &p["old_record"]
        } else {
            &p["record"]
        };
        if p["type"] == kind && row["id"] == id {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_writes_leak_nothing_and_lose_nothing() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.members (team_id int, user_id uuid, PRIMARY KEY (team_id, user_id));
             GRANT SELECT ON public.members TO authenticated;
             CREATE TABLE public.docs (id bigserial PRIMARY KEY, owner uuid, tenant text,
                 is_public bool NOT NULL DEFAULT false, team_id int, body text);
             ALTER TABLE public.docs REPLICA IDENTITY FULL;
             ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;
             GRANT SELECT ON public.docs TO anon, authenticated, service_role;
             CREATE POLICY own ON public.docs FOR SELECT TO authenticated USING (owner = auth.uid());
             CREATE POLICY tenant ON public.docs FOR SELECT TO authenticated
                 USING (tenant = (auth.jwt() ->> 'tenant'));
             CREATE POLICY pub ON public.docs FOR SELECT TO anon, authenticated USING (is_public);
             CREATE POLICY team ON public.docs FOR SELECT TO authenticated USING (EXISTS (
                 SELECT 1 FROM public.members m WHERE m.team_id = docs.team_id AND m.user_id = auth.uid()));",
        )
        .await
        .unwrap();
    // TTL 0: a membership change (another table) is seen by the very next decision.
    let (mut server, _dir) =
        realtime_server(&db, &[("FLUXBASE_REALTIME_RLS_CACHE_TTL", "0s")]).await;

    // 10 users (some with a tenant claim), one anon socket, one service_role sentinel.
    let tenants = ["acme", "globex", ""];
    let mut identities: Vec<(String, Value)> = Vec::new();
    for i in 0..10 {
        let sub = format!("00000000-0000-4000-8000-{i:012}");
        let mut claims = json!({"sub": sub, "role": "authenticated"});
        if !tenants[i % 3].is_empty() {
            claims["tenant"] = json!(tenants[i % 3]);
        }
        identities.push(("authenticated".into(), claims));
    }
    identities.push(("anon".into(), json!({"role": "anon"})));
    let mut sockets = Vec::new();
    for (role, claims) in &identities {
        let mut ws = if role == "anon" {
            Ws::connect(&server.addr, None).await
        } else {
            Ws::connect(&server.addr, Some(&token(claims.clone()))).await
        };
        assert_eq!(
            ws.subscribe("docs", json!({"table": "docs"})).await["type"],
            "ack"
        );
        sockets.push(ws);
    }
    let mut sentinel =
        Ws::connect(&server.addr, Some(&token(json!({"role": "service_role"})))).await;
    assert_eq!(
        sentinel.subscribe("docs", json!({"table": "docs"})).await["type"],
        "ack"
    );

    let user_ids: Vec<String> = identities[..10]
        .iter()
        .map(|(_, c)| c["sub"].as_str().unwrap().to_string())
        .collect();
    let mut rng = StdRng::seed_from_u64(20261122);
    let mut live: Vec<i64> = Vec::new();
    let mut expected: Vec<Vec<Expect>> = vec![Vec::new(); identities.len()];
    // Rows each socket may legitimately see a key-only DELETE for.
    let mut deletes: Vec<i64> = Vec::new();
    let mut writes = 0;
    for _ in 0..160 {
        let roll = rng.random_range(0..100);
        let owner = &user_ids[rng.random_range(0..10)];
        let tenant = ["acme", "globex", "initech"][rng.random_range(0..3)];
        let public = rng.random_range(0..4) == 0;
        let team = rng.random_range(1..=3);
        if roll < 15 {
            // Membership flip in another table: changes who sees team rows from now on.
            let user = &user_ids[rng.random_range(0..10)];
            let team = rng.random_range(1..=3);
            client
                .execute(
                    "WITH d AS (DELETE FROM public.members WHERE team_id = $1 AND user_id = $2::text::uuid RETURNING 1)
                     INSERT INTO public.members SELECT $1, $2::text::uuid WHERE NOT EXISTS (SELECT 1 FROM d)",
                    &[&team, user],
                )
                .await
                .unwrap();
            continue;
        }
        let (kind, id) = if roll < 55 || live.is_empty() {
            let id: i64 = client
                .query_one(
                    "INSERT INTO public.docs (owner, tenant, is_public, team_id, body)
                     VALUES ($1::text::uuid, $2, $3, $4, $5) RETURNING id",
                    &[owner, &tenant, &public, &team, &format!("doc by {owner}")],
                )
                .await
                .unwrap()
                .get(0);
            live.push(id);
            ("INSERT", id)
        } else if roll < 88 {
            // Visibility flips: owner, tenant, public flag or team change.
            let id = live[rng.random_range(0..live.len())];
            client
                .execute(
                    "UPDATE public.docs SET owner = $2::text::uuid, tenant = $3, is_public = $4, team_id = $5,
                         body = body || '.' WHERE id = $1",
                    &[&id, owner, &tenant, &public, &team],
                )
                .await
                .unwrap();
            ("UPDATE", id)
        } else {
            let id = live.swap_remove(rng.random_range(0..live.len()));
            let mut before = Vec::new();
            for (role, claims) in &identities {
                before.push(visible(&mut client, role, claims, id).await);
            }
            client
                .execute("DELETE FROM public.docs WHERE id = $1", &[&id])
                .await
                .unwrap();
            for (i, seen) in before.into_iter().enumerate() {
                if seen {
                    expected[i].push(Expect::Delete { id });
                }
            }
            deletes.push(id);
            await_sentinel(&mut sentinel, "DELETE", id).await;
            writes += 1;
            continue;
        };
        writes += 1;
        let record = row_json(&client, id).await;
        for (i, (role, claims)) in identities.iter().enumerate() {
            if visible(&mut client, role, claims, id).await {
                expected[i].push(Expect::Row {
                    kind,
                    id,
                    record: record.clone(),
                });
            }
        }
        if tokio::time::timeout(
            std::time::Duration::from_secs(10),
            await_sentinel(&mut sentinel, kind, id),
        )
        .await
        .is_err()
        {
            panic!(
                "no sentinel event; server log:\n{}",
                server.drain_log().join("\n")
            );
        }
    }
    assert!(writes > 100, "only {writes} writes");

    // A public marker row: once every socket has it, everything before it has arrived.
    let marker: i64 = client
        .query_one(
            "INSERT INTO public.docs (is_public, body) VALUES (true, 'marker') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut leaks = Vec::new();
    let mut losses = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        let mut got: Vec<Expect> = Vec::new();
        loop {
            let f = ws.frame_of("postgres_changes").await;
            let p = &f["payload"];
            let kind = p["type"].as_str().unwrap();
            if kind == "INSERT" && p["record"]["id"] == marker {
                break;
            }
            match kind {
                "DELETE" => {
                    let old = p["old_record"].as_object().unwrap();
                    let id = old["id"].as_i64().unwrap();
                    let was_visible = expected[i].contains(&Expect::Delete { id });
                    // The old row's content only where its visibility was established.
                    if old.len() > 1 && !was_visible {
                        leaks.push(format!("socket {i}: old row of deleted doc {id}"));
                    }
                    assert!(deletes.contains(&id));
                    if was_visible {
                        got.push(Expect::Delete { id });
                    }
                }
                kind => {
                    let record = p["record"].clone();
                    let id = record["id"].as_i64().unwrap();
                    let mut cmp = serde_json::Map::new();
                    for k in ["id", "owner", "tenant", "is_public", "team_id", "body"] {
                        cmp.insert(k.into(), record[k].clone());
                    }
                    got.push(Expect::Row {
                        kind: if kind == "INSERT" { "INSERT" } else { "UPDATE" },
                        id,
                        record: Value::Object(cmp),
                    });
                }
            }
        }
        let want = &expected[i];
        let mut want_count: HashMap<String, usize> = HashMap::new();
        for e in want {
            *want_count.entry(format!("{e:?}")).or_default() += 1;
        }
        for e in &got {
            if !want.contains(e) {
                leaks.push(format!("socket {i}: received {e:?} it could not SELECT"));
            }
        }
        for e in want {
            if !got.contains(e) {
                losses.push(format!("socket {i}: missed {e:?}"));
            }
        }
        // Commit order: what arrived is in the order it was written.
        let order: Vec<&Expect> = want.iter().filter(|e| got.contains(e)).collect();
        let got_order: Vec<&Expect> = got.iter().filter(|e| want.contains(e)).collect();
        assert_eq!(order, got_order, "socket {i}: out of commit order");
    }
    assert!(leaks.is_empty(), "LEAKS:\n{}", leaks.join("\n"));
    assert!(losses.is_empty(), "LOSSES:\n{}", losses.join("\n"));
    // The run exercised the paths: many deliveries, and not everyone saw everything.
    let seen: usize = expected.iter().map(Vec::len).sum();
    assert!(seen > 50, "{seen}");
    let most = expected.iter().map(Vec::len).max().unwrap();
    let least = expected.iter().map(Vec::len).min().unwrap();
    assert!(
        least < most,
        "every socket saw the same events: visibility never differed"
    );
}

/// The `postgres_changes` payloads a socket receives up to (not including) the INSERT of
/// row `marker` — a row every subscriber of the test may see, written last: once it
/// arrives, everything committed before it has arrived (order per socket).
async fn until_marker(ws: &mut Ws, marker: i64) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let f = ws.frame_of("postgres_changes").await;
        let p = f["payload"].clone();
        if p["type"] == "INSERT" && p["record"]["id"] == marker {
            return got;
        }
        got.push(p);
    }
}

fn kinds_and_labels(payloads: &[Value]) -> Vec<(String, String)> {
    payloads
        .iter()
        .map(|p| {
            (
                p["type"].as_str().unwrap_or("").to_string(),
                p["record"]["label"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_judges_each_version_not_the_current_row() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let (u1, u2) = (
        "10000000-0000-4000-8000-000000000001",
        "20000000-0000-4000-8000-000000000002",
    );
    client
        .batch_execute(&format!(
            "CREATE TABLE public.versions (id bigserial PRIMARY KEY, label text, team int);
             ALTER TABLE public.versions ENABLE ROW LEVEL SECURITY;
             CREATE TABLE public.teams (team int, user_id uuid);
             GRANT SELECT ON public.versions, public.teams TO authenticated;
             -- Neither compiles: both go to the SQL fallback.
             CREATE POLICY open ON public.versions FOR SELECT TO authenticated
               USING (coalesce(label, '') = 'public');
             CREATE POLICY team ON public.versions FOR SELECT TO authenticated USING (
               EXISTS (SELECT 1 FROM public.teams t WHERE t.team = versions.team AND t.user_id = auth.uid()));
             INSERT INTO public.teams VALUES (1, '{u2}');"
        ))
        .await
        .unwrap();
    let (_server, _dir) = realtime_server(&db, &[]).await;
    let server = _server;
    let mut one = Ws::connect(
        &server.addr,
        Some(&token(json!({"sub": u1, "role": "authenticated"}))),
    )
    .await;
    let mut two = Ws::connect(
        &server.addr,
        Some(&token(json!({"sub": u2, "role": "authenticated"}))),
    )
    .await;
    for ws in [&mut one, &mut two] {
        assert_eq!(
            ws.subscribe("v", json!({"table": "versions"})).await["type"],
            "ack"
        );
    }
    // In one transaction, then back to back: a private version, then a public one.
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO versions (id, label, team) VALUES (1, 'private', 2);
             UPDATE versions SET label = 'public' WHERE id = 1;
             COMMIT;
             INSERT INTO versions (id, label, team) VALUES (2, 'private', 2);
             UPDATE versions SET label = 'public' WHERE id = 2;
             -- A team-1 version: only the member sees it (EXISTS over another table),
             -- in the same transaction as the membership of a new member.
             BEGIN;
             INSERT INTO teams VALUES (3, '10000000-0000-4000-8000-000000000001');
             INSERT INTO versions (id, label, team) VALUES (3, 'private', 1), (4, 'private', 3);
             COMMIT;
             INSERT INTO versions (id, label) VALUES (100, 'public');",
        )
        .await
        .unwrap();
    let seen_one = until_marker(&mut one, 100).await;
    let seen_two = until_marker(&mut two, 100).await;
    let ids = |payloads: &[Value]| -> Vec<(String, i64, String)> {
        payloads
            .iter()
            .map(|p| {
                (
                    p["type"].as_str().unwrap().to_string(),
                    p["record"]["id"].as_i64().unwrap(),
                    p["record"]["label"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // The private INSERTs never reach a user who could not see that version.
    assert_eq!(
        ids(&seen_one),
        vec![
            ("UPDATE".into(), 1, "public".into()),
            ("UPDATE".into(), 2, "public".into()),
            ("INSERT".into(), 4, "private".into()),
        ],
        "{:?}",
        kinds_and_labels(&seen_one)
    );
    assert_eq!(
        ids(&seen_two),
        vec![
            ("UPDATE".into(), 1, "public".into()),
            ("UPDATE".into(), 2, "public".into()),
            ("INSERT".into(), 3, "private".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_claim_takes_part_in_the_decision() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cutoff = now + 5000;
    client
        .batch_execute(&format!(
            "CREATE TABLE public.fresh (id bigserial PRIMARY KEY, body text);
             ALTER TABLE public.fresh ENABLE ROW LEVEL SECURITY;
             GRANT SELECT ON public.fresh TO authenticated;
             -- Only tokens that live past the cutoff (a policy reading exp).
             CREATE POLICY long_lived ON public.fresh FOR SELECT TO authenticated
               USING ((auth.jwt() ->> 'exp')::bigint > {cutoff} OR body = 'marker');"
        ))
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let sub = "30000000-0000-4000-8000-000000000003";
    // Two tokens of one user, differing only in exp (and iat/jti).
    let mut short = Ws::connect(
        &server.addr,
        Some(&token(
            json!({"sub": sub, "role": "authenticated", "exp": now + 3600, "iat": now, "jti": "a"}),
        )),
    )
    .await;
    let mut long = Ws::connect(
        &server.addr,
        Some(&token(
            json!({"sub": sub, "role": "authenticated", "exp": now + 7200, "iat": now, "jti": "b"}),
        )),
    )
    .await;
    for ws in [&mut short, &mut long] {
        assert_eq!(
            ws.subscribe("f", json!({"table": "fresh"})).await["type"],
            "ack"
        );
    }
    client
        .batch_execute(
            "INSERT INTO fresh (id, body) VALUES (1, 'secret');
             INSERT INTO fresh (id, body) VALUES (100, 'marker');",
        )
        .await
        .unwrap();
    let got_short = until_marker(&mut short, 100).await;
    let got_long = until_marker(&mut long, 100).await;
    assert!(got_short.is_empty(), "short-lived token saw {got_short:?}");
    assert_eq!(got_long.len(), 1, "{got_long:?}");
    assert_eq!(got_long[0]["record"]["body"], "secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_null_is_not_sql_null_end_to_end() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.metas (id bigserial PRIMARY KEY, meta jsonb);
             ALTER TABLE public.metas ENABLE ROW LEVEL SECURITY;
             GRANT SELECT ON public.metas TO anon, authenticated;
             CREATE POLICY has_meta ON public.metas FOR SELECT TO authenticated
               USING (meta IS NOT NULL);
             CREATE POLICY no_meta ON public.metas FOR SELECT TO anon USING (meta IS NULL);",
        )
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut user = Ws::connect(
        &server.addr,
        Some(&token(
            json!({"sub": "40000000-0000-4000-8000-000000000004", "role": "authenticated"}),
        )),
    )
    .await;
    let mut anon = Ws::connect(&server.addr, None).await;
    let mut service =
        Ws::connect(&server.addr, Some(&token(json!({"role": "service_role"})))).await;
    assert_eq!(
        user.subscribe("m", json!({"table": "metas"})).await["type"],
        "ack"
    );
    assert_eq!(
        anon.subscribe("m", json!({"table": "metas"})).await["type"],
        "ack"
    );
    // A filter follows SQL too: is.null is false for the JSON literal.
    assert_eq!(
        service
            .subscribe("m", json!({"table": "metas", "filter": "meta=is.null"}))
            .await["type"],
        "ack"
    );
    client
        .batch_execute(
            "INSERT INTO metas (id, meta) VALUES (1, 'null');
             INSERT INTO metas (id, meta) VALUES (2, NULL);
             INSERT INTO metas (id, meta) VALUES (100, '{}');
             INSERT INTO metas (id, meta) VALUES (101, NULL);",
        )
        .await
        .unwrap();
    let got = until_marker(&mut user, 100).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["record"], json!({"id": 1, "meta": null}));
    assert_eq!(got[0]["json_nulls"], json!(["meta"]));
    let got = until_marker(&mut anon, 101).await;
    let ids: Vec<&Value> = got.iter().map(|p| &p["record"]["id"]).collect();
    assert_eq!(ids, vec![&json!(2)], "{got:?}");
    assert!(got[0].get("json_nulls").is_none());
    let got = until_marker(&mut service, 101).await;
    let ids: Vec<&Value> = got.iter().map(|p| &p["record"]["id"]).collect();
    assert_eq!(ids, vec![&json!(2)], "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_values_still_match_filters() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.bigdocs (id bigserial PRIMARY KEY, n int, big text);
             GRANT SELECT ON public.bigdocs TO anon;
             -- REPLICA IDENTITY DEFAULT: an UPDATE leaving big alone does not carry it.
             INSERT INTO public.bigdocs (id, n, big)
               SELECT 1, 0, 'wanted:' || string_agg(md5(random()::text), '') FROM generate_series(1, 320);
             INSERT INTO public.bigdocs (id, n, big)
               SELECT 2, 0, 'other:' || string_agg(md5(random()::text), '') FROM generate_series(1, 320);",
        )
        .await
        .unwrap();
    let stored: i32 = client
        .query_one("SELECT pg_column_size(big) FROM bigdocs WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored > 2048, "big is TOASTed out of line ({stored} bytes)");
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut ws = Ws::connect(&server.addr, None).await;
    assert_eq!(
        ws.subscribe(
            "b",
            json!({"table": "bigdocs", "event": "UPDATE", "filter": "big=like.wanted:%"})
        )
        .await["type"],
        "ack"
    );
    let mut all = Ws::connect(&server.addr, None).await;
    assert_eq!(
        all.subscribe("b", json!({"table": "bigdocs"})).await["type"],
        "ack"
    );
    client
        .batch_execute(
            "UPDATE bigdocs SET n = 1 WHERE id = 2;
             UPDATE bigdocs SET n = 1 WHERE id = 1;
             INSERT INTO bigdocs (id, n, big) VALUES (100, 0, 'marker');",
        )
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["type"], "UPDATE");
    assert_eq!(f["payload"]["record"]["id"], 1, "{f}");
    assert_eq!(f["payload"]["unchanged_toast"], json!(["big"]));
    // Nothing else matched: the next update of row 2 is not delivered either.
    let rest = until_marker(&mut all, 100).await;
    assert_eq!(rest.len(), 2);
    client
        .batch_execute(
            "UPDATE bigdocs SET n = 2 WHERE id = 2; UPDATE bigdocs SET n = 2 WHERE id = 1;",
        )
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["id"], 1, "{f}");
    assert_eq!(f["payload"]["record"]["n"], 2, "{f}");
}

/// Writes a restricted row and a marker until the subject socket's view of restricted rows
/// is `want` (a role change applied by the engine), within 15 s; returns how many rounds
/// it took.
async fn until_access(
    client: &tokio_postgres::Client,
    subject: &mut Ws,
    next_id: &mut i64,
    want: bool,
) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    for round in 1.. {
        let (restricted, marker) = (*next_id, *next_id + 1);
        *next_id += 2;
        client
            .execute(
                "INSERT INTO rc (id, body) VALUES ($1, 'restricted'), ($2, 'marker')",
                &[&restricted, &marker],
            )
            .await
            .unwrap();
        let got = until_marker(subject, marker).await;
        let saw = got.iter().any(|p| p["record"]["id"] == restricted);
        if saw == want {
            return round;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the role change was not applied within 15 s (want access: {want})"
        );
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_are_seen_within_seconds() {
    let db = TestDb::new().await;
    let client = db.client().await;
    // Roles are cluster-wide: names unique to this test's database.
    let role = format!("rc_role_{}", db.name());
    let admin = format!("rc_admin_{}", db.name());
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} NOLOGIN; CREATE ROLE {admin} NOLOGIN;
             CREATE TABLE public.rc (id bigint PRIMARY KEY, body text);
             ALTER TABLE public.rc ENABLE ROW LEVEL SECURITY;
             GRANT SELECT ON public.rc TO {role}, {admin};
             CREATE POLICY markers ON public.rc FOR SELECT USING (body = 'marker');
             CREATE POLICY admins ON public.rc FOR SELECT TO {admin} USING (true);"
        ))
        .await
        .unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let mut subject = Ws::connect(&server.addr, Some(&token(json!({"role": role})))).await;
    assert_eq!(
        subject.subscribe("r", json!({"table": "rc"})).await["type"],
        "ack"
    );
    let mut next_id = 1;
    assert_eq!(
        until_access(&client, &mut subject, &mut next_id, false).await,
        1
    );

    // Role attributes fire no event trigger.
    client
        .batch_execute(&format!("ALTER ROLE {role} BYPASSRLS"))
        .await
        .unwrap();
    until_access(&client, &mut subject, &mut next_id, true).await;
    client
        .batch_execute(&format!("ALTER ROLE {role} NOBYPASSRLS"))
        .await
        .unwrap();
    until_access(&client, &mut subject, &mut next_id, false).await;

    // Nor do memberships: a policy TO a role the subject is granted.
    client
        .batch_execute(&format!("GRANT {admin} TO {role}"))
        .await
        .unwrap();
    until_access(&client, &mut subject, &mut next_id, true).await;
    client
        .batch_execute(&format!("REVOKE {admin} FROM {role}"))
        .await
        .unwrap();
    until_access(&client, &mut subject, &mut next_id, false).await;

    client
        .batch_execute(&format!(
            "DROP TABLE public.rc; DROP ROLE {role}; DROP ROLE {admin};"
        ))
        .await
        .ok();
}
