//! No leak, no loss: randomized writes under several policy shapes (owner, tenant claim,
//! public flag, a membership subquery, a JSON-null-aware policy on a custom claim, a
//! `coalesce` policy and a policy reading a TOASTed column — the last three through the SQL
//! fallback), with visibility flips, same-row bursts (in one transaction and back to back),
//! role changes, JSON nulls and TOASTed values, compared socket by socket with what
//! PostgreSQL says each user could SELECT of each version — over native sockets, and over
//! Phoenix sockets (realtime-js's protocol, both versions). Plus focused end-to-end tests
//! of each corner.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

use fluxbase_migrations::test_utils::TestDb;

use crate::support::phoenix::Subscriber;
use crate::support::{Server, TempDir, Ws, realtime_server, token};

/// What one socket should see of one change.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// INSERT/UPDATE of a row version it may SELECT: exactly this record.
    Row {
        kind: &'static str,
        id: i64,
        record: Value,
    },
    /// DELETE of a row it could see: the event must arrive (old row or key only).
    Delete { id: i64 },
}

/// PostgreSQL's answer for the row version `client` sees now; `in_tx`: inside a writer's
/// open transaction (that transaction's version), probed in a savepoint.
async fn visible(
    client: &impl GenericClient,
    in_tx: bool,
    role: &str,
    claims: &Value,
    id: i64,
) -> bool {
    let (open, close) = if in_tx {
        (
            "SAVEPOINT probe",
            "ROLLBACK TO SAVEPOINT probe; RELEASE SAVEPOINT probe",
        )
    } else {
        ("BEGIN", "ROLLBACK")
    };
    client.batch_execute(open).await.unwrap();
    client
        .execute(
            "SELECT set_config('request.jwt.claims', $1, true)",
            &[&claims.to_string()],
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    let seen = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.docs WHERE id = $1)",
            &[&id],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    // Role and claims were local to the savepoint or transaction.
    client.batch_execute(close).await.unwrap();
    seen
}

/// The fields compared (not the TOASTed `big`, which an UPDATE leaving it alone omits).
const FIELDS: &[&str] = &[
    "id",
    "owner",
    "tenant",
    "is_public",
    "team_id",
    "body",
    "meta",
    "label",
    "level",
];

/// Whether a received record's `meta` is SQL NULL: `null` and not announced in
/// `json_nulls` (the JSON literal is).
fn meta_is_sql_null(payload: &Value) -> bool {
    payload["record"]["meta"].is_null()
        && !payload["json_nulls"]
            .as_array()
            .is_some_and(|l| l.contains(&json!("meta")))
}

async fn row_json(client: &impl GenericClient, id: i64) -> Value {
    client
        .query_one(
            "SELECT jsonb_build_object('id', id, 'owner', owner, 'tenant', tenant,
                    'is_public', is_public, 'team_id', team_id, 'body', body, 'meta', meta,
                    'label', label, 'level', level, 'meta_is_null', meta IS NULL)::text
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
        if p["table"] == "docs" && p["type"] == kind && row["id"] == id {
            return;
        }
    }
}

/// Random column values of a docs version.
struct Version {
    owner: String,
    tenant: &'static str,
    public: bool,
    team: i32,
    /// `None`: SQL NULL; `Some("null")`: the JSON literal.
    meta: Option<&'static str>,
    label: Option<&'static str>,
    level: i32,
}

