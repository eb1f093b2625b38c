//! Turns wal2json messages into the same [`Transaction`]s as the pgoutput decoder.
//!
//! wal2json names tables instead of describing them, so table shapes come from the catalog
//! ([`TableInfo`], looked up by the stream) and are cached by schema and table name. A cached
//! shape is looked up again when a row carries a column (name or type) it does not know, and
//! after `max_age` (the publication refresh interval), which also picks up tables added to the
//! publication later.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::message::{RowChange, Wal2JsonColumn, Wal2JsonMessage};
use crate::error::DecodeError;
use crate::lsn::Lsn;
use crate::pgoutput::decoder::{Image, change, message_text, pick};
use crate::pgoutput::message::{RelationBody, RelationColumn};
use crate::pgoutput::value::{ValueKind, is_json_null, to_json};
use crate::relation::{Relation, TypeCache};
use crate::transaction::{Change, LogicalMessage, Op, Timestamp, Transaction};

/// wal2json writes bytea without the `\x` prefix of PostgreSQL's hex output (only for bytea
/// itself: domains over bytea and bytea arrays keep their text output).
const BYTEA_OID: u32 = 17;

/// What the catalog says about a table, as the stream looked it up.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The table as pgoutput would describe it: OID, replica identity, and the columns it
    /// sends (generated columns left out) with replica-identity key flags.
    pub body: RelationBody,
    /// Primary-key column names in key order (empty when none).
    pub primary_key: Vec<String>,
    /// Every column wal2json sends (generated ones included) with its type OID.
    pub wire: Vec<(String, u32)>,
    /// Columns of the primary key or replica identity index, whatever the identity setting.
    pub index_key: Vec<String>,
    /// Whether the table is in the publication: other tables' changes are dropped, so both
    /// plugins stream the same tables.
    pub published: bool,
}

/// A table ready for decoding.
#[derive(Debug)]
struct Table {
    /// Shape shared with the changes.
    relation: Arc<Relation>,
    /// Type OID per column of `relation`.
    oids: Vec<u32>,
    /// Type OID of every column wal2json sends, by name.
    wire: HashMap<String, u32>,
    /// See [`TableInfo::index_key`].
    index_key: Vec<String>,
    /// See [`TableInfo::published`].
    published: bool,
}

/// A cache entry: the table, or `None` when the catalog did not have it (dropped since).
#[derive(Debug)]
struct Entry {
    /// When it was looked up.
    fetched: Instant,
    /// The table.
    table: Option<Arc<Table>>,
}

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

