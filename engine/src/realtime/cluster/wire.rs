//! What travels in the Redis streams: decoded transactions (the changes stream) and channel
//! events (the channels stream). A serde mirror of [`Transaction`] and [`ChannelEvent`],
//! kept here so the replication crate's types stay write-only (their JSON is what clients
//! see, not a wire format), and every field round-trips exactly: JSON `null` columns,
//! unchanged TOAST lists and typed column lists included.

use std::sync::Arc;

use bytes::Bytes;
use fluxbase_replication::{Change, Column, LogicalMessage, Lsn, Op, Timestamp, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::realtime::channels::{ChannelEvent, ChannelEventKind, Payload, Presence};
use crate::realtime::connection::ConnId;

/// Why an entry could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("bus entry not readable: {0}")]
pub struct WireError(#[from] serde_json::Error);

/// A transaction on the wire.
#[derive(Serialize, Deserialize)]
struct WireTx {
    xid: u32,
    begin: u64,
    commit: u64,
    end: u64,
    ts: i64,
    changes: Vec<WireChange>,
}

/// A change on the wire.
#[derive(Serialize, Deserialize)]
struct WireChange {
    op: WireOp,
    schema: String,
    table: String,
    relid: u32,
    columns: Vec<(String, String)>,
    record: Option<Map<String, Value>>,
    old: Option<Map<String, Value>>,
    pk: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    toast: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nulls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    old_nulls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<(String, String)>,
}

/// [`Op`] on the wire.
#[derive(Serialize, Deserialize)]
enum WireOp {
    I,
    U,
    D,
    T,
    M,
}

/// A transaction as the JSON of a changes-stream entry.
pub fn encode_transaction(tx: &Transaction) -> Vec<u8> {
    let wire = WireTx {
        xid: tx.xid,
        begin: tx.begin_lsn.0,
        commit: tx.commit_lsn.0,
        end: tx.end_lsn.0,
        ts: tx.commit_timestamp.0,
        changes: tx.changes.iter().map(encode_change).collect(),
    };
    serde_json::to_vec(&wire).expect("a transaction serializes")
}

fn encode_change(c: &Change) -> WireChange {
    WireChange {
        op: match c.op {
            Op::Insert => WireOp::I,
            Op::Update => WireOp::U,
            Op::Delete => WireOp::D,
            Op::Truncate => WireOp::T,
            Op::Message => WireOp::M,
        },
        schema: c.schema.to_string(),
        table: c.table.to_string(),
        relid: c.relation_id,
        columns: c
            .columns
            .iter()
            .map(|col| (col.name.clone(), col.type_name.clone()))
            .collect(),
        record: c.record.clone(),
        old: c.old_record.clone(),
        pk: c.primary_key.clone(),
        toast: c.unchanged_toast.clone(),
        nulls: c.json_nulls.clone(),
        old_nulls: c.old_json_nulls.clone(),
        message: c
            .message
            .as_ref()
            .map(|m| (m.prefix.clone(), m.content.clone())),
    }
}

/// A changes-stream entry's JSON back into a transaction.
pub fn decode_transaction(bytes: &[u8]) -> Result<Transaction, WireError> {
    let wire: WireTx = serde_json::from_slice(bytes)?;
    // Changes of one relation share their column list, as the decoder's do.
    let mut shared: Vec<(u32, Arc<[Column]>)> = Vec::new();
    let changes = wire
        .changes
        .into_iter()
        .map(|c| {
            let columns = match shared
                .iter()
                .find(|(relid, cols)| *relid == c.relid && same_columns(cols, &c.columns))
            {
                Some((_, cols)) => cols.clone(),
                None => {
                    let cols: Arc<[Column]> = c
                        .columns
                        .iter()
                        .map(|(name, type_name)| Column {
                            name: name.clone(),
                            type_name: type_name.clone(),
                        })
                        .collect();
                    shared.push((c.relid, cols.clone()));
                    cols
                }
            };
            Change {
                op: match c.op {
                    WireOp::I => Op::Insert,
                    WireOp::U => Op::Update,
                    WireOp::D => Op::Delete,
                    WireOp::T => Op::Truncate,
                    WireOp::M => Op::Message,
                },
                schema: Arc::from(c.schema),
                table: Arc::from(c.table),
                relation_id: c.relid,
                columns,
                record: c.record,
                old_record: c.old,
                primary_key: c.pk,
                unchanged_toast: c.toast,
                json_nulls: c.nulls,
                old_json_nulls: c.old_nulls,
                message: c
                    .message
                    .map(|(prefix, content)| LogicalMessage { prefix, content }),
            }
        })
        .collect();
    Ok(Transaction {
        xid: wire.xid,
        begin_lsn: Lsn(wire.begin),
        commit_lsn: Lsn(wire.commit),
        end_lsn: Lsn(wire.end),
        commit_timestamp: Timestamp(wire.ts),
        changes,
    })
}

fn same_columns(cols: &[Column], wire: &[(String, String)]) -> bool {
    cols.len() == wire.len()
        && cols
            .iter()
            .zip(wire)
            .all(|(c, (n, t))| c.name == *n && c.type_name == *t)
}

/// A channel event on the wire (its payload travels beside it, binary-safe).
#[derive(Serialize, Deserialize)]
struct WireChannel {
    channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    except: Option<String>,
    #[serde(flatten)]
    kind: WireKind,
}

/// [`ChannelEventKind`] on the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireKind {
    /// The payload is the entry's `payload` field; `binary` says which [`Payload`] it is.
    Broadcast { event: String, binary: bool },
    Presence {
        joins: Vec<(String, Value)>,
        leaves: Vec<(String, Value)>,
    },
}

/// A channel event as a channels-stream entry: the event's JSON and its payload bytes.
pub fn encode_channel_event(event: &ChannelEvent) -> (Vec<u8>, Vec<u8>) {
    let (kind, payload) = match &event.kind {
        ChannelEventKind::Broadcast { event, payload } => {
            let (binary, bytes) = match payload {
                Payload::Json(text) => (false, text.as_bytes().to_vec()),
                Payload::Binary(bytes) => (true, bytes.to_vec()),
            };
            (
                WireKind::Broadcast {
                    event: event.to_string(),
                    binary,
                },
                bytes,
            )
        }
        ChannelEventKind::PresenceDiff { joins, leaves } => {
            let pairs = |list: &[Presence]| {
                list.iter()
                    .map(|p| (p.key.clone(), p.state.clone()))
                    .collect()
            };
            (
                WireKind::Presence {
                    joins: pairs(joins),
                    leaves: pairs(leaves),
                },
                Vec::new(),
            )
        }
    };
    let wire = WireChannel {
        channel: event.channel.to_string(),
        except: event.except.as_ref().map(|id| id.as_str().to_string()),
        kind,
    };
    (
        serde_json::to_vec(&wire).expect("a channel event serializes"),
        payload,
    )
}

/// A channels-stream entry back into an event.
pub fn decode_channel_event(meta: &[u8], payload: Vec<u8>) -> Result<Arc<ChannelEvent>, WireError> {
    let wire: WireChannel = serde_json::from_slice(meta)?;
    let kind = match wire.kind {
        WireKind::Broadcast { event, binary } => ChannelEventKind::Broadcast {
            event: Arc::from(event),
            payload: if binary {
                Payload::Binary(Bytes::from(payload))
            } else {
                // Written from a `Payload::Json`'s text: UTF-8 unless the entry was forged.
                let text = String::from_utf8(payload).map_err(|_| {
                    WireError(serde_json::Error::io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "broadcast payload is not UTF-8",
                    )))
                })?;
                Payload::Json(Arc::from(text))
            },
        },
        WireKind::Presence { joins, leaves } => {
            let list = |pairs: Vec<(String, Value)>| {
                pairs
                    .into_iter()
                    .map(|(key, state)| Presence { key, state })
                    .collect()
            };
            ChannelEventKind::PresenceDiff {
                joins: list(joins),
                leaves: list(leaves),
            }
        }
    };
    Ok(ChannelEvent::new(
        Arc::from(wire.channel),
        kind,
        wire.except.as_deref().map(ConnId::from_text),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_round_trips_exactly() {
        let columns: Arc<[Column]> = Arc::from(vec![
            Column {
                name: "id".into(),
                type_name: "int8".into(),
            },
            Column {
                name: "doc".into(),
                type_name: "jsonb".into(),
            },
        ]);
        let record: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"id": 1, "doc": null})).unwrap();
        let tx = Transaction {
            xid: 7,
            begin_lsn: Lsn(10),
            commit_lsn: Lsn(20),
            end_lsn: Lsn(30),
            commit_timestamp: Timestamp(1_700_000_000_000_000),
            changes: vec![Change {
                op: Op::Update,
                schema: Arc::from("public"),
                table: Arc::from("t"),
                relation_id: 42,
                columns,
                record: Some(record.clone()),
                old_record: None,
                primary_key: Some(record),
                unchanged_toast: vec!["big".into()],
                json_nulls: vec!["doc".into()],
                old_json_nulls: Vec::new(),
                message: None,
            }],
        };
        let back = decode_transaction(&encode_transaction(&tx)).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&tx).unwrap()
        );
        assert_eq!(back.end_lsn, Lsn(30));
        assert_eq!(back.changes[0].op, Op::Update);
    }

    #[test]
    fn channel_events_round_trip_with_binary_payloads() {
        let event = ChannelEvent::new(
            Arc::from("room"),
            ChannelEventKind::Broadcast {
                event: Arc::from("cursor"),
                payload: Payload::Binary(Bytes::from_static(&[0, 159, 146, 150])),
            },
            Some(ConnId::new("abcd", 3)),
        );
        let (meta, payload) = encode_channel_event(&event);
        let back = decode_channel_event(&meta, payload).unwrap();
        assert_eq!(back.kind, event.kind);
        assert_eq!(back.except, event.except);
        assert_eq!(&*back.channel, "room");
    }
}
