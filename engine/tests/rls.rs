//! RLS decisions against real PostgreSQL: for a matrix of tables, rows and auth contexts,
//! the decider must answer exactly what PostgreSQL answers to `SELECT … WHERE id = …` under
//! `SET LOCAL ROLE` + `request.jwt.claims`, and say which path decided.

use fluxbase_auth::{AuthContext, Role};
use fluxbase_engine::realtime::rls::{
    self, Conn, Decision, RelationRef, RlsConfig, RlsDecider, RowChange, RowOwner, RowRef, Source,
};
use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Map, Value, json};
use tokio_postgres::Client;

const ALICE: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
const BOB: &str = "b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22";

/// A custom role shared by every test of the process (roles are cluster-wide).
const EDITOR: &str = "rls_editor";

/// Tables, policies and rows covering the subset, its edges, and the fallbacks.
const SCHEMA: &str = r#"
DO $$ BEGIN
  CREATE ROLE rls_editor NOLOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$ BEGIN
  CREATE ROLE rls_plain NOLOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
-- rls_editor is a well-configured custom role; rls_plain lacks USAGE on schema auth, so
-- any policy calling auth.*() fails for it when PostgreSQL plans the query.
GRANT USAGE ON SCHEMA auth TO rls_editor;

CREATE TABLE owned (id int PRIMARY KEY, user_id uuid, body text);
ALTER TABLE owned ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON owned FOR SELECT USING (user_id = auth.uid());
INSERT INTO owned VALUES
  (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'alice'),
  (2, 'b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22', 'bob'),
  (3, NULL, 'nobody');

CREATE TABLE docs (
  id int PRIMARY KEY, owner uuid, is_public boolean, status text,
  deleted_at timestamptz, n int, amount numeric
);
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY public_or_owner ON docs FOR SELECT USING (is_public OR owner = auth.uid());
CREATE POLICY published ON docs FOR SELECT TO authenticated
  USING (status IN ('published', 'featured'));