fn random_version(rng: &mut StdRng, users: &[String]) -> Version {
    Version {
        owner: users[rng.random_range(0..users.len())].clone(),
        tenant: ["acme", "globex", "initech"][rng.random_range(0..3)],
        public: rng.random_range(0..5) == 0,
        team: rng.random_range(1..=3),
        meta: [None, Some("null"), Some(r#"{"k": 1}"#)][rng.random_range(0..3)],
        label: [None, Some("x"), Some("y")][rng.random_range(0..3)],
        level: rng.random_range(1..=3),
    }
}

/// A `big` value: short, NULL, or about 10 KB of incompressible text (TOASTed out of
/// line), starting with `open` or `shut` (anon's policy reads it).
fn random_big(rng: &mut StdRng) -> String {
    let prefix = ["open", "shut"][rng.random_range(0..2)];
    match rng.random_range(0..3) {
        0 => format!("'{prefix}'"),
        1 => format!(
            "'{prefix}' || (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 320))"
        ),
        _ => "NULL".into(),
    }
}

async fn insert(client: &impl GenericClient, v: &Version, big: &str) -> i64 {
    client
        .query_one(
            &format!(
                "INSERT INTO public.docs (owner, tenant, is_public, team_id, body, meta, label, level, big)
                 VALUES ($1::text::uuid, $2, $3, $4, $5, $6::text::jsonb, $7, $8, {big}) RETURNING id"
            ),
            &[&v.owner, &v.tenant, &v.public, &v.team, &format!("doc by {}", v.owner), &v.meta, &v.label, &v.level],
        )
        .await
        .unwrap()
        .get(0)
}

/// Updates every column but `big` (left alone: unchanged TOAST) unless `big` is given.
async fn update(client: &impl GenericClient, id: i64, v: &Version, big: Option<&str>) {
    let big = big.map(|b| format!(", big = {b}")).unwrap_or_default();
    client
        .execute(
            &format!(
                "UPDATE public.docs SET owner = $2::text::uuid, tenant = $3, is_public = $4, team_id = $5,
                     body = body || '.', meta = $6::text::jsonb, label = $7, level = $8 {big} WHERE id = $1"
            ),
            &[&id, &v.owner, &v.tenant, &v.public, &v.team, &v.meta, &v.label, &v.level],
        )
        .await
        .unwrap();
}

/// Records what every identity should receive of the version of row `id` `client` sees.
async fn expect_version(
    client: &impl GenericClient,
    in_tx: bool,
    identities: &[(String, Value)],
    expected: &mut [Vec<Expect>],
    kind: &'static str,
    id: i64,
) {
    let record = row_json(client, id).await;
    for (i, (role, claims)) in identities.iter().enumerate() {
        if visible(client, in_tx, role, claims, id).await {
            expected[i].push(Expect::Row {
                kind,
                id,
                record: record.clone(),
            });
        }
    }
}

/// Toggles BYPASSRLS of the custom role and waits until the engine has reloaded its facts
/// (its log line), then checks the custom socket's view on a probe table (a restricted row
/// and a marker). Docs payloads read meanwhile are kept for the final comparison.
async fn toggle_bypass(
    server: &mut crate::support::Server,
    client: &tokio_postgres::Client,
    role: &str,
    bypass: bool,
    socket: &mut Subscriber,
    kept: &mut Vec<Value>,
    next_probe: &mut i64,
) {
    let attr = if bypass { "BYPASSRLS" } else { "NOBYPASSRLS" };
    server.drain_log();
    client
        .batch_execute(&format!("ALTER ROLE {role} {attr}"))
        .await
        .unwrap();
    // No event trigger fires: the engine's role watcher notices within about a second.
    server
        .wait_for_log("rls facts reloaded after a role change")
        .await;
    let (restricted, marker) = (*next_probe, *next_probe + 1);
    *next_probe += 2;
    client
        .execute(
            "INSERT INTO public.probe (id, body) VALUES ($1, 'restricted'), ($2, 'marker')",
            &[&restricted, &marker],
        )
        .await
        .unwrap();
    let mut saw = false;
    loop {
        let p = socket.change().await;
        if p["table"] == "probe" {
            saw |= p["record"]["id"] == restricted;
            if p["record"]["id"] == marker {
                break;
            }
        } else {
            kept.push(p);
        }
    }
    assert_eq!(saw, bypass, "after ALTER ROLE {attr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_writes_leak_nothing_and_lose_nothing() {
    randomized_workload(Protocol::Native).await;
}

/// The same workload over Phoenix sockets (`/realtime/v1/websocket`, realtime-js's
/// protocol), half of them vsn 1.0.0 and half 2.0.0, their tokens in the joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_writes_leak_nothing_and_lose_nothing_over_phoenix() {
    randomized_workload(Protocol::Phoenix).await;
}

/// Which protocol the subject sockets speak (the sentinel is always native).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Native,
    Phoenix,
}

async fn randomized_workload(protocol: Protocol) {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let custom = format!("rr_{}", db.name());
    client
        .batch_execute(&format!(
            "CREATE ROLE {custom} NOLOGIN;
             CREATE TABLE public.members (team_id int, user_id uuid, PRIMARY KEY (team_id, user_id));
             GRANT SELECT ON public.members TO authenticated;
             CREATE TABLE public.docs (id bigserial PRIMARY KEY, owner uuid, tenant text,
                 is_public bool NOT NULL DEFAULT false, team_id int, body text, meta jsonb,
                 label text, level int, big text);
             -- REPLICA IDENTITY DEFAULT: unchanged TOAST values are not in the stream.
             ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;
             GRANT SELECT ON public.docs TO anon, authenticated, service_role, {custom};
             CREATE POLICY own ON public.docs FOR SELECT TO authenticated USING (owner = auth.uid());
             CREATE POLICY tenant ON public.docs FOR SELECT TO authenticated
                 USING (tenant = (auth.jwt() ->> 'tenant'));
             CREATE POLICY pub ON public.docs FOR SELECT USING (is_public);
             CREATE POLICY team ON public.docs FOR SELECT TO authenticated USING (EXISTS (
                 SELECT 1 FROM public.members m WHERE m.team_id = docs.team_id AND m.user_id = auth.uid()));
             -- JSON null literal counts as a value; a custom claim per user.
             CREATE POLICY meta_level ON public.docs FOR SELECT TO authenticated
                 USING (meta IS NOT NULL AND level <= (auth.jwt() ->> 'level')::int);
             -- Outside the compiled subset: the SQL fallback, on each version.
             CREATE POLICY label_claim ON public.docs FOR SELECT TO authenticated
                 USING (coalesce(label, 'none') = (auth.jwt() ->> 'label'));
             CREATE POLICY big_open ON public.docs FOR SELECT TO anon USING (big LIKE 'open%');
             CREATE TABLE public.probe (id bigint PRIMARY KEY, body text);
             ALTER TABLE public.probe ENABLE ROW LEVEL SECURITY;
             CREATE POLICY markers ON public.probe FOR SELECT USING (body = 'marker');
             GRANT SELECT ON public.probe TO {custom};"
        ))
        .await
        .unwrap();
    // TTL 0: a membership change (another table) is seen by the very next decision. The
    // sockets are only read at the end: no pings meanwhile (a client answers them only
    // while it reads).
    let (mut server, _dir) = realtime_server(
        &db,
        &[
            ("FLUXBASE_REALTIME_RLS_CACHE_TTL", "0s"),
            ("FLUXBASE_REALTIME_PING_INTERVAL", "1h"),
        ],
    )
    .await;

    // 10 users with varied claims (tenant, level, label), anon, a custom role.
    let tenants = ["acme", "globex", ""];
    let mut identities: Vec<(String, Value)> = Vec::new();
    for i in 0..10 {
        let sub = format!("00000000-0000-4000-8000-{i:012}");
        let mut claims = json!({"sub": sub, "role": "authenticated", "level": 1 + i % 3});
        if !tenants[i % 3].is_empty() {
            claims["tenant"] = json!(tenants[i % 3]);
        }
        if i % 4 != 0 {
            claims["label"] = json!(["x", "y", "none"][i % 3]);
        }
        identities.push(("authenticated".into(), claims));
    }
    identities.push(("anon".into(), json!({"role": "anon"})));
    identities.push((custom.clone(), json!({"role": custom})));
    let custom_index = identities.len() - 1;
    let mut sockets = Vec::new();
    let anon_key = token(json!({"role": "anon"}));
    for (i, (role, claims)) in identities.iter().enumerate() {
        let jwt = (role != "anon").then(|| token(claims.clone()));
        let mut ws = match protocol {
            Protocol::Native => Subscriber::native(&server.addr, jwt.as_deref()).await,
            Protocol::Phoenix => {
                let vsn = ["1.0.0", "2.0.0"][i % 2];
                Subscriber::phoenix(&server.addr, &anon_key, vsn, jwt.as_deref()).await
            }
        };
        for table in ["docs", "probe"] {
            if table == "probe" && role != &custom {
                continue;
            }
            ws.subscribe_table(table).await;
        }
        sockets.push(ws);
    }
    let mut sentinel =
        Ws::connect(&server.addr, Some(&token(json!({"role": "service_role"})))).await;
    assert_eq!(
        sentinel.subscribe("docs", json!({"table": "docs"})).await["type"],
        "ack"
    );

    let mut kept: Vec<Value> = Vec::new();
    let mut next_probe = 1;
    let user_ids: Vec<String> = identities[..10]
        .iter()
        .map(|(_, c)| c["sub"].as_str().unwrap().to_string())
        .collect();
    let seed = std::env::var("RLS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261122);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut live: Vec<i64> = Vec::new();
    let mut expected: Vec<Vec<Expect>> = vec![Vec::new(); identities.len()];
    let mut bypass = false;
    // Rows each socket may legitimately see a key-only DELETE for.
    let mut deletes: Vec<i64> = Vec::new();
    let (mut writes, mut bursts, mut toggles) = (0, 0, 0);
    for _ in 0..170 {
        let roll = rng.random_range(0..100);
        if roll < 10 {
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
        if roll < 14 {
            bypass = !bypass;
            toggles += 1;
            toggle_bypass(
                &mut server,
                &client,
                &custom,
                bypass,
                &mut sockets[custom_index],
                &mut kept,
                &mut next_probe,
            )
            .await;
            continue;
        }
        let v = random_version(&mut rng, &user_ids);
        let (kind, id) = if roll < 45 || live.is_empty() {
            let big = random_big(&mut rng);
            let id = insert(&client, &v, &big).await;
            live.push(id);
            expect_version(&client, false, &identities, &mut expected, "INSERT", id).await;
            ("INSERT", id)
        } else if roll < 70 {
            // Visibility flips; half of them leave the TOASTed `big` unchanged.
            let id = live[rng.random_range(0..live.len())];
            let big = (rng.random_range(0..2) == 0).then(|| random_big(&mut rng));
            update(&client, id, &v, big.as_deref()).await;
            expect_version(&client, false, &identities, &mut expected, "UPDATE", id).await;
            ("UPDATE", id)
        } else if roll < 80 {
            // Same-row burst in one transaction: each version judged as it was.
            bursts += 1;
            let tx = client.transaction().await.unwrap();
            let big = random_big(&mut rng);
            let id = insert(&tx, &v, &big).await;
            expect_version(&tx, true, &identities, &mut expected, "INSERT", id).await;
            for _ in 0..2 {
                let v = random_version(&mut rng, &user_ids);
                update(&tx, id, &v, None).await;
                expect_version(&tx, true, &identities, &mut expected, "UPDATE", id).await;
            }
            tx.commit().await.unwrap();
            live.push(id);
            ("UPDATE", id)
        } else if roll < 90 {
            // Same-row burst back to back (separate commits, no waiting in between). Each
            // update sets `big`: a value left unchanged and rewritten by a later commit
            // before the engine reads it is withheld from policies by design (it may
            // belong to the later version; REPLICA IDENTITY FULL makes it exact).
            bursts += 1;
            let big = random_big(&mut rng);
            let id = insert(&client, &v, &big).await;
            expect_version(&client, false, &identities, &mut expected, "INSERT", id).await;
            for _ in 0..2 {
                let v = random_version(&mut rng, &user_ids);
                let big = random_big(&mut rng);
                update(&client, id, &v, Some(&big)).await;
                expect_version(&client, false, &identities, &mut expected, "UPDATE", id).await;
            }
            live.push(id);
            ("UPDATE", id)
        } else {
            let id = live.swap_remove(rng.random_range(0..live.len()));
            let mut before = Vec::new();
            for (role, claims) in &identities {
                before.push(visible(&client, false, role, claims, id).await);
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
            ("DELETE", id)
        };
        writes += 1;
        if tokio::time::timeout(
            std::time::Duration::from_secs(20),
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
    assert!(
        writes > 100 && bursts > 10 && toggles > 2,
        "{writes} {bursts} {toggles}"
    );

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
        let mut payloads: Vec<Value> = if i == custom_index {
            std::mem::take(&mut kept)
        } else {
            Vec::new()
        };
        loop {
            let p = ws.change().await;
            if p["table"] == "probe" {
                continue;
            }
            if p["type"] == "INSERT" && p["record"]["id"] == marker {
                break;
            }
            payloads.push(p);
        }
        let mut got: Vec<Expect> = Vec::new();
        for p in &payloads {
            let kind = p["type"].as_str().unwrap();
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
                    for k in FIELDS {
                        cmp.insert(k.to_string(), record[*k].clone());
                    }
                    cmp.insert("meta_is_null".into(), json!(meta_is_sql_null(p)));
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
    assert!(
        leaks.is_empty(),
        "LEAKS (seed {seed}):\n{}",
        leaks.join("\n")
    );
    assert!(
        losses.is_empty(),
        "LOSSES (seed {seed}):\n{}",
        losses.join("\n")
    );
    // The run exercised the paths: many deliveries, and not everyone saw everything.
    let seen: usize = expected.iter().map(Vec::len).sum();
    assert!(seen > 50, "{seen}");
    let most = expected.iter().map(Vec::len).max().unwrap();
    let least = expected.iter().map(Vec::len).min().unwrap();
    assert!(
        least < most,
        "every socket saw the same events: visibility never differed"
    );
    client
        .batch_execute(&format!(
            "DROP TABLE public.docs, public.probe; DROP ROLE {custom};"
        ))
        .await
        .ok();
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

/// A socket of a role, subscribed to `public.rc` under RLS (markers for everyone, every
/// row for `admin`), and what changes its access: two roles unique to the test's database
/// (`role`, `admin`) and a client.
struct RoleSubject {
    client: tokio_postgres::Client,
    role: String,
    admin: String,
    subject: Ws,
    next_id: i64,
    _server: Server,
    _dir: TempDir,
}

impl RoleSubject {
    /// Creates the table and roles, starts a server with `env`, subscribes the socket.
    async fn start(db: &TestDb, env: &[(&str, &str)]) -> RoleSubject {
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
        let (server, dir) = realtime_server(db, env).await;
        let mut subject = Ws::connect(&server.addr, Some(&token(json!({"role": role})))).await;
        assert_eq!(
            subject.subscribe("r", json!({"table": "rc"})).await["type"],
            "ack"
        );
        RoleSubject {
            client,
            role,
            admin,
            subject,
            next_id: 1,
            _server: server,
            _dir: dir,
        }
    }

    /// [`until_access`] for this socket.
    async fn access(&mut self, want: bool) -> usize {
        until_access(&self.client, &mut self.subject, &mut self.next_id, want).await
    }

    /// Runs `sql` (`{role}` and `{admin}` replaced by the names), then waits until the
    /// socket's access is `want`.
    async fn after(&mut self, sql: &str, want: bool) -> usize {
        let sql = sql
            .replace("{role}", &self.role)
            .replace("{admin}", &self.admin);
        self.client.batch_execute(&sql).await.unwrap();
        self.access(want).await
    }

    /// Drops the table and the roles.
    async fn clean_up(self) {
        let (role, admin) = (&self.role, &self.admin);
        self.client
            .batch_execute(&format!(
                "DROP TABLE public.rc; DROP ROLE {role}; DROP ROLE {admin};"
            ))
            .await
            .ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_are_seen_within_seconds() {
    let db = TestDb::new().await;
    let mut s = RoleSubject::start(&db, &[]).await;
    assert_eq!(s.access(false).await, 1);

    // Role attributes fire no event trigger.
    s.after("ALTER ROLE {role} BYPASSRLS", true).await;
    s.after("ALTER ROLE {role} NOBYPASSRLS", false).await;

    // Nor do memberships: a policy TO a role the subject is granted.
    s.after("GRANT {admin} TO {role}", true).await;
    s.after("REVOKE {admin} FROM {role}", false).await;
    s.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reread_after_a_role_change_is_retried() {
    let db = TestDb::new().await;
    // The first re-read after a role change fails (test fault of debug builds), as with
    // the database away for a moment.
    let env = [("FLUXBASE_TEST_FAULTS", "role_reload_fails_once")];
    let mut s = RoleSubject::start(&db, &env).await;
    s.access(false).await;
    // Retried on the next check: the change is applied, not forgotten with the failure.
    s.after("ALTER ROLE {role} BYPASSRLS", true).await;
    s.clean_up().await;
}
