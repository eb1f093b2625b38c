//! Decoder tests on hand-built pgoutput messages, and property tests feeding it garbage.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use serde_json::json;

use super::Decoder;
use crate::error::DecodeError;
use crate::lsn::Lsn;
use crate::protocol::ServerFrame;
use crate::transaction::Op;

/// Builders of pgoutput messages as the server encodes them.
fn cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn relation(id: u32, cols: &[(&str, u32, bool)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'R');
    b.put_u32(id);
    cstr(&mut b, "public");
    cstr(&mut b, "items");
    b.put_u8(b'd');
    b.put_i16(cols.len() as i16);
    for (name, oid, key) in cols {
        b.put_u8(u8::from(*key));
        cstr(&mut b, name);
        b.put_u32(*oid);
        b.put_i32(-1);
    }
    b.freeze()
}

fn begin(xid: u32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'B');
    b.put_u64(100);
    b.put_i64(0);
    b.put_u32(xid);
    b.freeze()
}

fn commit(end: u64) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'C');
    b.put_u8(0);
    b.put_u64(end - 8);
    b.put_u64(end);
    b.put_i64(1_000_000);
    b.freeze()
}

/// `None` = NULL, `Some(None)` = unchanged toast, `Some(Some(text))` = value.
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

fn insert(id: u32, values: &[Option<Option<&str>>]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'I');
    b.put_u32(id);
    b.put_u8(b'N');
    tuple(&mut b, values);
    b.freeze()
}

fn update(
    id: u32,
    old: Option<(u8, &[Option<Option<&str>>])>,
    new: &[Option<Option<&str>>],
) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'U');
    b.put_u32(id);
    if let Some((tag, values)) = old {
        b.put_u8(tag);
        tuple(&mut b, values);
    }
    b.put_u8(b'N');
    tuple(&mut b, new);
    b.freeze()
}

fn delete(id: u32, values: &[Option<Option<&str>>]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(b'D');
    b.put_u32(id);
    b.put_u8(b'K');
    tuple(&mut b, values);
    b.freeze()
}

fn sample_stream() -> Vec<Bytes> {
    vec![
        relation(
            7,
            &[("id", 23, true), ("body", 25, false), ("tags", 1009, false)],
        ),
        begin(42),
        insert(
            7,
            &[Some(Some("1")), Some(Some("héllo")), Some(Some("{a,b}"))],
        ),
        update(7, None, &[Some(Some("1")), Some(None), None]),
        update(
            7,
            Some((b'O', &[Some(Some("1")), Some(Some("old")), None])),
            &[Some(Some("1")), Some(None), None],
        ),
        delete(7, &[Some(Some("1")), None, None]),
        commit(200),
    ]
}

#[test]
fn decodes_a_transaction() {
    let mut d = Decoder::new();
    let mut out = None;
    for (i, m) in sample_stream().into_iter().enumerate() {
        if let Some(tx) = d.decode(Lsn(i as u64), m).unwrap() {
            out = Some(tx);
        }
    }
    let tx = out.expect("a transaction");
    assert_eq!(tx.xid, 42);
    assert_eq!(tx.end_lsn, Lsn(200));
    assert_eq!(tx.begin_lsn, Lsn(1));
    assert_eq!(tx.changes.len(), 4);
    let ins = &tx.changes[0];
    assert_eq!(ins.op, Op::Insert);
    assert_eq!(
        serde_json::to_value(&ins.record).unwrap(),
        json!({"id": 1, "body": "héllo", "tags": ["a", "b"]})
    );
    assert_eq!(
        serde_json::to_value(&ins.primary_key).unwrap(),
        json!({"id": 1})
    );
    assert_eq!(ins.columns[2].type_name, "_text");

    // Unchanged TOAST: left out and named, not invented.
    let upd = &tx.changes[1];
    assert_eq!(
        serde_json::to_value(&upd.record).unwrap(),
        json!({"id": 1, "tags": null})
    );
    assert_eq!(upd.unchanged_toast, vec!["body".to_owned()]);
    assert!(upd.old_record.is_none());

    // With a full old row the real unchanged value is known.
    let full = &tx.changes[2];
    assert_eq!(
        serde_json::to_value(&full.record).unwrap(),
        json!({"id": 1, "body": "old", "tags": null})
    );
    assert!(full.unchanged_toast.is_empty());

    let del = &tx.changes[3];
    assert_eq!(del.op, Op::Delete);
    assert_eq!(
        serde_json::to_value(&del.old_record).unwrap(),
        json!({"id": 1})
    );
    assert_eq!(
        serde_json::to_value(&del.primary_key).unwrap(),
        json!({"id": 1})
    );

    let text = serde_json::to_value(&tx).unwrap();
    assert_eq!(text["end_lsn"], json!("0/C8"));
    assert_eq!(text["changes"][0]["op"], json!("INSERT"));
    assert_eq!(
        text["changes"][0]["columns"][0],
        json!({"name": "id", "type": "int4"})
    );
}

