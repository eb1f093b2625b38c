//! RLS decisions on the row version an event carries: JSON `null` literals, the SQL
//! fallback over the image (waiting for the event's transaction to be visible), unchanged
//! TOAST values, and fan-out while the main pool is exhausted.

use std::sync::Arc;
use std::time::Duration;

use fluxbase_auth::AuthContext;
use fluxbase_engine::realtime::RealtimeSettings;
use fluxbase_engine::realtime::rls::image::complete;
use fluxbase_engine::realtime::rls::{
    self, Conn, RelationRef, RlsConfig, RlsDecider, RowChange, RowRef, Source,
};

use crate::hub;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::{Change, Column, Lsn, Op, Timestamp, Transaction};
use serde_json::{Map, Value, json};
use tokio_postgres::Client;

const ALICE: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

fn ctx(claims: Value) -> AuthContext {
    AuthContext::from_claims(claims.as_object().expect("claims").clone())
}

fn alice() -> AuthContext {
    ctx(json!({"sub": ALICE, "role": "authenticated"}))
}

async fn relid(client: &Client, table: &str) -> u32 {
    client
        .query_one("SELECT $1::text::regclass::oid", &[&table])
        .await
        .unwrap()
        .get(0)
}

/// PostgreSQL's answer: can `ctx` SELECT row `id` of `table`?
async fn pg_visible(client: &mut Client, table: &str, id: i32, ctx: &AuthContext) -> bool {
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        &[&ctx.claims_json()],
    )
    .await
    .unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {}", ctx.role().as_str()))
        .await
        .unwrap();
    let seen = tx
        .query(&format!("SELECT 1 FROM {table} WHERE id = $1"), &[&id])
        .await
        .map(|rows| !rows.is_empty())
        .unwrap_or(false);
    tx.rollback().await.unwrap();
    seen
}

#[tokio::test]
async fn json_null_literals_are_not_sql_null_for_policies() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE jn (id int PRIMARY KEY, meta jsonb, note json);
             ALTER TABLE jn ENABLE ROW LEVEL SECURITY;
             GRANT SELECT ON jn TO authenticated;
             INSERT INTO jn VALUES (1, 'null', 'null'), (2, NULL, NULL), (3, '{}', '[]');",
        )
        .await
        .unwrap();
    // As the stream decodes them: both nulls are JSON null; the literal is listed.
    let rows: Vec<(i32, Map<String, Value>, Vec<String>)> = vec![
        (
            1,
            json!({"id": 1, "meta": null, "note": null})
                .as_object()
                .unwrap()
                .clone(),
            vec!["meta".into(), "note".into()],
        ),
        (
            2,
            json!({"id": 2, "meta": null, "note": null})
                .as_object()
                .unwrap()
                .clone(),
            vec![],
        ),
        (
            3,
            json!({"id": 3, "meta": {}, "note": []})
                .as_object()
                .unwrap()
                .clone(),
            vec![],
        ),
    ];
    let relid = relid(&client, "jn").await;
    let shapes = [
        ("meta IS NULL", Source::Compiled),
        ("meta IS NOT NULL", Source::Compiled),
        ("note IS NULL", Source::Compiled),
        ("coalesce(meta IS NULL, false)", Source::Sql),
        ("coalesce(note::text, 'x') = 'null'", Source::Sql),
    ];
    let decider = RlsDecider::load(
        &client,
        vec![RelationRef::Oid(relid)],
        &RlsConfig {
            cache_size: 100,
            cache_ttl: Duration::ZERO,
        },
    )
    .await
    .unwrap();
    let alice = alice();
    for (policy, source) in shapes {
        client
            .batch_execute(&format!(
                "DROP POLICY IF EXISTS p ON jn; CREATE POLICY p ON jn FOR SELECT USING ({policy});"
            ))
            .await
            .unwrap();
        decider.reload(&mut Conn::from(&client)).await.unwrap();
        for (id, values, json_nulls) in &rows {
            let pk = json!({"id": id}).as_object().unwrap().clone();
            let change = RowChange {
                relid,
                pk: &pk,
                row: RowRef { values, json_nulls },
                xid: 0,
            };
            let d = decider
                .decide(&mut Conn::from(&client), &change, &[&alice])
                .await
                .unwrap()[0];
            let expected = pg_visible(&mut client, "jn", *id, &alice).await;
            assert_eq!(
                d.allowed, expected,
                "{policy} on row {id}: engine {d:?}, PostgreSQL {expected}"
            );
            assert_eq!(d.source, source, "{policy} on row {id}");
        }
    }
}

