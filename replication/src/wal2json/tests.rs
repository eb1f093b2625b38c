//! Decoder tests on wal2json messages as the server writes them (format version 2, the
//! options of [`super::start_options`]), and property tests feeding it garbage.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Decoder, TableInfo, Wal2JsonMessage};
use crate::config::ReplicationConfig;
use crate::error::DecodeError;
use crate::lsn::Lsn;
use crate::pgoutput;
use crate::pgoutput::message::{RelationBody, RelationColumn};
use crate::transaction::Op;

/// `public.items` as the catalog describes it: `id int4` primary key, `body text`,
/// `tags text[]`, and a generated `twice int4` that pgoutput does not send.
fn items(published: bool) -> TableInfo {
    let column = |name: &str, type_oid, is_key| RelationColumn {
        is_key,
        name: name.to_owned(),
        type_oid,
        type_modifier: -1,
    };
    TableInfo {
        body: RelationBody {
            id: 7,
            schema: "public".into(),
            table: "items".into(),
            replica_identity: b'd',
            columns: vec![
                column("id", 23, true),
                column("body", 25, false),
                column("tags", 1009, false),
            ],
        },
        primary_key: vec!["id".into()],
        wire: vec![
            ("id".into(), 23),
            ("body".into(), 25),
            ("tags".into(), 1009),
            ("twice".into(), 23),
        ],
        index_key: vec!["id".into()],
        published,
    }
}

fn decoder_with_items(published: bool) -> Decoder {
    let mut d = Decoder::new();
    d.insert_table("public", "items", Some(items(published)), Instant::now());
    d
}

/// The same transaction as the pgoutput decoder's `sample_stream`, as wal2json writes it.
fn sample_stream() -> Vec<&'static str> {
    vec![
        r#"{"action":"B","xid":42,"timestamp":"2000-01-01 00:00:01+00","lsn":"0/C0","nextlsn":"0/C8"}"#,
        r#"{"action":"I","xid":42,"lsn":"0/10","schema":"public","table":"items","columns":[{"name":"id","typeoid":23,"value":1},{"name":"body","typeoid":25,"value":"h\u00e9llo"},{"name":"tags","typeoid":1009,"value":"{a,b}"},{"name":"twice","typeoid":23,"value":2}],"pk":[{"name":"id","typeoid":23}]}"#,
        r#"{"action":"U","xid":42,"lsn":"0/20","schema":"public","table":"items","columns":[{"name":"id","typeoid":23,"value":1},{"name":"tags","typeoid":1009,"value":null},{"name":"twice","typeoid":23,"value":2}],"identity":[{"name":"id","typeoid":23,"value":1}],"pk":[{"name":"id","typeoid":23}]}"#,
        r#"{"action":"U","xid":42,"lsn":"0/30","schema":"public","table":"items","columns":[{"name":"id","typeoid":23,"value":1},{"name":"tags","typeoid":1009,"value":null},{"name":"twice","typeoid":23,"value":2}],"identity":[{"name":"id","typeoid":23,"value":1},{"name":"body","typeoid":25,"value":"old"},{"name":"tags","typeoid":1009,"value":null},{"name":"twice","typeoid":23,"value":2}],"pk":[{"name":"id","typeoid":23}]}"#,
        r#"{"action":"D","xid":42,"lsn":"0/40","schema":"public","table":"items","identity":[{"name":"id","typeoid":23,"value":1}],"pk":[{"name":"id","typeoid":23}]}"#,
        r#"{"action":"C","xid":42,"timestamp":"2000-01-01 00:00:01+00","lsn":"0/C0","nextlsn":"0/C8"}"#,
    ]
}

/// Feeds messages with WAL starts 1, 2, …; returns the completed transactions.
fn run(d: &mut Decoder, messages: &[&str]) -> Vec<crate::Transaction> {
    messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| d.decode(Lsn(i as u64 + 1), m.as_bytes()).unwrap())
        .collect()
}

