//! Every supported type round-trips through insert, update, delete and truncate.

use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::Op;
use serde_json::{Value, json};

use crate::support::{finish, next, stream};

pub const SCHEMA: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
    CREATE TABLE everything (
        id int8 PRIMARY KEY,
        i2 int2, i4 int4, n numeric, f8 float8, b bool, t text, vc varchar(20), bc char(3),
        u uuid, j json, jb jsonb, ts timestamp, tstz timestamptz, d date, tm time, by bytea,
        a_i4 int4[], a_t text[], a_jb jsonb[], a_n numeric[], a_u uuid[], a_2d int4[][],
        m mood, a_m mood[], p posint
    );";

pub const INSERT: &str = "
    INSERT INTO everything VALUES (
        1, -32768, 2147483647, 123456789012345678901234567890.000000001, 1.5, true,
        'héllo — 世界 🚀 \"quoted\" \\ back', 'varchar', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '{\"k\": [1, 2]}', '{\"k\": {\"n\": null}}', '2024-01-02 03:04:05.123456',
        '2024-01-02 03:04:05.5+02', '2024-02-29', '23:59:59', '\\x00ff10',
        '{1,NULL,3}', '{\"a,b\",\"c\\\"d\",NULL,\"NULL\",é}', ARRAY['{\"x\": 1}'::jsonb, NULL],
        '{1.10,NaN}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{{1,2},{3,4}}',
        'happy', '{sad,happy}', 7
    ), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