#[tokio::test]
async fn the_fallback_judges_the_image_and_waits_for_its_transaction() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    admin
        .batch_execute(
            "CREATE TABLE members (team text, user_id uuid);
             CREATE TABLE team_docs (id int PRIMARY KEY, team text, label text);
             ALTER TABLE team_docs ENABLE ROW LEVEL SECURITY;
             CREATE POLICY member ON team_docs FOR SELECT USING (
               EXISTS (SELECT 1 FROM members m WHERE m.team = team_docs.team AND m.user_id = auth.uid()));
             GRANT SELECT ON members, team_docs TO authenticated;",
        )
        .await
        .unwrap();
    let relid = relid(&admin, "team_docs").await;
    let alice_ctx = alice();

    // A writer adds Alice to team blue and a blue document, and has not committed yet.
    let mut writer = db.client().await;
    let tx = writer.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "INSERT INTO members VALUES ('blue', '{ALICE}');
         INSERT INTO team_docs VALUES (1, 'blue', 'x');"
    ))
    .await
    .unwrap();
    let xid: i64 = tx
        .query_one(
            "SELECT (pg_current_xact_id()::text::bigint % 4294967296)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The engine got the commit from the stream before the writer's commit became
    // visible (logical decoding may send it first): the check must wait for it.
    let checker = db.client().await;
    let pid: i32 = checker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let image = json!({"id": 1, "team": "blue", "label": "x"});
    let check = tokio::spawn(async move {
        rls::check_image(
            &checker,
            relid,
            image.as_object().unwrap(),
            &[],
            xid as u32,
            &[&alice()],
        )
        .await
        .unwrap()
    });
    // Until the writer commits, the check is waiting (sleeping in wait_visible).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: bool = admin
            .query_one(
                "SELECT coalesce(bool_or(wait_event = 'PgSleep'), false) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the check never waited"
        );
        tokio::task::yield_now().await;
    }
    assert!(!check.is_finished());
    tx.commit().await.unwrap();
    assert_eq!(
        check.await.unwrap(),
        vec![true],
        "member of blue after commit"
    );

    // The image decides, not the row: the same row as a red version is not Alice's.
    let red = json!({"id": 1, "team": "red", "label": "x"});
    let visible = rls::check_image(
        &admin,
        relid,
        red.as_object().unwrap(),
        &[],
        0,
        &[&alice_ctx],
    )
    .await
    .unwrap();
    assert_eq!(visible, vec![false]);
    drop(writer);
}

fn change(op: Op, relid: u32, id: i64, record: Value, unchanged: &[&str]) -> Change {
    Change {
        op,
        schema: "public".into(),
        table: "toasty".into(),
        relation_id: relid,
        columns: Arc::from(vec![Column {
            name: "id".into(),
            type_name: "int8".into(),
        }]),
        record: Some(record.as_object().unwrap().clone()),
        old_record: None,
        primary_key: Some(json!({"id": id}).as_object().unwrap().clone()),
        unchanged_toast: unchanged.iter().map(|s| s.to_string()).collect(),
        json_nulls: Vec::new(),
        old_json_nulls: Vec::new(),
        message: None,
    }
}

fn transaction(xid: u32, changes: Vec<Change>) -> Transaction {
    Transaction {
        xid,
        begin_lsn: Lsn(1),
        commit_lsn: Lsn(2),
        end_lsn: Lsn(3),
        commit_timestamp: Timestamp(0),
        changes,
    }
}

