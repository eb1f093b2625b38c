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
