//! Turns pgoutput messages into [`Transaction`]s, keeping the relation and type caches.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::message::{PgOutputMessage, TupleValue};
use super::value::{is_json_null, to_json};
use crate::error::DecodeError;
use crate::lsn::Lsn;
use crate::relation::{Relation, RelationCache, TypeCache};
use crate::transaction::{Change, LogicalMessage, Op, Timestamp, Transaction};

/// A transaction between its Begin and Commit.
#[derive(Debug)]
struct Pending {
    /// Transaction id.
    xid: u32,
    /// WAL position of the Begin message.
    begin_lsn: Lsn,
    /// Changes so far.
    changes: Vec<Change>,
}

/// Stateful pgoutput decoder: one per replication session.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Tables described so far in this session.
    relations: RelationCache,
    /// User types resolved so far; survives sessions since type OIDs are stable.
    types: TypeCache,
    /// The open transaction, if any.
    pending: Option<Pending>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The type cache, to fill before applying a Relation that uses unknown types.
    pub fn types_mut(&mut self) -> &mut TypeCache {
        &mut self.types
    }

    /// The type cache.
    pub fn types(&self) -> &TypeCache {
        &self.types
    }

    /// Whether a transaction is open (Begin seen, Commit not yet).
    pub fn in_transaction(&self) -> bool {
        self.pending.is_some()
    }

    /// Forgets session state: the next session re-sends relations and restarts transactions.
    pub fn reset(&mut self) {
        self.relations.clear();
        self.pending = None;
    }

    /// Parses and applies one message without catalog help (tests, fuzzing).
    pub fn decode(
        &mut self,
        wal_start: Lsn,
        data: Bytes,
    ) -> Result<Option<Transaction>, DecodeError> {
        let message = PgOutputMessage::parse(data)?;
        self.apply(wal_start, message, None)
    }

    /// Applies one parsed message; returns a transaction when it completes one.
    /// `primary_key` names the primary-key columns of a Relation message's table.
    pub fn apply(
        &mut self,
        wal_start: Lsn,
        message: PgOutputMessage,
        primary_key: Option<&[String]>,
    ) -> Result<Option<Transaction>, DecodeError> {
        match message {
            PgOutputMessage::Begin { xid, .. } => {
                if self.pending.is_some() {
                    return Err(DecodeError::OutOfOrder("begin"));
                }
                self.pending = Some(Pending {
                    xid,
                    begin_lsn: wal_start,
                    changes: Vec::new(),
                });
                Ok(None)
            }
            PgOutputMessage::Commit {
                commit_lsn,
                end_lsn,
                timestamp,
            } => {
                let pending = self
                    .pending
                    .take()
                    .ok_or(DecodeError::OutOfOrder("commit"))?;
                Ok(Some(Transaction {
                    xid: pending.xid,
                    begin_lsn: pending.begin_lsn,
                    commit_lsn: Lsn(commit_lsn),
                    end_lsn: Lsn(end_lsn),
                    commit_timestamp: Timestamp::from_pg_micros(timestamp),
                    changes: pending.changes,
                }))
            }
            PgOutputMessage::Origin { .. } => Ok(None),
            PgOutputMessage::Relation(body) => {
                self.relations
                    .insert(Relation::new(&body, &self.types, primary_key));
                Ok(None)
            }
            PgOutputMessage::Type { id, name, .. } => {
                self.types.insert_name(id, name);
                Ok(None)
            }
            PgOutputMessage::Insert { relation_id, new } => {
                let rel = self.relation(relation_id)?;
                let new = row(&rel, &new, None)?;
                let primary_key = Some(pick(&rel, &new.record));
                let mut insert = change(
                    &rel,
                    Op::Insert,
                    Some(new.record),
                    None,
                    primary_key,
                    new.unchanged,
                );
                insert.json_nulls = new.json_nulls;
                self.push(insert, "insert")
            }
            PgOutputMessage::Update {
                relation_id,
                old,
                new,
            } => {
                let rel = self.relation(relation_id)?;
                let old = match &old {
                    Some((tag, values)) => Some(row(&rel, values, Some(*tag))?),
                    None => None,
                };
                let mut new = row(&rel, &new, None)?;
                let primary_key = Some(pick(&rel, &new.record));
                // With REPLICA IDENTITY FULL the old row carries the real unchanged values.
                if let Some(old) = &old {
                    new.fill_unchanged(old);
                }
                let (old_record, old_json_nulls) = match old {
                    Some(old) => (Some(old.record), old.json_nulls),
                    None => (None, Vec::new()),
                };
                let mut update = change(
                    &rel,
                    Op::Update,
                    Some(new.record),
                    old_record,
                    primary_key,
                    new.unchanged,
                );
                update.json_nulls = new.json_nulls;
                update.old_json_nulls = old_json_nulls;
                self.push(update, "update")
            }
            PgOutputMessage::Delete {
                relation_id,
                old: (tag, values),
            } => {
                let rel = self.relation(relation_id)?;
                let old = row(&rel, &values, Some(tag))?;
                let primary_key = Some(pick(&rel, &old.record));
                let mut delete = change(
                    &rel,
                    Op::Delete,
                    None,
                    Some(old.record),
                    primary_key,
                    Vec::new(),
                );
                delete.old_json_nulls = old.json_nulls;
                self.push(delete, "delete")
            }
            PgOutputMessage::Truncate { relation_ids, .. } => {
                if self.pending.is_none() {
                    return Err(DecodeError::OutOfOrder("truncate"));
                }
                for id in relation_ids {
                    let rel = self.relation(id)?;
                    self.push(
                        change(&rel, Op::Truncate, None, None, None, Vec::new()),
                        "truncate",
                    )?;
                }
                Ok(None)
            }
            PgOutputMessage::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                let message = LogicalMessage {
                    prefix,
                    content: message_text(&content),
                };
                let change = Change {
                    op: Op::Message,
                    schema: Arc::from(""),
                    table: Arc::from(""),
                    relation_id: 0,
                    columns: Arc::from(Vec::new()),
                    record: None,
                    old_record: None,
                    primary_key: None,
                    unchanged_toast: Vec::new(),
                    json_nulls: Vec::new(),
                    old_json_nulls: Vec::new(),
                    message: Some(message),
                };
                if transactional {
                    return self.push(change, "message");
                }
                // Outside a transaction a message stands alone; its LSN is its position.
                Ok(Some(Transaction {
                    xid: 0,
                    begin_lsn: wal_start,
                    commit_lsn: Lsn(lsn),
                    end_lsn: Lsn(lsn),
                    commit_timestamp: Timestamp::default(),
                    changes: vec![change],
                }))
            }
        }
    }

    /// The cached relation.
    fn relation(&self, id: u32) -> Result<Arc<Relation>, DecodeError> {
        self.relations
            .get(id)
            .cloned()
            .ok_or(DecodeError::UnknownRelation(id))
    }

    /// Adds a change to the open transaction.
    fn push(
        &mut self,
        change: Change,
        what: &'static str,
    ) -> Result<Option<Transaction>, DecodeError> {
        let pending = self.pending.as_mut().ok_or(DecodeError::OutOfOrder(what))?;
        pending.changes.push(change);
        Ok(None)
    }
}