/// pgoutput bytes of the same transaction (see `pgoutput::tests::sample_stream`).
fn pgoutput_transaction() -> crate::Transaction {
    fn cstr(b: &mut BytesMut, s: &str) {
        b.put_slice(s.as_bytes());
        b.put_u8(0);
    }
    fn tuple(b: &mut BytesMut, values: &[Option<Option<&str>>]) {
        b.put_i16(values.len() as i16);
        for v in values {
            match v {
                None => b.put_u8(b'n'),
                Some(None) => b.put_u8(b'u'),
                Some(Some(text)) => {
                    b.put_u8(b't');
                    b.put_i32(text.len() as i32);
                    b.put_slice(text.as_bytes());
                }
            }
        }
    }
    let mut relation = BytesMut::new();
    relation.put_u8(b'R');
    relation.put_u32(7);
    cstr(&mut relation, "public");
    cstr(&mut relation, "items");
    relation.put_u8(b'd');
    relation.put_i16(3);
    for (name, oid, key) in [("id", 23, 1), ("body", 25, 0), ("tags", 1009, 0)] {
        relation.put_u8(key);
        cstr(&mut relation, name);
        relation.put_u32(oid);
        relation.put_i32(-1);
    }
    let mut begin = BytesMut::new();
    begin.put_u8(b'B');
    begin.put_u64(0xC0);
    begin.put_i64(1_000_000);
    begin.put_u32(42);
    let row = |tag: u8,
               old: Option<(u8, &[Option<Option<&str>>])>,
               new: Option<&[Option<Option<&str>>]>| {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_u32(7);
        if let Some((t, values)) = old {
            b.put_u8(t);
            tuple(&mut b, values);
        }
        if let Some(values) = new {
            b.put_u8(b'N');
            tuple(&mut b, values);
        }
        b.freeze()
    };
    let mut commit = BytesMut::new();
    commit.put_u8(b'C');
    commit.put_u8(0);
    commit.put_u64(0xC0);
    commit.put_u64(0xC8);
    commit.put_i64(1_000_000);
    let new = [Some(Some("1")), Some(None), None];
    let messages: Vec<Bytes> = vec![
        begin.freeze(),
        row(
            b'I',
            None,
            Some(&[Some(Some("1")), Some(Some("héllo")), Some(Some("{a,b}"))]),
        ),
        row(b'U', None, Some(&new)),
        row(
            b'U',
            Some((b'O', &[Some(Some("1")), Some(Some("old")), None])),
            Some(&new),
        ),
        row(b'D', Some((b'K', &[Some(Some("1")), None, None])), None),
        commit.freeze(),
    ];
    let mut d = pgoutput::Decoder::new();
    d.decode(Lsn(0), relation.freeze()).unwrap();
    messages
        .into_iter()
        .enumerate()
        .find_map(|(i, m)| d.decode(Lsn(i as u64 + 1), m).unwrap())
        .unwrap()
}

#[test]
fn gives_the_same_transaction_as_pgoutput() {
    let mut d = decoder_with_items(true);
    let txs = run(&mut d, &sample_stream());
    assert_eq!(txs.len(), 1);
    let ours = serde_json::to_value(&txs[0]).unwrap();
    let theirs = serde_json::to_value(pgoutput_transaction()).unwrap();
    assert_eq!(ours, theirs);
    // The parts that matter, spelled out.
    assert_eq!(ours["xid"], json!(42));
    assert_eq!(ours["end_lsn"], json!("0/C8"));
    assert_eq!(
        ours["commit_timestamp"],
        json!("2000-01-01T00:00:01.000000Z")
    );
    let changes = ours["changes"].as_array().unwrap();
    assert_eq!(
        changes[0]["record"],
        json!({"id": 1, "body": "héllo", "tags": ["a", "b"]})
    );
    assert_eq!(changes[1]["unchanged_toast"], json!(["body"]));
    assert_eq!(
        changes[1]["old_record"],
        Value::Null,
        "key unchanged: no old key"
    );
    assert_eq!(changes[2]["record"]["body"], json!("old"));
    assert_eq!(changes[3]["old_record"], json!({"id": 1}));
    assert_eq!(changes[3]["primary_key"], json!({"id": 1}));
}

#[test]
fn converts_values_like_pgoutput() {
    // Values as captured from wal2json 2.5 on PostgreSQL 15.
    let message = r#"{"action":"I","schema":"public","table":"v","columns":[
        {"name":"n","typeoid":1700,"value":123456789012345678901234567890.000000001},
        {"name":"i8","typeoid":20,"value":9223372036854775807},
        {"name":"f","typeoid":701,"value":1.5e-07},
        {"name":"nan","typeoid":701,"value":null},
        {"name":"b","typeoid":16,"value":true},
        {"name":"j","typeoid":3802,"value":"{\"k\": {\"n\": null}}"},
        {"name":"by","typeoid":17,"value":"00ff10"},
        {"name":"aby","typeoid":1001,"value":"{\"\\\\x0102\",NULL}"},
        {"name":"tz","typeoid":1184,"value":"2024-01-02 01:04:05.5+00"},
        {"name":"a","typeoid":1009,"value":"{\"a,b\",\"c\\\"d\",NULL,\"NULL\",\u00e9}"},
        {"name":"o","typeoid":26,"value":4294967295}
    ],"pk":[]}"#;
    let mut d = Decoder::new();
    let tx = run(
        &mut d,
        &[
            r#"{"action":"B","xid":1}"#,
            message,
            r#"{"action":"C","timestamp":"2000-01-01 00:00:00+00","lsn":"0/1","nextlsn":"0/2"}"#,
        ],
    );
    let record = Value::Object(tx[0].changes[0].record.clone().unwrap());
    assert_eq!(
        record,
        json!({
            "n": "123456789012345678901234567890.000000001", "i8": 9223372036854775807i64,
            "f": 1.5e-7, "nan": null, "b": true, "j": {"k": {"n": null}}, "by": "\\x00ff10",
            "aby": ["\\x0102", null], "tz": "2024-01-02T01:04:05.5+00:00",
            "a": ["a,b", "c\"d", null, "NULL", "é"], "o": 4294967295u32
        })
    );
    let types: Vec<&str> = tx[0].changes[0]
        .columns
        .iter()
        .map(|c| c.type_name.as_str())
        .collect();
    assert_eq!(types[..4], ["numeric", "int8", "float8", "float8"]);
    assert_eq!(
        tx[0].changes[0].relation_id, 0,
        "described from the message"
    );
}