/// Stateful wal2json decoder: one per stream.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Tables by schema, then name.
    tables: HashMap<String, HashMap<String, Entry>>,
    /// User types resolved so far.
    types: TypeCache,
    /// The open transaction, if any.
    pending: Option<Pending>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The type cache, to fill before applying a message that uses unknown types.
    pub fn types_mut(&mut self) -> &mut TypeCache {
        &mut self.types
    }

    /// Whether a transaction is open (Begin seen, Commit not yet).
    pub fn in_transaction(&self) -> bool {
        self.pending.is_some()
    }

    /// Forgets the open transaction: the next session restarts it. Table shapes come from
    /// the catalog, not the session, so they are kept.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// The table (schema, name) `message` needs looked up before [`Decoder::apply`]: never
    /// seen, looked up more than `max_age` before `now`, or with a column the cache does not
    /// know.
    pub fn needs_table<'m>(
        &self,
        message: &'m Wal2JsonMessage<'_>,
        now: Instant,
        max_age: Duration,
    ) -> Option<(&'m str, &'m str)> {
        let (schema, table, columns) = match message {
            Wal2JsonMessage::Change(c) => (&c.schema, &c.table, c.described_columns()),
            Wal2JsonMessage::Truncate { schema, table } => (schema, table, &[][..]),
            _ => return None,
        };
        let fresh = match self.entry(schema, table) {
            None => false,
            Some(entry) if now.saturating_duration_since(entry.fetched) > max_age => false,
            Some(Entry { table: None, .. }) => true,
            Some(Entry {
                table: Some(known), ..
            }) => columns
                .iter()
                .all(|c| known.wire.get(&*c.name) == Some(&c.typeoid)),
        };
        (!fresh).then_some((schema, table))
    }

    /// Type OIDs used by `message` or `table` that need a catalog lookup.
    pub fn missing_types(
        &self,
        message: &Wal2JsonMessage<'_>,
        table: Option<&TableInfo>,
    ) -> Vec<u32> {
        let from_message = match message {
            Wal2JsonMessage::Change(c) => c.columns.iter().chain(&c.identity),
            _ => [].iter().chain(&[]),
        };
        let mut out: Vec<u32> = from_message
            .map(|c| c.typeoid)
            .chain(
                table
                    .iter()
                    .flat_map(|t| t.wire.iter().map(|(_, oid)| *oid)),
            )
            .filter(|oid| self.types.is_missing(*oid))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Records what the catalog said about a table (`None`: it is gone). Types must be
    /// resolved first (see [`Decoder::missing_types`]).
    pub fn insert_table(
        &mut self,
        schema: &str,
        table: &str,
        info: Option<TableInfo>,
        now: Instant,
    ) {
        let table_entry = info.map(|info| {
            let relation = Relation::new(&info.body, &self.types, Some(&info.primary_key));
            Arc::new(Table {
                relation: Arc::new(relation),
                oids: info.body.columns.iter().map(|c| c.type_oid).collect(),
                wire: info.wire.into_iter().collect(),
                index_key: info.index_key,
                published: info.published,
            })
        });
        self.tables.entry(schema.to_owned()).or_default().insert(
            table.to_owned(),
            Entry {
                fetched: now,
                table: table_entry,
            },
        );
    }

    /// Parses and applies one message without catalog help (tests, fuzzing): unknown tables
    /// are described from the message itself.
    pub fn decode(
        &mut self,
        wal_start: Lsn,
        data: &[u8],
    ) -> Result<Option<Transaction>, DecodeError> {
        let message = Wal2JsonMessage::parse(data)?;
        self.apply(wal_start, message)
    }

    /// Applies one parsed message; returns a transaction when it completes one. Transactions
    /// left without changes (DDL, or only unpublished tables) are dropped, as pgoutput does
    /// from PostgreSQL 15.
    pub fn apply(
        &mut self,
        wal_start: Lsn,
        message: Wal2JsonMessage<'_>,
    ) -> Result<Option<Transaction>, DecodeError> {
        match message {
            Wal2JsonMessage::Begin { xid } => {
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
            Wal2JsonMessage::Commit {
                commit_lsn,
                end_lsn,
                timestamp,
            } => {
                let pending = self
                    .pending
                    .take()
                    .ok_or(DecodeError::OutOfOrder("commit"))?;
                if pending.changes.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Transaction {
                    xid: pending.xid,
                    begin_lsn: pending.begin_lsn,
                    commit_lsn,
                    end_lsn,
                    commit_timestamp: timestamp,
                    changes: pending.changes,
                }))
            }
            Wal2JsonMessage::Change(row) => {
                let what = match row.op {
                    Op::Insert => "insert",
                    Op::Update => "update",
                    _ => "delete",
                };
                if self.pending.is_none() {
                    return Err(DecodeError::OutOfOrder(what));
                }
                match self.row_change(&row)? {
                    Some(change) => self.push(change, what),
                    None => Ok(None),
                }
            }
            Wal2JsonMessage::Truncate { schema, table } => {
                if self.pending.is_none() {
                    return Err(DecodeError::OutOfOrder("truncate"));
                }
                let table = self.table(&schema, &table, &[], &[]);
                if !table.published {
                    return Ok(None);
                }
                let change = change(&table.relation, Op::Truncate, None, None, None, Vec::new());
                self.push(change, "truncate")
            }
            Wal2JsonMessage::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
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
                    message: Some(LogicalMessage {
                        prefix: prefix.into_owned(),
                        content: message_text(content.as_bytes()),
                    }),
                };
                if transactional {
                    return self.push(change, "message");
                }
                // Outside a transaction a message stands alone; its LSN is its position.
                Ok(Some(Transaction {
                    xid: 0,
                    begin_lsn: wal_start,
                    commit_lsn: lsn,
                    end_lsn: lsn,
                    commit_timestamp: Timestamp::default(),
                    changes: vec![change],
                }))
            }
        }
    }

    /// The change for an I/U/D message, `None` when its table is not published.
    fn row_change(&self, row: &RowChange<'_>) -> Result<Option<Change>, DecodeError> {
        let table = self.table(&row.schema, &row.table, row.described_columns(), &row.pk);
        if !table.published {
            return Ok(None);
        }
        let rel = &table.relation;
        Ok(Some(match row.op {
            Op::Insert => {
                let new = self.record(&table, &row.columns)?;
                let primary_key = Some(pick(rel, &new.record));
                let mut insert = change(
                    rel,
                    Op::Insert,
                    Some(new.record),
                    None,
                    primary_key,
                    Vec::new(),
                );
                insert.json_nulls = new.json_nulls;
                // An insert carries every column of its time: columns the catalog has beyond
                // them were added after it (the catalog is read at decode time, not WAL time).
                let record = insert.record.as_ref().map_or(0, Map::len);
                if record < rel.columns.len() {
                    let known = insert.record.as_ref();
                    insert.columns = rel
                        .columns
                        .iter()
                        .filter(|c| known.is_some_and(|r| r.contains_key(&c.name)))
                        .cloned()
                        .collect();
                }
                insert
            }
            Op::Update => {
                let mut new = self.record(&table, &row.columns)?;
                // wal2json leaves unchanged TOAST values out of the new row.
                new.unchanged = rel
                    .columns
                    .iter()
                    .filter(|c| !new.record.contains_key(&c.name))
                    .map(|c| c.name.clone())
                    .collect();
                let primary_key = Some(pick(rel, &new.record));
                let old = if row.identity.is_empty() {
                    None
                } else {
                    let old = self.record(&table, &row.identity)?;
                    // wal2json always sends the old key; pgoutput only when the key changed
                    // (or the old row under REPLICA IDENTITY FULL, recognised by columns
                    // outside the key). Keep the old key only when pgoutput would send it.
                    let full = old.record.keys().any(|k| !table.index_key.contains(k));
                    let changed = old.record.iter().any(|(k, v)| new.record.get(k) != Some(v));
                    (full || changed).then_some(old)
                };
                if let Some(old) = &old {
                    new.fill_unchanged(old);
                }
                let (old_record, old_json_nulls) = match old {
                    Some(old) => (Some(old.record), old.json_nulls),
                    None => (None, Vec::new()),
                };
                let mut update = change(
                    rel,
                    Op::Update,
                    Some(new.record),
                    old_record,
                    primary_key,
                    new.unchanged,
                );
                update.json_nulls = new.json_nulls;
                update.old_json_nulls = old_json_nulls;
                update
            }
            _ => {
                let old = self.record(&table, &row.identity)?;
                let primary_key = Some(pick(rel, &old.record));
                let mut delete = change(
                    rel,
                    Op::Delete,
                    None,
                    Some(old.record),
                    primary_key,
                    Vec::new(),
                );
                delete.old_json_nulls = old.json_nulls;
                delete
            }
        }))
    }

    /// Converts wal2json columns to a JSON object of the table's columns (generated columns,
    /// which pgoutput does not send, are left out), typed like pgoutput's values, with the
    /// json/jsonb columns holding the JSON `null` literal named.
    fn record(&self, table: &Table, columns: &[Wal2JsonColumn<'_>]) -> Result<Image, DecodeError> {
        let rel = &table.relation;
        let mut record = Map::new();
        let mut json_nulls = Vec::new();
        // Both lists are in column order: searching from the last match is usually one step.
        let mut next = 0;
        for column in columns {
            let n = rel.columns.len();
            let Some(i) = (0..n)
                .map(|k| (next + k) % n)
                .find(|&i| rel.columns[i].name == column.name)
            else {
                continue;
            };
            next = i + 1;
            let resolved;
            let kind = if table.oids[i] == column.typeoid {
                &rel.kinds[i]
            } else {
                resolved = self.types.resolve(column.typeoid).1;
                &resolved
            };
            let (value, json_null) = value(column, kind)?;
            if json_null {
                json_nulls.push(column.name.to_string());
            }
            record.insert(column.name.to_string(), value);
        }
        Ok(Image {
            record,
            unchanged: Vec::new(),
            json_nulls,
        })
    }

    /// The cached table, or one described from the message when the catalog has none
    /// (dropped since, or decoding without catalog): delivered rather than lost.
    fn table(
        &self,
        schema: &str,
        table: &str,
        columns: &[Wal2JsonColumn<'_>],
        pk: &[Cow<'_, str>],
    ) -> Arc<Table> {
        if let Some(Entry {
            table: Some(known), ..
        }) = self.entry(schema, table)
        {
            return known.clone();
        }
        let body = RelationBody {
            id: 0,
            schema: schema.to_owned(),
            table: table.to_owned(),
            replica_identity: b'd',
            columns: columns
                .iter()
                .map(|c| RelationColumn {
                    is_key: pk.contains(&c.name),
                    name: c.name.to_string(),
                    type_oid: c.typeoid,
                    type_modifier: -1,
                })
                .collect(),
        };
        let primary_key: Vec<String> = pk.iter().map(|k| k.to_string()).collect();
        Arc::new(Table {
            relation: Arc::new(Relation::new(&body, &self.types, Some(&primary_key))),
            oids: columns.iter().map(|c| c.typeoid).collect(),
            wire: columns
                .iter()
                .map(|c| (c.name.to_string(), c.typeoid))
                .collect(),
            index_key: primary_key,
            published: true,
        })
    }

    /// The cache entry of a table.
    fn entry(&self, schema: &str, table: &str) -> Option<&Entry> {
        self.tables.get(schema)?.get(table)
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

/// One column value as typed JSON, through the same conversion as pgoutput's text values,
/// and whether it is a json/jsonb JSON `null` (wal2json writes it as the string `"null"`,
/// SQL NULL as a bare `null`).
fn value(column: &Wal2JsonColumn<'_>, kind: &ValueKind) -> Result<(Value, bool), DecodeError> {
    Ok(match column.text()? {
        None => (Value::Null, false),
        Some(text) if column.typeoid == BYTEA_OID => (to_json(kind, &format!("\\x{text}")), false),
        Some(text) => (to_json(kind, &text), is_json_null(kind, &text)),
    })
}