CREATE POLICY not_deleted ON docs AS RESTRICTIVE FOR ALL USING (deleted_at IS NULL);
CREATE POLICY anon_small ON docs AS RESTRICTIVE FOR SELECT TO anon USING (n <= 5);
CREATE POLICY rich ON docs FOR SELECT TO rls_editor USING (amount >= 10.5);
INSERT INTO docs VALUES
  (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', false, 'draft', NULL, 1, 10.50),
  (2, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 'draft', NULL, 9, 3),
  (3, 'b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22', false, 'published', NULL, 2, NULL),
  (4, NULL, true, 'featured', now(), 1, 100),
  (5, NULL, NULL, NULL, NULL, NULL, 10.49),
  (6, 'b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22', true, 'x', NULL, 5, 11);

CREATE TABLE tenant_rows (id int PRIMARY KEY, tenant_id text, level int);
ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY same_tenant ON tenant_rows FOR SELECT
  USING ((auth.jwt() ->> 'tenant') = tenant_id);
CREATE POLICY meta_tenant ON tenant_rows FOR SELECT
  USING (tenant_id = auth.jwt() -> 'app_metadata' ->> 'tenant' AND level <= (auth.jwt() ->> 'level')::int);
CREATE POLICY levels ON tenant_rows AS RESTRICTIVE FOR SELECT USING (level IN (1, 2, 3, 4));
INSERT INTO tenant_rows VALUES
  (1, 'acme', 1), (2, 'acme', 4), (3, 'globex', 2), (4, 'initech', 3), (5, NULL, 1), (6, 'acme', 9);

CREATE TABLE roles_only (id int PRIMARY KEY, x text);
ALTER TABLE roles_only ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_role ON roles_only FOR SELECT USING (auth.role() = 'authenticated');
CREATE POLICY editors ON roles_only FOR SELECT TO rls_editor USING (true);
INSERT INTO roles_only VALUES (1, 'a'), (2, 'b');

CREATE TABLE memberships (team text, user_id uuid);
INSERT INTO memberships VALUES ('red', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
CREATE TABLE members_only (id int PRIMARY KEY, team text);
ALTER TABLE members_only ENABLE ROW LEVEL SECURITY;
CREATE POLICY member ON members_only FOR SELECT USING (
  EXISTS (SELECT 1 FROM memberships m
          WHERE m.team = members_only.team AND m.user_id = auth.uid()));
INSERT INTO members_only VALUES (1, 'red'), (2, 'blue');

CREATE TABLE open_rows (id int PRIMARY KEY, x text);
INSERT INTO open_rows VALUES (1, 'a');

CREATE TABLE no_grant (id int PRIMARY KEY, x text);
ALTER TABLE no_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY everything ON no_grant FOR SELECT USING (true);
INSERT INTO no_grant VALUES (1, 'a');

GRANT SELECT ON owned, docs, tenant_rows, roles_only, members_only, open_rows
  TO anon, authenticated, service_role, rls_editor, rls_plain;
GRANT SELECT ON no_grant TO authenticated, service_role;
-- Only signed-in users may read memberships: anon's EXISTS raises permission denied.
GRANT SELECT ON memberships TO authenticated, service_role;
"#;

const TABLES: &[&str] = &[
    "owned",
    "docs",
    "tenant_rows",
    "roles_only",
    "members_only",
    "open_rows",
    "no_grant",
];

fn ctx(claims: Value) -> AuthContext {
    AuthContext::from_claims(claims.as_object().expect("claims object").clone())
}

/// Contexts: anon, users with claims, one whose sub is not a uuid, one without sub,
/// service_role, a custom role, a role that does not exist, and a custom role that may
/// not call auth.*().
fn contexts() -> Vec<AuthContext> {
    vec![
        AuthContext::anon(),
        ctx(
            json!({"sub": ALICE, "role": "authenticated", "tenant": "acme",
                   "app_metadata": {"tenant": "acme"}, "level": 3, "is_admin": true, "exp": 1}),
        ),
        ctx(
            json!({"sub": BOB.to_uppercase(), "role": "authenticated", "tenant": "globex",
                   "app_metadata": {"tenant": "globex"}, "level": "4", "is_admin": "true"}),
        ),
        ctx(
            json!({"sub": "user-1", "role": "authenticated", "tenant": "initech",
                   "level": "high"}),
        ),
        ctx(json!({"role": "authenticated", "app_metadata": {"tenant": "acme"}, "level": 9})),
        AuthContext::service_role(),
        ctx(json!({"sub": ALICE, "role": EDITOR})),
        ctx(json!({"sub": ALICE, "role": "rls_ghost"})),
        ctx(json!({"sub": ALICE, "role": "rls_plain"})),
    ]
}

async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(SCHEMA)
        .await
        .expect("create the schema");
    (db, client)
}

async fn relid(client: &Client, table: &str) -> u32 {
    let row = client
        .query_one("SELECT $1::text::regclass::oid", &[&table])
        .await
        .expect("relid");
    row.get(0)
}

/// The table's rows as the replication crate decodes them (numeric as JSON strings).
async fn decoded_rows(client: &Client, table: &str) -> Vec<Map<String, Value>> {
    let sql = format!(
        "SELECT (SELECT jsonb_object_agg(key, CASE WHEN jsonb_typeof(value) = 'number'
                  AND key IN (SELECT attname FROM pg_attribute
                              WHERE attrelid = '{table}'::regclass AND atttypid = 'numeric'::regtype)
                  THEN to_jsonb(value #>> '{{}}') ELSE value END)
                 FROM jsonb_each(to_jsonb(t)))::text
         FROM {table} t ORDER BY id"
    );
    client
        .query(&sql, &[])
        .await
        .expect("read rows")
        .iter()
        .map(|r| {
            let text: String = r.get(0);
            match serde_json::from_str(&text).expect("row json") {
                Value::Object(map) => map,
                other => panic!("row is not an object: {other}"),
            }
        })
        .collect()
}

/// What PostgreSQL itself says: can `ctx` SELECT the row with this id?
async fn pg_visible(client: &mut Client, table: &str, id: i64, ctx: &AuthContext) -> bool {
    let tx = client.transaction().await.expect("begin");
    let role = ctx.role().as_str().replace('"', "\"\"");
    let visible = async {
        tx.execute(
            "SELECT set_config('request.jwt.claims', $1, true)",
            &[&ctx.claims_json()],
        )
        .await?;
        tx.batch_execute(&format!("SET LOCAL ROLE \"{role}\""))
            .await?;
        let rows = tx
            .query(
                &format!("SELECT 1 FROM {table} WHERE id = $1"),
                &[&(id as i32)],
            )
            .await?;
        Ok::<bool, tokio_postgres::Error>(!rows.is_empty())
    }
    .await
    .unwrap_or(false);
    tx.rollback().await.expect("rollback");
    visible
}

fn pk_of(row: &Map<String, Value>) -> Map<String, Value> {
    let mut pk = Map::new();
    pk.insert("id".into(), row["id"].clone());
    pk
}

async fn load(client: &Client) -> RlsDecider {
    let relations = TABLES
        .iter()
        .map(|t| RelationRef::Name {
            schema: "public".into(),
            table: t.to_string(),
        })
        .collect();
    RlsDecider::load(client, relations, &RlsConfig::default())
        .await
        .expect("load policies")
}

/// Decides every row of `table` for every context and compares with PostgreSQL; returns
/// the decisions per row.
async fn differential(
    client: &mut Client,
    decider: &RlsDecider,
    table: &str,
) -> Vec<Vec<Decision>> {
    let contexts = contexts();
    let refs: Vec<&AuthContext> = contexts.iter().collect();
    let relid = relid(client, table).await;
    let mut all = Vec::new();
    for row in decoded_rows(client, table).await {
        let pk = pk_of(&row);
        let change = RowChange {
            relid,
            pk: &pk,
            row: RowRef::plain(&row),
            xid: 0,
        };
        let decisions = decider
            .decide(&mut Conn::from(&*client), &change, &refs)
            .await
            .expect("decide");
        assert_eq!(decisions.len(), contexts.len());
        let id = row["id"].as_i64().expect("id");
        for (ctx, decision) in contexts.iter().zip(&decisions) {
            let expected = pg_visible(client, table, id, ctx).await;
            assert_eq!(
                decision.allowed,
                expected,
                "{table} id={id} role={} claims={}: decider said {decision:?}, PostgreSQL {expected}",
                ctx.role().as_str(),
                ctx.claims_json()
            );
        }
        all.push(decisions);
    }
    all
}

fn sources(rows: &[Vec<Decision>], context: usize) -> Vec<Source> {
    rows.iter().map(|r| r[context].source).collect()
}

/// Context indexes in [`contexts`].
const ANON: usize = 0;
const ALICE_CTX: usize = 1;
const BOB_CTX: usize = 2;
const BAD_SUB: usize = 3;
const NO_SUB: usize = 4;
const SERVICE: usize = 5;
const EDITOR_CTX: usize = 6;
const GHOST: usize = 7;
const PLAIN: usize = 8;

#[tokio::test]
async fn compiled_policies_match_postgres() {
    let (_db, mut client) = setup().await;
    let decider = load(&client).await;
    for table in ["owned", "docs", "tenant_rows", "roles_only"] {
        let rows = differential(&mut client, &decider, table).await;
        for context in [ANON, ALICE_CTX, BOB_CTX, NO_SUB, EDITOR_CTX, GHOST] {
            assert!(
                sources(&rows, context)
                    .iter()
                    .all(|s| *s == Source::Compiled),
                "{table}: context {context} should be decided in-process: {:?}",
                sources(&rows, context)
            );
        }
        assert!(sources(&rows, SERVICE).iter().all(|s| *s == Source::Bypass));
        // Without auth.*() an allow is confirmed by SQL; denials stay in-process.
        for d in rows.iter().map(|r| r[PLAIN]) {
            assert!(d.source == Source::Sql || (d.source == Source::Compiled && !d.allowed));
        }
    }
    // Every policy of these tables compiled completely.
    for table in ["owned", "docs", "tenant_rows", "roles_only"] {
        let t = decider.table(relid(&client, table).await).expect("loaded");
        for policy in &t.policies {
            assert!(
                policy.fully_compiled(),
                "{table}.{}: {:?}",
                policy.name,
                policy.predicate
            );
        }
    }
}

#[tokio::test]
async fn a_sub_that_is_not_a_uuid_goes_to_sql_where_it_matters() {
    let (_db, mut client) = setup().await;
    let decider = load(&client).await;
    let rows = differential(&mut client, &decider, "owned").await;
    // auth.uid() raises for "user-1": never decided in-process, never visible.
    assert!(sources(&rows, BAD_SUB).iter().all(|s| *s == Source::Sql));
    assert!(rows.iter().all(|r| !r[BAD_SUB].allowed));
    // On docs, a false restrictive policy decides without SQL (row 4 is deleted).
    let rows = differential(&mut client, &decider, "docs").await;
    assert_eq!(rows[3][BAD_SUB].source, Source::Compiled);
}

#[tokio::test]
async fn unsupported_policies_fall_back_to_sql_then_cache() {
    let (_db, mut client) = setup().await;
    let decider = load(&client).await;
    let relid = relid(&client, "members_only").await;
    let table = decider.table(relid).expect("loaded");
    let reasons = table.policies[0].predicate.opaque_reasons();
    assert_eq!(reasons, vec!["EXISTS (subquery)"]);

    let first = differential(&mut client, &decider, "members_only").await;
    for context in [ANON, ALICE_CTX, BOB_CTX, NO_SUB, EDITOR_CTX] {
        assert!(sources(&first, context).iter().all(|s| *s == Source::Sql));
    }
    assert!(first[0][ALICE_CTX].allowed && !first[1][ALICE_CTX].allowed);
    assert!(
        !first[0][ANON].allowed,
        "anon's EXISTS raises permission denied"
    );
    assert_eq!(first[0][GHOST].source, Source::Compiled);
    assert!(decider.cache_len() > 0);

    // Same rows again: answered from the cache, still equal to PostgreSQL.
    let second = differential(&mut client, &decider, "members_only").await;
    for context in [ANON, ALICE_CTX, BOB_CTX, NO_SUB, EDITOR_CTX] {
        assert!(
            sources(&second, context)
                .iter()
                .all(|s| *s == Source::Cache)
        );
    }

    // A changed row is a new key: back to SQL.
    let mut row = decoded_rows(&client, "members_only").await.remove(0);
    row.insert("team".into(), json!("red"));
    row.insert("extra".into(), json!(1));
    let pk = pk_of(&row);
    let contexts = contexts();
    let change = RowChange {
        relid,
        pk: &pk,
        row: RowRef::plain(&row),
        xid: 0,
    };
    let d = decider
        .decide(&mut Conn::from(&client), &change, &[&contexts[ALICE_CTX]])
        .await
        .unwrap();
    assert_eq!(
        d[0],
        Decision {
            allowed: true,
            source: Source::Sql
        }
    );

    // A complete old image of a DELETE is judged by SQL like any version.
    let gone = json!({"id": 99, "team": "red"});
    let gone = gone.as_object().unwrap();
    let pk = pk_of(gone);
    let change = RowChange {
        relid,
        pk: &pk,
        row: RowRef::plain(gone),
        xid: 0,
    };
    let d = decider
        .decide(&mut Conn::from(&client), &change, &[&contexts[ALICE_CTX]])
        .await
        .unwrap();
    assert_eq!(
        d[0],
        Decision {
            allowed: true,
            source: Source::Sql
        }
    );
    // A key-only old image cannot be judged: undecided, primary key only.
    let gone = json!({"id": 99});
    let gone = gone.as_object().unwrap();
    let change = RowChange {
        relid,
        pk: &pk,
        row: RowRef::plain(gone),
        xid: 0,
    };
    let d = decider
        .decide(&mut Conn::from(&client), &change, &[&contexts[ALICE_CTX]])
        .await
        .unwrap();
    assert_eq!(
        d[0],
        Decision {
            allowed: false,
            source: Source::Undecided
        }
    );
}

#[tokio::test]
async fn rls_disabled_and_missing_grants() {
    let (_db, mut client) = setup().await;
    let decider = load(&client).await;
    let rows = differential(&mut client, &decider, "open_rows").await;
    for context in [ANON, ALICE_CTX, BAD_SUB, SERVICE, EDITOR_CTX] {
        assert_eq!(
            rows[0][context],
            Decision {
                allowed: true,
                source: Source::Bypass
            }
        );
    }
    assert_eq!(
        rows[0][GHOST],
        Decision {
            allowed: false,
            source: Source::Compiled
        }
    );

    let rows = differential(&mut client, &decider, "no_grant").await;
    assert_eq!(
        rows[0][ANON],
        Decision {
            allowed: false,
            source: Source::Compiled
        }
    );
    assert_eq!(
        rows[0][EDITOR_CTX],
        Decision {
            allowed: false,
            source: Source::Compiled
        }
    );
    assert_eq!(
        rows[0][ALICE_CTX],
        Decision {
            allowed: true,
            source: Source::Compiled
        }
    );
    assert_eq!(
        rows[0][SERVICE],
        Decision {
            allowed: true,
            source: Source::Bypass
        }
    );
}

#[tokio::test]
async fn reload_picks_up_policy_changes() {
    let (_db, mut client) = setup().await;
    let decider = load(&client).await;
    let before = differential(&mut client, &decider, "roles_only").await;
    assert!(!before[0][ANON].allowed);
    client
        .batch_execute(
            "CREATE POLICY anon_too ON roles_only FOR SELECT TO anon USING (id = 1);
             ALTER TABLE owned FORCE ROW LEVEL SECURITY;",
        )
        .await
        .unwrap();
    // Until reloaded the old generation is used (the hub reloads on DDL).
    decider.reload(&mut Conn::from(&client)).await.unwrap();
    assert_eq!(decider.cache_len(), 0);
    let after = differential(&mut client, &decider, "roles_only").await;
    assert!(after[0][ANON].allowed && !after[1][ANON].allowed);
    assert_eq!(after[0][ANON].source, Source::Compiled);
    differential(&mut client, &decider, "owned").await;
}

#[tokio::test]
async fn tables_are_loaded_lazily_by_oid() {
    let (_db, mut client) = setup().await;
    let decider = RlsDecider::load(&client, Vec::new(), &RlsConfig::default())
        .await
        .unwrap();
    let rows = differential(&mut client, &decider, "docs").await;
    assert!(
        sources(&rows, ALICE_CTX)
            .iter()
            .all(|s| *s == Source::Compiled)
    );
    assert!(decider.table(relid(&client, "docs").await).is_some());
}

#[tokio::test]
async fn owner_routing() {
    let (_db, client) = setup().await;
    let decider = load(&client).await;
    let route = decider
        .owner_route(relid(&client, "owned").await)
        .expect("owned is owner-only");
    assert_eq!(route.index.column(), "user_id");
    assert_eq!(route.roles, vec![Role::Anon, Role::Authenticated]);
    assert!(decider.owner_route(relid(&client, "docs").await).is_none());
    assert!(
        decider
            .owner_route(relid(&client, "open_rows").await)
            .is_none()
    );

    let contexts = contexts();
    let rows = decoded_rows(&client, "owned").await;
    let owner = route.index.row_owner(&rows[1]);
    assert!(matches!(owner, RowOwner::Owner(_)));
    // Bob's sub is upper case: still his row, as auth.uid() parses it.
    assert!(route.routes(&contexts[BOB_CTX]) && route.may_see(&contexts[BOB_CTX], owner));
    assert!(!route.may_see(&contexts[ALICE_CTX], owner));
    assert!(!route.routes(&contexts[SERVICE]) && !route.routes(&contexts[EDITOR_CTX]));
    assert_eq!(route.index.row_owner(&rows[2]), RowOwner::Nobody);
}

#[tokio::test]
async fn check_image_one_round_trip_and_locked_down() {
    let (_db, client) = setup().await;
    let contexts = contexts();
    let refs: Vec<&AuthContext> = contexts.iter().collect();
    let relid = relid(&client, "owned").await;
    let image = json!({"id": 1, "user_id": ALICE, "body": "alice"});
    let visible = rls::check_image(&client, relid, image.as_object().unwrap(), &[], 0, &refs)
        .await
        .unwrap();
    assert_eq!(
        visible,
        vec![false, true, false, false, false, true, true, false, false]
    );
    // The image decides, not the row: row 1 is Alice's, this version is Bob's.
    let bobs = json!({"id": 1, "user_id": BOB, "body": "alice"});
    let visible = rls::check_image(&client, relid, bobs.as_object().unwrap(), &[], 0, &refs)
        .await
        .unwrap();
    assert_eq!(
        visible,
        vec![false, false, true, false, false, true, false, false, false]
    );
    // Settings are restored for the caller.
    let row = client
        .query_one(
            "SELECT current_user::text, coalesce(current_setting('request.jwt.claims', true), '')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "");
    assert_ne!(row.get::<_, String>(0), "anon");
    // A value the column type rejects: nobody sees it (an error, never a guess).
    let bad = json!({"id": 1, "user_id": "not-a-uuid", "body": "x"});
    let visible = rls::check_image(&client, relid, bad.as_object().unwrap(), &[], 0, &refs)
        .await
        .unwrap();
    assert_eq!(visible, vec![false; refs.len()]);
    // API roles cannot call it, nor read rows through fetch_columns.
    for call in [
        "SELECT * FROM realtime.check_image('owned'::regclass, '{\"id\":1}', '{}', 0, '[]')",
        "SELECT * FROM realtime.fetch_columns('owned'::regclass, '{\"id\":1}', '{body}', 0)",
    ] {
        let err = client
            .batch_execute(&format!("BEGIN; SET LOCAL ROLE anon; {call};"))
            .await
            .expect_err("anon must not execute the fallback functions");
        assert!(
            err.to_string().contains("permission denied") || format!("{err:?}").contains("42501"),
            "{err:?}"
        );
        client.batch_execute("ROLLBACK").await.unwrap();
    }
}

/// One table, many policy shapes: each shape replaces the table's policies, the decider
/// reloads, and every row × context is compared with PostgreSQL.
const SHAPES_TABLE: &str = r#"
CREATE TABLE shapes (
  id int PRIMARY KEY, owner uuid, tenant text, status text, n int, big bigint,
  amount numeric, price real, flag boolean, name varchar, note text, deleted_at timestamptz
);
ALTER TABLE shapes ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON shapes TO anon, authenticated, service_role, rls_editor, rls_plain;
INSERT INTO shapes VALUES
  (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'acme', 'a', 1, -5, 10.50, 1.5, true, 'bob', 'apple', NULL),
  (2, 'b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22', 'globex', 'b', 3, 9999999999, 10.49, 1.6, false, 'a', 'Zebra', now()),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'initech', 'c', 7, 0, 100, 0.1, NULL, 'carol', 'm', NULL),
  (5, 'b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22', 'acme', 'it''s', 9, 1, 99.999, -1, false, 'bob', 'mango', now()),
  (6, NULL, 'acme', 'a', 4, 2, 1e2, 2, true, 'x', '', NULL);
"#;

const SHAPES: &[&[&str]] = &[
    &["owner = auth.uid()"],
    &["(SELECT auth.uid()) = owner"],
    &["owner::text = auth.jwt() ->> 'sub'"],
    &["tenant = auth.jwt() ->> 'tenant'"],
    &["tenant = auth.jwt() -> 'app_metadata' ->> 'tenant'"],
    &["status IN ('a', 'b')"],
    &["status NOT IN ('a', 'b')"],
    &["deleted_at IS NULL"],
    &["deleted_at IS NOT NULL AND flag"],
    &["flag OR owner = auth.uid()"],
    &["NOT flag"],
    &["flag IS NOT TRUE"],
    &["n > 2 AND n <= 7"],
    &["n IS DISTINCT FROM 3"],
    &["amount >= 10.5"],
    &["amount < 1e2"],
    &["price > 1.5"],
    &["price <= 0.1"],
    &["big <> -5"],
    &["big = 9999999999"],
    &["n = (auth.jwt() ->> 'level')::int"],
    &["n::numeric > 1.5"],
    &["name = 'bob'"],
    &["name IN ('a', 'bob')"],
    &["note < 'm'"],
    &["note >= 'Zebra' AND note <> ''"],
    &["auth.role() = 'authenticated' AND status = 'a'"],
    &["(auth.jwt() ->> 'is_admin')::boolean"],
    &["coalesce((auth.jwt() -> 'is_admin')::boolean, false)"],
    &["true"],
    &["false"],
    &["owner = ANY (ARRAY[auth.uid()])"],
    &["n = 1 OR n = 2 AND status = 'a'"],
    &["auth.uid() IS NULL"],
    &["status = 'it''s'"],
    &["flag", "AS RESTRICTIVE FOR SELECT USING (n < 5)"],
    &["owner = auth.uid()", "TO anon USING (status = 'a')"],
    &[
        "tenant = auth.jwt() ->> 'tenant'",
        "AS RESTRICTIVE FOR SELECT TO authenticated USING (deleted_at IS NULL)",
    ],
    &[
        "EXISTS (SELECT 1 FROM owned o WHERE o.id = shapes.n)",
        "AS RESTRICTIVE FOR SELECT USING (flag)",
    ],
];

#[tokio::test]
async fn policy_shapes_match_postgres() {
    let (_db, mut client) = setup().await;
    client
        .batch_execute(SHAPES_TABLE)
        .await
        .expect("shapes table");
    let decider = RlsDecider::load(
        &client,
        vec![RelationRef::Name {
            schema: "public".into(),
            table: "shapes".into(),
        }],
        &RlsConfig::default(),
    )
    .await
    .unwrap();
    let relid = relid(&client, "shapes").await;
    let mut fully_compiled = 0;
    for shape in SHAPES {
        client
            .batch_execute(
                "DO $$ DECLARE p name; BEGIN
                   FOR p IN SELECT polname FROM pg_policy WHERE polrelid = 'shapes'::regclass LOOP
                     EXECUTE format('DROP POLICY %I ON shapes', p);
                   END LOOP;
                 END $$;",
            )
            .await
            .unwrap();
        for (i, policy) in shape.iter().enumerate() {
            // A bare expression is a permissive SELECT policy; otherwise the clauses after
            // the table name are given.
            let clauses = if policy.contains("USING") {
                policy.to_string()
            } else {
                format!("FOR SELECT USING ({policy})")
            };
            client
                .batch_execute(&format!("CREATE POLICY shape_{i} ON shapes {clauses}"))
                .await
                .unwrap_or_else(|e| panic!("{clauses}: {e}"));
        }
        decider.reload(&mut Conn::from(&client)).await.unwrap();
        let table = decider.table(relid).unwrap();
        let compiled = table.policies.iter().all(|p| p.fully_compiled());
        fully_compiled += usize::from(compiled);
        let rows = differential(&mut client, &decider, "shapes").await;
        if compiled {
            for context in [ANON, ALICE_CTX, NO_SUB, EDITOR_CTX, SERVICE, GHOST] {
                assert!(
                    !sources(&rows, context).contains(&Source::Sql),
                    "{shape:?}: context {context} went to SQL: {:?}",
                    sources(&rows, context)
                );
            }
        }
    }
    // Only the COALESCE and EXISTS shapes are outside the subset.
    assert_eq!(fully_compiled, SHAPES.len() - 2);
}

#[tokio::test]
async fn a_server_role_that_cannot_assume_a_role_denies_it() {
    let (db, admin) = setup().await;
    // A non-superuser server login: member of the API roles, not of rls_editor.
    admin
        .batch_execute(
            "DO $$ BEGIN
               CREATE ROLE rls_server LOGIN PASSWORD 'rls-server-pw';
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;
             GRANT anon, authenticated, service_role TO rls_server;
             GRANT EXECUTE ON FUNCTION realtime.check_image(oid, jsonb, text[], bigint, jsonb),
                                        realtime.wait_visible(bigint, interval),
                                        realtime.image_source(oid) TO rls_server;",
        )
        .await
        .unwrap();
    let mut config = db.config();
    config.user("rls_server").password("rls-server-pw");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect as rls_server");
    tokio::spawn(connection);
    let decider = load(&client).await;
    let relid = relid(&client, "owned").await;
    let row = decoded_rows(&admin, "owned").await.remove(0);
    let pk = pk_of(&row);
    let change = RowChange {
        relid,
        pk: &pk,
        row: RowRef::plain(&row),
        xid: 0,
    };
    let contexts = contexts();
    let picked = [&contexts[ALICE_CTX], &contexts[EDITOR_CTX]];
    let d = decider
        .decide(&mut Conn::from(&client), &change, &picked)
        .await
        .unwrap();
    assert_eq!(
        d[0],
        Decision {
            allowed: true,
            source: Source::Compiled
        }
    );
    assert_eq!(
        d[1],
        Decision {
            allowed: false,
            source: Source::Compiled
        }
    );
    let sql = rls::check_image(&client, relid, &row, &[], 0, &picked)
        .await
        .unwrap();
    assert_eq!(sql, vec![true, false]);
}