#[test]
fn unpublished_tables_and_empty_transactions_are_dropped() {
    let mut d = decoder_with_items(false);
    let stream = sample_stream();
    assert!(run(&mut d, &stream).is_empty());
    // A DDL transaction: Begin and Commit only.
    let mut d = decoder_with_items(true);
    assert!(run(&mut d, &[stream[0], stream[5]]).is_empty());
    assert!(!d.in_transaction());
    // Truncate of a published table is a change.
    let tx = run(
        &mut d,
        &[
            stream[0],
            r#"{"action":"T","schema":"public","table":"items"}"#,
            stream[5],
        ],
    );
    assert_eq!(tx[0].changes[0].op, Op::Truncate);
    assert_eq!(
        (tx[0].changes[0].relation_id, tx[0].changes[0].columns.len()),
        (7, 3)
    );
}

#[test]
fn messages_standalone_and_in_transactions() {
    let mut d = decoder_with_items(true);
    let tx = run(
        &mut d,
        &[
            r#"{"action":"M","xid":null,"timestamp":null,"lsn":"0/15355A0","transactional":false,"prefix":"pfx","content":"h\u00e9"}"#,
        ],
    );
    assert_eq!(
        (tx[0].xid, tx[0].end_lsn),
        (0, "0/15355A0".parse().unwrap())
    );
    assert_eq!(tx[0].changes[0].message.as_ref().unwrap().content, "hé");
    let stream = sample_stream();
    let tx = run(
        &mut d,
        &[
            stream[0],
            r#"{"action":"M","xid":42,"lsn":"0/5","transactional":true,"prefix":"p","content":"x"}"#,
            stream[5],
        ],
    );
    assert_eq!(tx[0].changes[0].op, Op::Message);
}

#[test]
fn tables_are_looked_up_when_unknown_changed_or_old() {
    let stream = sample_stream();
    let insert = Wal2JsonMessage::parse(stream[1].as_bytes()).unwrap();
    let age = Duration::from_secs(10);
    let now = Instant::now();
    let mut d = Decoder::new();
    assert_eq!(d.needs_table(&insert, now, age), Some(("public", "items")));
    d.insert_table("public", "items", Some(items(true)), now);
    assert_eq!(d.needs_table(&insert, now, age), None);
    assert_eq!(
        d.needs_table(&insert, now + 2 * age, age),
        Some(("public", "items"))
    );
    let added = stream[1].replace(
        r#"{"name":"twice""#,
        r#"{"name":"late","typeoid":16400,"value":null},{"name":"twice""#,
    );
    let added = Wal2JsonMessage::parse(added.as_bytes()).unwrap();
    assert_eq!(d.needs_table(&added, now, age), Some(("public", "items")));
    assert_eq!(d.missing_types(&added, None), vec![16400]);
    // A table the catalog no longer has is not looked up again until it ages out.
    d.insert_table("public", "items", None, now);
    assert_eq!(d.needs_table(&added, now, age), None);
    let begin = Wal2JsonMessage::parse(stream[0].as_bytes()).unwrap();
    assert_eq!(d.needs_table(&begin, now, age), None);
}