#[test]
fn rejects_bad_order_and_unknown_relations() {
    let mut d = Decoder::new();
    assert_eq!(
        d.decode(Lsn(1), commit(10)).unwrap_err(),
        DecodeError::OutOfOrder("commit")
    );
    d.decode(Lsn(2), begin(1)).unwrap();
    assert_eq!(
        d.decode(Lsn(3), begin(1)).unwrap_err(),
        DecodeError::OutOfOrder("begin")
    );
    assert_eq!(
        d.decode(Lsn(4), insert(9, &[None])).unwrap_err(),
        DecodeError::UnknownRelation(9)
    );
    d.decode(Lsn(5), relation(9, &[("a", 23, true)])).unwrap();
    assert!(matches!(
        d.decode(Lsn(6), insert(9, &[None, None])).unwrap_err(),
        DecodeError::ColumnCount {
            expected: 1,
            found: 2,
            ..
        }
    ));
    assert_eq!(
        d.decode(Lsn(7), Bytes::from_static(b"S")).unwrap_err(),
        DecodeError::UnknownMessage(b'S')
    );
    assert_eq!(
        d.decode(Lsn(7), Bytes::new()).unwrap_err(),
        DecodeError::Truncated("message tag")
    );
}

#[test]
fn every_truncation_of_valid_messages_is_an_error() {
    for m in sample_stream() {
        for cut in 0..m.len() {
            let mut d = Decoder::new();
            d.decode(
                Lsn(0),
                relation(
                    7,
                    &[("id", 23, true), ("body", 25, false), ("tags", 1009, false)],
                ),
            )
            .unwrap();
            d.decode(Lsn(0), begin(1)).unwrap();
            assert!(
                d.decode(Lsn(0), m.slice(..cut)).is_err(),
                "cut {cut} of {:?}",
                m
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder, whatever state it is in.
    #[test]
    fn arbitrary_bytes_never_panic(messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8)) {
        let mut d = Decoder::new();
        d.decode(Lsn(0), relation(7, &[("id", 23, true), ("body", 25, false), ("tags", 1009, false)])).unwrap();
        for m in messages {
            let _ = d.decode(Lsn(1), Bytes::from(m));
        }
    }

    /// Arbitrary bytes after a valid tag reach deeper parsing paths without panicking.
    #[test]
    fn arbitrary_bodies_never_panic(tag in prop::sample::select(b"BCORYIUDTM".to_vec()), body in prop::collection::vec(any::<u8>(), 0..128), open in any::<bool>()) {
        let mut d = Decoder::new();
        d.decode(Lsn(0), relation(7, &[("id", 23, true), ("body", 25, false), ("tags", 1009, false)])).unwrap();
        if open {
            d.decode(Lsn(0), begin(1)).unwrap();
        }
        let mut m = vec![tag];
        m.extend(body);
        let _ = d.decode(Lsn(1), Bytes::from(m));
    }

    /// Single-byte corruptions of a valid stream never panic.
    #[test]
    fn corrupted_stream_never_panics(index in 0usize..7, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut d = Decoder::new();
        for (i, m) in sample_stream().into_iter().enumerate() {
            let m = if i == index {
                let mut v = m.to_vec();
                let at = pos.index(v.len());
                v[at] = byte;
                Bytes::from(v)
            } else { m };
            let _ = d.decode(Lsn(i as u64), m);
        }
    }

    /// Replication frames and array literals tolerate anything too.
    #[test]
    fn frames_and_arrays_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), text in ".{0,64}") {
        let _ = ServerFrame::parse(Bytes::from(bytes));
        let _ = super::value::to_json(&super::value::ValueKind::Array(Box::new(super::value::ValueKind::Integer)), &text);
        let _ = super::value::to_json(&super::value::ValueKind::TimestampTz, &text);
    }
}