pub fn expected_row_1() -> Value {
    json!({
        "id": 1, "i2": -32768, "i4": 2147483647, "n": "123456789012345678901234567890.000000001",
        "f8": 1.5, "b": true, "t": "héllo — 世界 🚀 \"quoted\" \\ back", "vc": "varchar", "bc": "ab ",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": {"k": [1, 2]}, "jb": {"k": {"n": null}},
        "ts": "2024-01-02T03:04:05.123456", "tstz": "2024-01-02T01:04:05.5+00:00", "d": "2024-02-29",
        "tm": "23:59:59", "by": "\\x00ff10", "a_i4": [1, null, 3], "a_t": ["a,b", "c\"d", null, "NULL", "é"],
        "a_jb": [{"x": 1}, null], "a_n": ["1.10", "NaN"], "a_u": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
        "a_2d": [[1, 2], [3, 4]], "m": "happy", "a_m": ["sad", "happy"], "p": 7
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    let slot = "types_round_trip";
    let (handle, mut rx) = stream(&db, slot).await;

    client.batch_execute(INSERT).await.unwrap();
    let tx = next(&handle, &mut rx).await;
    assert_eq!(tx.changes.len(), 2);
    let c = &tx.changes[0];
    assert_eq!(
        (c.op, &*c.schema, &*c.table),
        (Op::Insert, "public", "everything")
    );
    assert_eq!(Value::Object(c.record.clone().unwrap()), expected_row_1());
    assert_eq!(
        Value::Object(c.primary_key.clone().unwrap()),
        json!({"id": 1})
    );
    let types: Vec<(&str, &str)> = c
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str()))
        .collect();
    assert_eq!(
        &types[..3],
        &[("id", "int8"), ("i2", "int2"), ("i4", "int4")]
    );
    assert!(
        types.contains(&("m", "mood"))
            && types.contains(&("a_m", "_mood"))
            && types.contains(&("p", "posint"))
    );
    assert!(types.contains(&("tstz", "timestamptz")) && types.contains(&("a_jb", "_jsonb")));

    // Every column of row 2 is NULL.
    let nulls = tx.changes[1].record.clone().unwrap();
    assert_eq!(nulls.len(), 26);
    assert!(nulls.iter().all(|(k, v)| k == "id" || v.is_null()));

    // Default replica identity: update without key change sends no old row; delete sends the key.
    client
        .batch_execute("UPDATE everything SET t = 'ñ', a_i4 = '{}' WHERE id = 1")
        .await
        .unwrap();
    let upd = &next(&handle, &mut rx).await.changes[0];
    assert_eq!(upd.op, Op::Update);
    assert_eq!(upd.record.as_ref().unwrap()["t"], json!("ñ"));
    assert_eq!(upd.record.as_ref().unwrap()["a_i4"], json!([]));
    assert!(upd.old_record.is_none());
    client
        .batch_execute("UPDATE everything SET id = 3 WHERE id = 2")
        .await
        .unwrap();
    let upd = &next(&handle, &mut rx).await.changes[0];
    assert_eq!(
        Value::Object(upd.old_record.clone().unwrap()),
        json!({"id": 2})
    );
    assert_eq!(
        Value::Object(upd.primary_key.clone().unwrap()),
        json!({"id": 3})
    );
    client
        .batch_execute("DELETE FROM everything WHERE id = 3")
        .await
        .unwrap();
    let del = &next(&handle, &mut rx).await.changes[0];
    assert_eq!(del.op, Op::Delete);
    assert_eq!(
        Value::Object(del.old_record.clone().unwrap()),
        json!({"id": 3})
    );
    assert!(del.record.is_none());

    // REPLICA IDENTITY FULL: the whole old row, typed.
    client
        .batch_execute("ALTER TABLE everything REPLICA IDENTITY FULL")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE everything SET i2 = 5 WHERE id = 1")
        .await
        .unwrap();
    let upd = &next(&handle, &mut rx).await.changes[0];
    let old = upd.old_record.clone().unwrap();
    assert_eq!(old["i2"], json!(-32768));
    assert_eq!(old["t"], json!("ñ"));
    assert_eq!(old["a_m"], json!(["sad", "happy"]));
    assert_eq!(upd.record.as_ref().unwrap()["i2"], json!(5));
    assert_eq!(
        Value::Object(upd.primary_key.clone().unwrap()),
        json!({"id": 1}),
        "real primary key, not all columns"
    );
    client
        .batch_execute("DELETE FROM everything WHERE id = 1")
        .await
        .unwrap();
    let del = &next(&handle, &mut rx).await.changes[0];
    assert_eq!(
        del.old_record.as_ref().unwrap()["jb"],
        json!({"k": {"n": null}})
    );
    assert_eq!(del.old_record.as_ref().unwrap()["i2"], json!(5));

    // Truncate: one change per table.
    client
        .batch_execute(&format!(
            // Tables are published one by one: add the new one as the engine does on subscribe.
            "CREATE TABLE other (id int PRIMARY KEY); ALTER PUBLICATION pub_{slot} ADD TABLE other; \
             INSERT INTO everything (id) VALUES (9)"
        ))
        .await
        .unwrap();
    let _ = next(&handle, &mut rx).await;
    client
        .batch_execute("TRUNCATE everything, other")
        .await
        .unwrap();
    let tr = next(&handle, &mut rx).await;
    let tables: Vec<(Op, &str)> = tr.changes.iter().map(|c| (c.op, &*c.table)).collect();
    assert_eq!(tables.len(), 2);
    assert!(
        tables.contains(&(Op::Truncate, "everything")) && tables.contains(&(Op::Truncate, "other"))
    );

    finish(&db, handle, slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_toasted_value_is_marked_unchanged_not_invented() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text)")
        .await
        .unwrap();
    let slot = "types_toast";
    let (handle, mut rx) = stream(&db, slot).await;

    // ~1.3 MB of poorly compressible text: stored out of line (TOASTed).
    client
        .batch_execute(
            "INSERT INTO docs SELECT 1, 'first', string_agg(md5(g::text), '') FROM generate_series(1, 40000) g",
        )
        .await
        .unwrap();
    let body: String = client
        .query_one("SELECT body FROM docs", &[])
        .await
        .unwrap()
        .get(0);
    assert!(body.len() > 1_000_000);
    let ins = next(&handle, &mut rx).await;
    assert_eq!(ins.changes[0].record.as_ref().unwrap()["body"], json!(body));

    client
        .batch_execute("UPDATE docs SET title = 'second'")
        .await
        .unwrap();
    let upd = next(&handle, &mut rx).await;
    let upd = &upd.changes[0];
    assert_eq!(upd.unchanged_toast, vec!["body".to_owned()]);
    let record = upd.record.as_ref().unwrap();
    assert_eq!(record["title"], json!("second"));
    assert!(
        !record.contains_key("body"),
        "unchanged value must not be invented"
    );

    // Changing the big value sends it in full.
    client
        .batch_execute("UPDATE docs SET body = body || 'x'")
        .await
        .unwrap();
    let upd = next(&handle, &mut rx).await;
    assert_eq!(
        upd.changes[0].record.as_ref().unwrap()["body"]
            .as_str()
            .map(str::len),
        Some(body.len() + 1)
    );
    assert!(upd.changes[0].unchanged_toast.is_empty());

    finish(&db, handle, slot).await;
}