#[test]
fn bad_messages_are_errors() {
    let mut d = decoder_with_items(true);
    let err = |d: &mut Decoder, m: &str| d.decode(Lsn(1), m.as_bytes()).unwrap_err();
    assert!(matches!(err(&mut d, "{\"action\":"), DecodeError::Json(_)));
    assert!(matches!(err(&mut d, "[1,2]"), DecodeError::Json(_)));
    assert!(matches!(err(&mut d, ""), DecodeError::Json(_)));
    assert_eq!(
        err(&mut d, r#"{"action":"X","xid":1}"#),
        DecodeError::UnknownAction("X".into())
    );
    assert_eq!(
        err(&mut d, &format!(r#"{{"action":"{}"}}"#, "é".repeat(40))),
        DecodeError::UnknownAction("é".repeat(16))
    );
    assert_eq!(
        err(&mut d, r#"{"action":"B"}"#),
        DecodeError::MissingField("xid")
    );
    assert_eq!(
        err(
            &mut d,
            r#"{"action":"C","timestamp":"2000-01-01 00:00:00+00","lsn":"0/1","nextlsn":"zz"}"#
        ),
        DecodeError::InvalidField("nextlsn")
    );
    assert_eq!(
        err(
            &mut d,
            r#"{"action":"C","timestamp":"yesterday","lsn":"0/1","nextlsn":"0/2"}"#
        ),
        DecodeError::InvalidField("timestamp")
    );
    assert_eq!(
        err(&mut d, sample_stream()[5]),
        DecodeError::OutOfOrder("commit")
    );
    assert_eq!(
        err(&mut d, sample_stream()[1]),
        DecodeError::OutOfOrder("insert")
    );
    d.decode(Lsn(1), sample_stream()[0].as_bytes()).unwrap();
    assert_eq!(
        err(&mut d, sample_stream()[0]),
        DecodeError::OutOfOrder("begin")
    );
    assert_eq!(
        err(
            &mut d,
            r#"{"action":"I","schema":"public","table":"items","columns":[{"name":"id","typeoid":23,"value":{"a":1}}]}"#
        ),
        DecodeError::InvalidField("column value")
    );
    assert_eq!(
        err(
            &mut d,
            r#"{"action":"D","schema":"public","table":"items"}"#
        ),
        DecodeError::MissingField("identity")
    );
}

#[test]
fn start_options_escape_table_patterns() {
    let mut config = ReplicationConfig::new("postgres://u@localhost/db".parse().unwrap());
    config.schemas = vec!["public".into(), "we ird".into()];
    config.extra_tables = vec!["auth.sessions".into(), "o'k.t*".into()];
    let options = super::start_options(&config);
    assert!(
        options.starts_with(r#""format-version" '2', "include-xids" '1'"#),
        "{options}"
    );
    assert!(
        options.ends_with(r#""add-tables" 'public.*,we\ ird.*,auth.sessions,o\''k.t\*'"#),
        "{options}"
    );
    config.schemas.clear();
    config.extra_tables.clear();
    assert!(!super::start_options(&config).contains("add-tables"));
}

/// Strategy: a JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "0/1",
            "2000-01-01 00:00:00+00",
            "public",
            "items",
            "id",
            "{1,2}"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "name",
                        "typeoid",
                        "value",
                        "action",
                        "xid",
                        "lsn",
                        "nextlsn",
                        "timestamp",
                        "schema",
                        "table",
                        "columns",
                        "identity",
                        "pk",
                        "transactional",
                        "prefix",
                        "content",
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder, whatever state it is in.
    #[test]
    fn arbitrary_bytes_never_panic(messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 1..8), open in any::<bool>()) {
        let mut d = decoder_with_items(true);
        if open {
            d.decode(Lsn(0), sample_stream()[0].as_bytes()).unwrap();
        }
        for m in messages {
            let _ = d.decode(Lsn(1), &m);
        }
    }

    /// Well-formed JSON of the wrong shape (any action, any fields) never panics.
    #[test]
    fn arbitrary_objects_never_panic(
        action in prop::sample::select(vec!["B", "C", "I", "U", "D", "T", "M", "X", ""]),
        fields in any_json(),
        columns in prop::collection::vec(any_json(), 0..4),
        open in any::<bool>(),
    ) {
        let mut d = decoder_with_items(true);
        if open {
            d.decode(Lsn(0), sample_stream()[0].as_bytes()).unwrap();
        }
        let mut object = match fields { Value::Object(map) => map, _ => Default::default() };
        object.insert("action".into(), json!(action));
        object.insert("schema".into(), json!("public"));
        object.insert("table".into(), json!("items"));
        object.insert("columns".into(), Value::Array(columns.clone()));
        object.insert("identity".into(), Value::Array(columns));
        let _ = d.decode(Lsn(1), Value::Object(object).to_string().as_bytes());
    }

    /// Single-byte corruptions of a valid stream never panic.
    #[test]
    fn corrupted_stream_never_panics(index in 0usize..6, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut d = decoder_with_items(true);
        for (i, m) in sample_stream().into_iter().enumerate() {
            let mut m = m.as_bytes().to_vec();
            if i == index {
                let at = pos.index(m.len());
                m[at] = byte;
            }
            let _ = d.decode(Lsn(i as u64), &m);
        }
    }
}