#[tokio::test]
async fn unchanged_toast_values_are_recovered_exactly_or_marked_racy() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE toasty (id int8 PRIMARY KEY, note text, big text, meta jsonb);
             INSERT INTO toasty SELECT 1, 'a', string_agg(md5(g::text), ''), 'null'
             FROM generate_series(1, 400) g;",
        )
        .await
        .unwrap();
    let relid = relid(&client, "toasty").await;
    let big: String = client
        .query_one("SELECT big FROM toasty WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    let xmin: i64 = client
        .query_one("SELECT xmin::text::bigint FROM toasty WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    let pool = rls::fallback_pool(db.config(), 1);
    let needed = vec!["big".to_string(), "meta".to_string()];

    // 1. Carried forward from the INSERT of the same transaction: no database read.
    let tx = transaction(
        7,
        vec![
            change(
                Op::Insert,
                relid,
                1,
                json!({"id": 1, "note": "a", "big": "B", "meta": {"k": 1}}),
                &[],
            ),
            change(
                Op::Update,
                relid,
                1,
                json!({"id": 1, "note": "b"}),
                &["big", "meta"],
            ),
        ],
    );
    let mut conn = Conn::pool(&pool);
    let done = complete(&mut conn, &tx, &tx.changes[1], &needed).await;
    assert!(!conn.used(), "carried forward without a connection");
    assert_eq!(done.values["big"], "B");
    assert_eq!(done.values["meta"], json!({"k": 1}));

    // 2. Read from the row written by this very transaction: exact (JSON null kept).
    let tx = transaction(
        xmin as u32,
        vec![change(
            Op::Update,
            relid,
            1,
            json!({"id": 1, "note": "a"}),
            &["big", "meta"],
        )],
    );
    let done = complete(&mut Conn::pool(&pool), &tx, &tx.changes[0], &needed).await;
    assert_eq!(done.values["big"], Value::String(big.clone()));
    assert_eq!(done.values["meta"], Value::Null);
    assert_eq!(done.json_nulls, vec!["meta".to_string()]);
    assert!(done.racy.is_empty());

    // 3. The row was written again since (another xmin): for filters only.
    let tx = transaction(
        xmin as u32 + 1000,
        vec![change(
            Op::Update,
            relid,
            1,
            json!({"id": 1, "note": "a"}),
            &["big", "meta"],
        )],
    );
    let done = complete(&mut Conn::pool(&pool), &tx, &tx.changes[0], &needed).await;
    assert!(!done.values.contains_key("big"));
    assert_eq!(done.racy["big"], Value::String(big));
    let (filter_values, filter_nulls) = done.for_filters();
    assert!(filter_values.contains_key("big") && filter_nulls == vec!["meta".to_string()]);

    // 4. The row is gone: nothing recovered.
    let tx = transaction(
        xmin as u32,
        vec![change(
            Op::Update,
            relid,
            2,
            json!({"id": 2, "note": "a"}),
            &["big"],
        )],
    );
    let done = complete(&mut Conn::pool(&pool), &tx, &tx.changes[0], &needed).await;
    assert!(!done.values.contains_key("big") && done.racy.is_empty());
}

#[actix::test]
async fn fan_out_never_waits_for_the_main_pool() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE owned (id bigserial PRIMARY KEY, user_id uuid, body text);
             ALTER TABLE owned ENABLE ROW LEVEL SECURITY;
             CREATE POLICY mine ON owned FOR SELECT USING (user_id = auth.uid());
             GRANT SELECT ON owned TO authenticated;",
        )
        .await
        .unwrap();
    let main_pool = rls::fallback_pool(db.config(), 2);
    let test = hub::TestEngine::new(&db, main_pool.clone(), RealtimeSettings::default()).await;
    test.start(&db).await;
    let engine = test.engine.clone();
    let (conn, mut rx) = hub::connect(&engine, alice());
    hub::subscribe(&engine, &conn, "owned").await;

    // Every connection of the main pool is checked out (REST traffic drained it).
    let held = [
        main_pool.get().await.unwrap(),
        main_pool.get().await.unwrap(),
    ];
    assert_eq!(main_pool.status().available, 0);
    client
        .execute(
            "INSERT INTO owned (user_id, body) VALUES ($1::text::uuid, 'mine')",
            &[&ALICE],
        )
        .await
        .unwrap();
    let frame = hub::next_change(&mut rx).await;
    assert_eq!(frame["payload"]["record"]["body"], "mine", "{frame}");
    drop(held);
    let slot = test.slot.clone();
    test.stop().await;
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .ok();
}