/// Assembles a change of a relation.
pub(crate) fn change(
    rel: &Relation,
    op: Op,
    record: Option<Map<String, Value>>,
    old_record: Option<Map<String, Value>>,
    primary_key: Option<Map<String, Value>>,
    unchanged_toast: Vec<String>,
) -> Change {
    Change {
        op,
        schema: rel.schema.clone(),
        table: rel.table.clone(),
        relation_id: rel.id,
        columns: rel.columns.clone(),
        record,
        old_record,
        primary_key,
        unchanged_toast,
        json_nulls: Vec::new(),
        old_json_nulls: Vec::new(),
        message: None,
    }
}

/// A decoded tuple.
pub(crate) struct Image {
    /// Column → value; unchanged TOAST columns (and a key-only tuple's non-key columns) are
    /// left out.
    pub record: Map<String, Value>,
    /// Unchanged TOAST columns.
    pub unchanged: Vec<String>,
    /// json/jsonb columns holding the JSON `null` literal (not SQL NULL).
    pub json_nulls: Vec<String>,
}

impl Image {
    /// Copies unchanged TOAST values from a full old row (REPLICA IDENTITY FULL), keeping
    /// only those still unknown; a copied JSON `null` stays one.
    pub fn fill_unchanged(&mut self, old: &Image) {
        let before = std::mem::take(&mut self.unchanged);
        let (record, unchanged) = fill_unchanged(
            std::mem::take(&mut self.record),
            before.clone(),
            Some(&old.record),
        );
        for name in before.iter().filter(|n| !unchanged.contains(n)) {
            if old.json_nulls.contains(name) {
                self.json_nulls.push(name.clone());
            }
        }
        self.record = record;
        self.unchanged = unchanged;
    }
}

/// Converts a tuple to a JSON object; unchanged TOAST columns are left out and named. For a
/// key-only old tuple (`K`) the non-key columns (sent as NULL) are left out too.
fn row(rel: &Relation, values: &[TupleValue], old_tag: Option<u8>) -> Result<Image, DecodeError> {
    if values.len() != rel.columns.len() {
        return Err(DecodeError::ColumnCount {
            relation_id: rel.id,
            expected: rel.columns.len(),
            found: values.len(),
        });
    }
    let key_only = old_tag == Some(b'K');
    let mut image = Image {
        record: Map::new(),
        unchanged: Vec::new(),
        json_nulls: Vec::new(),
    };
    for ((value, column), kind) in values.iter().zip(rel.columns.iter()).zip(&rel.kinds) {
        match value {
            TupleValue::Null if key_only => {}
            TupleValue::Null => {
                image.record.insert(column.name.clone(), Value::Null);
            }
            TupleValue::UnchangedToast => image.unchanged.push(column.name.clone()),
            TupleValue::Text(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                if is_json_null(kind, &text) {
                    image.json_nulls.push(column.name.clone());
                }
                image
                    .record
                    .insert(column.name.clone(), to_json(kind, &text));
            }
        }
    }
    Ok(image)
}

/// Copies unchanged TOAST values from a full old row, keeping only those still unknown.
pub(crate) fn fill_unchanged(
    mut record: Map<String, Value>,
    unchanged: Vec<String>,
    old: Option<&Map<String, Value>>,
) -> (Map<String, Value>, Vec<String>) {
    let Some(old) = old else {
        return (record, unchanged);
    };
    let mut still = Vec::new();
    for name in unchanged {
        match old.get(&name) {
            Some(value) => {
                record.insert(name, value.clone());
            }
            None => still.push(name),
        }
    }
    (record, still)
}

/// The primary-key columns of `record`.
pub(crate) fn pick(rel: &Relation, record: &Map<String, Value>) -> Map<String, Value> {
    rel.primary_key
        .iter()
        .filter_map(|&i| {
            let name = &rel.columns.get(i)?.name;
            Some((name.clone(), record.get(name)?.clone()))
        })
        .collect()
}

/// Message content as text when UTF-8, else PostgreSQL-style hex.
pub(crate) fn message_text(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::with_capacity(2 + content.len() * 2);
            out.push_str("\\x");
            for b in content {
                out.push_str(&format!("{b:02x}"));
            }
            out
        }
    }
}
