//! Decode-only throughput: pre-built protocol messages through the public decoders into
//! `Transaction`s, on one core, no server. Issue 3 targets ≥ 200,000 changes/s.
//!
//! The row is a realistic one: `id bigint` (key), `uid uuid`, `body text` (64 bytes),
//! `created_at timestamptz`, `done bool`, `amount numeric`, `meta jsonb`.
//!
//! ```text
//! cargo bench -p fluxbase-replication --bench decode
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fluxbase_replication::pgoutput::Decoder as PgDecoder;
use fluxbase_replication::pgoutput::message::{PgOutputMessage, RelationBody, RelationColumn};
use fluxbase_replication::wal2json::{Decoder as JsonDecoder, TableInfo};
use fluxbase_replication::{Lsn, Transaction};

/// Inserts per transaction.
const ROWS: usize = 1_000;

/// Table OID of `public.items`.
const RELID: u32 = 16_400;

/// (name, type OID, part of the key) of `public.items`.
const COLUMNS: &[(&str, u32, bool)] = &[
    ("id", 20, true),
    ("uid", 2950, false),
    ("body", 25, false),
    ("created_at", 1184, false),
    ("done", 16, false),
    ("amount", 1700, false),
    ("meta", 3802, false),
];

/// The text output of row `i`'s values, as the server sends them.
fn row(i: usize) -> [String; 7] {
    [
        (1_000_000 + i).to_string(),
        format!("a0eebc99-9c0b-4ef8-bb6d-{:012x}", i),
        format!("{:0>64}", format!("row {i} lorem ipsum dolor sit amet")),
        format!("2026-11-22 10:{:02}:{:02}.123456+00", i / 60 % 60, i % 60),
        if i.is_multiple_of(2) { "t" } else { "f" }.to_owned(),
        format!("{}.{:04}", 12_345 + i, i % 10_000),
        format!(r#"{{"tags": ["a", "b"], "n": {i}, "ok": true}}"#),
    ]
}

fn cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

/// pgoutput messages: Relation, then Begin, `ROWS` Inserts and Commit.
fn pgoutput_stream() -> (Bytes, Vec<Bytes>) {
    let mut r = BytesMut::new();
    r.put_u8(b'R');
    r.put_u32(RELID);
    cstr(&mut r, "public");
    cstr(&mut r, "items");
    r.put_u8(b'd');
    r.put_i16(COLUMNS.len() as i16);
    for (name, oid, key) in COLUMNS {
        r.put_u8(u8::from(*key));
        cstr(&mut r, name);
        r.put_u32(*oid);
        r.put_i32(-1);
    }

    let mut messages = Vec::with_capacity(ROWS + 2);
    let mut b = BytesMut::new();
    b.put_u8(b'B');
    b.put_u64(0x1_0000_0000);
    b.put_i64(817_000_000_000_000);
    b.put_u32(4242);
    messages.push(b.freeze());
    for i in 0..ROWS {
        let mut b = BytesMut::new();
        b.put_u8(b'I');
        b.put_u32(RELID);
        b.put_u8(b'N');
        b.put_i16(COLUMNS.len() as i16);
        for value in row(i) {
            b.put_u8(b't');
            b.put_i32(value.len() as i32);
            b.put_slice(value.as_bytes());
        }
        messages.push(b.freeze());
    }
    let mut b = BytesMut::new();
    b.put_u8(b'C');
    b.put_u8(0);
    b.put_u64(0x1_0000_0000);
    b.put_u64(0x1_0000_0008);
    b.put_i64(817_000_000_000_000);
    messages.push(b.freeze());
    (r.freeze(), messages)
}

/// A decoder that has seen the Relation, with the primary key from the catalog.
fn pgoutput_decoder(relation: &Bytes) -> PgDecoder {
    let mut decoder = PgDecoder::new();
    let message = PgOutputMessage::parse(relation.clone()).expect("relation parses");
    let key = ["id".to_owned()];
    decoder
        .apply(Lsn(1), message, Some(&key))
        .expect("relation applies");
    decoder
}

/// Decodes one transaction's messages.
fn pgoutput_run(decoder: &mut PgDecoder, messages: &[Bytes]) -> Transaction {
    let mut done = None;
    for (i, m) in messages.iter().enumerate() {
        // `Bytes::clone` is a reference count: the stream hands the decoder owned frames.
        if let Some(tx) = decoder
            .decode(Lsn(0x1_0000 + i as u64), m.clone())
            .expect("decodes")
        {
            done = Some(tx);
        }
    }
    done.expect("the commit completes a transaction")
}

/// The same transaction as wal2json format version 2 writes it (the options the stream
/// uses: xids, timestamps, LSNs, type OIDs, primary keys).
fn wal2json_stream() -> Vec<String> {
    let mut messages = Vec::with_capacity(ROWS + 2);
    messages.push(
        r#"{"action":"B","xid":4242,"timestamp":"2026-11-22 10:00:00.123456+00","lsn":"1/0","nextlsn":"1/8"}"#
            .to_owned(),
    );
    for i in 0..ROWS {
        let v = row(i);
        let columns = format!(
            concat!(
                r#"[{{"name":"id","typeoid":20,"value":{}}},"#,
                r#"{{"name":"uid","typeoid":2950,"value":"{}"}},"#,
                r#"{{"name":"body","typeoid":25,"value":"{}"}},"#,
                r#"{{"name":"created_at","typeoid":1184,"value":"{}"}},"#,
                r#"{{"name":"done","typeoid":16,"value":{}}},"#,
                r#"{{"name":"amount","typeoid":1700,"value":{}}},"#,
                r#"{{"name":"meta","typeoid":3802,"value":{}}}]"#,
            ),
            v[0],
            v[1],
            v[2],
            v[3],
            if v[4] == "t" { "true" } else { "false" },
            v[5],
            serde_json::to_string(&v[6]).expect("a string serializes"),
        );
        messages.push(format!(
            r#"{{"action":"I","xid":4242,"lsn":"0/{:X}","schema":"public","table":"items","columns":{columns},"pk":[{{"name":"id","typeoid":20}}]}}"#,
            0x1000 + i
        ));
    }
    messages.push(
        r#"{"action":"C","xid":4242,"timestamp":"2026-11-22 10:00:00.123456+00","lsn":"1/0","nextlsn":"1/8"}"#
            .to_owned(),
    );
    messages
}

/// A wal2json decoder that knows `public.items` from the catalog.
fn wal2json_decoder() -> JsonDecoder {
    let body = RelationBody {
        id: RELID,
        schema: "public".into(),
        table: "items".into(),
        replica_identity: b'd',
        columns: COLUMNS
            .iter()
            .map(|(name, oid, key)| RelationColumn {
                is_key: *key,
                name: (*name).to_owned(),
                type_oid: *oid,
                type_modifier: -1,
            })
            .collect(),
    };
    let info = TableInfo {
        primary_key: vec!["id".into()],
        wire: COLUMNS
            .iter()
            .map(|(n, oid, _)| ((*n).to_owned(), *oid))
            .collect(),
        index_key: vec!["id".into()],
        published: true,
        body,
    };
    let mut decoder = JsonDecoder::new();
    decoder.insert_table("public", "items", Some(info), Instant::now());
    decoder
}

fn wal2json_run(decoder: &mut JsonDecoder, messages: &[String]) -> Transaction {
    let mut done = None;
    for (i, m) in messages.iter().enumerate() {
        if let Some(tx) = decoder
            .decode(Lsn(0x1_0000 + i as u64), m.as_bytes())
            .expect("decodes")
        {
            done = Some(tx);
        }
    }
    done.expect("the commit completes a transaction")
}

fn decode(c: &mut Criterion) {
    let (relation, messages) = pgoutput_stream();
    let mut pg = pgoutput_decoder(&relation);
    let json_messages = wal2json_stream();
    let mut json = wal2json_decoder();

    // Both decoders must produce the same transaction, or the comparison means nothing.
    let a = pgoutput_run(&mut pg, &messages);
    let b = wal2json_run(&mut json, &json_messages);
    assert_eq!(a.changes.len(), ROWS);
    assert_eq!(b.changes.len(), ROWS);
    for (x, y) in a.changes.iter().zip(&b.changes) {
        assert_eq!(x.record, y.record);
        assert_eq!(x.primary_key, y.primary_key);
    }

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("pgoutput_insert_tx_1000", |bench| {
        bench.iter(|| black_box(pgoutput_run(&mut pg, &messages)))
    });
    group.bench_function("wal2json_insert_tx_1000", |bench| {
        bench.iter(|| black_box(wal2json_run(&mut json, &json_messages)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = decode
}
criterion_main!(benches);
