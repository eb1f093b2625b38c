//! Row versions as policies and filters read them, and their completion with unchanged TOAST
//! values.
//!
//! A decoded row is a JSON object in which both SQL NULL and the JSON `null` literal of a
//! json/jsonb column are `null`; [`RowRef`] carries the list of json/jsonb columns holding
//! the literal, so `IS NULL` decides as PostgreSQL does. A column absent from the object is
//! an unchanged TOAST value the stream did not send: unknown, never NULL.
//!
//! [`complete`] recovers the absent columns a filter or policy needs, exactly where it can:
//! from an earlier image of the same row in the same transaction (an INSERT carries every
//! value), or else from the row itself, read by primary key (only those columns) on the
//! engine's own pool. Reading the row races with later writers; see [`complete`].

use serde_json::{Map, Value};

use super::conn::Conn;
use super::fallback;
use fluxbase_replication::{Change, Op, Transaction};

/// A row version: values, and which `null`s are JSON `null` literals.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    /// Column → decoded value; absent columns are unknown.
    pub values: &'a Map<String, Value>,
    /// json/jsonb columns whose `null` in `values` is the JSON literal, not SQL NULL.
    pub json_nulls: &'a [String],
}

impl<'a> RowRef<'a> {
    /// A row without JSON `null` literals.
    pub fn plain(values: &'a Map<String, Value>) -> RowRef<'a> {
        RowRef {
            values,
            json_nulls: &[],
        }
    }

    /// Whether `column` holds the JSON `null` literal.
    pub fn is_json_null(&self, column: &str) -> bool {
        self.json_nulls.iter().any(|c| c == column)
    }

    /// `column IS NULL` as PostgreSQL answers it; `None` when the column is unknown.
    pub fn is_sql_null(&self, column: &str) -> Option<bool> {
        self.values
            .get(column)
            .map(|v| v.is_null() && !self.is_json_null(column))
    }
}

/// A row version completed for judging.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    /// The decoded values plus what could be recovered exactly.
    pub values: Map<String, Value>,
    /// json/jsonb JSON `null` literals among `values`.
    pub json_nulls: Vec<String>,
    /// Values read from a later version of the row (see [`complete`]): filters may use them
    /// (routing only), policies must not.
    pub racy: Map<String, Value>,
    /// JSON `null` literals among `racy`.
    pub racy_json_nulls: Vec<String>,
}

impl Completed {
    /// The version as decoded, nothing recovered.
    pub fn decoded(values: &Map<String, Value>, json_nulls: &[String]) -> Completed {
        Completed {
            values: values.clone(),
            json_nulls: json_nulls.to_vec(),
            ..Completed::default()
        }
    }

    /// What policies read: exact values only.
    pub fn exact(&self) -> RowRef<'_> {
        RowRef {
            values: &self.values,
            json_nulls: &self.json_nulls,
        }
    }

    /// What filters read: exact values plus racy ones, owned.
    pub fn for_filters(&self) -> (Map<String, Value>, Vec<String>) {
        let mut values = self.values.clone();
        values.extend(self.racy.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut json_nulls = self.json_nulls.clone();
        json_nulls.extend(self.racy_json_nulls.iter().cloned());
        (values, json_nulls)
    }
}

/// The row an event is judged on: the new row of an INSERT/UPDATE, the old one of a DELETE.
pub fn event_row(change: &Change) -> Option<(&Map<String, Value>, &[String])> {
    match change.op {
        Op::Insert | Op::Update => Some((change.record.as_ref()?, &change.json_nulls)),
        Op::Delete => Some((change.old_record.as_ref()?, &change.old_json_nulls)),
        _ => None,
    }
}

/// Recovers the `needed` columns absent from `change`'s row.
///
/// 1. An earlier change of the same row in the same transaction that carries the column
///    (an INSERT carries every value; an UPDATE the ones it did not leave untouched): the
///    value is unchanged since, so it is exact.
/// 2. Otherwise the row is read by primary key, only those columns, after the transaction
///    is visible. The race: the row may have been written again since the event, by a later
///    transaction (or later in this one). A value read from the version this transaction
///    wrote (`xmin` = the event's xid) that no later change of this transaction rewrote is
///    the event's value, exact (a version written inside a savepoint carries the
///    subtransaction's xid and counts as inexact). Any other value may belong to a later
///    version: it is kept
///    as *racy*, good enough to route by a filter, never used to decide visibility (the
///    policy then cannot be decided and the event is withheld from RLS-subject
///    subscribers). If the row is gone (deleted since), nothing is recovered: filters on
///    the column do not match and policies reading it withhold the event.
///
/// Failures to read are logged and leave the columns unknown (the safe side).
pub async fn complete(
    conn: &mut Conn<'_>,
    tx: &Transaction,
    change: &Change,
    needed: &[String],
) -> Completed {
    let Some((row, json_nulls)) = event_row(change) else {
        return Completed::default();
    };
    let mut out = Completed::decoded(row, json_nulls);
    let mut missing: Vec<String> = needed
        .iter()
        .filter(|c| !row.contains_key(*c))
        .cloned()
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return out;
    }
    let Some(pk) = change.primary_key.as_ref() else {
        return out;
    };
    let position = tx
        .changes
        .iter()
        .position(|c| std::ptr::eq(c, change))
        .unwrap_or(tx.changes.len());
    let same_row =
        |c: &Change| c.relation_id == change.relation_id && c.primary_key.as_ref() == Some(pk);
    // 1. Carried forward from an earlier image of this transaction.
    missing.retain(|column| {
        let earlier = tx.changes[..position]
            .iter()
            .rev()
            .filter(|c| same_row(c))
            .find_map(|c| {
                let (values, nulls) = event_row(c)?;
                values
                    .get(column)
                    .map(|v| (v.clone(), nulls.contains(column)))
            });
        match earlier {
            Some((value, json_null)) => {
                if json_null {
                    out.json_nulls.push(column.clone());
                }
                out.values.insert(column.clone(), value);
                false
            }
            None => true,
        }
    });
    if missing.is_empty() {
        return out;
    }
    // 2. Read from the row.
    let client = match conn.client().await {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(error = %err, "unchanged toast values not read: no connection");
            return out;
        }
    };
    let fetched =
        match fallback::fetch_columns(client, change.relation_id, pk, &missing, tx.xid).await {
            Ok(Some(fetched)) => fetched,
            Ok(None) => return out,
            Err(err) => {
                tracing::warn!(error = %err, "unchanged toast values not read");
                return out;
            }
        };
    let same_version = fetched.xmin == tx.xid.to_string();
    for (column, value) in fetched.values {
        let rewritten_later = tx.changes[position + 1..]
            .iter()
            .any(|c| same_row(c) && c.record.as_ref().is_some_and(|r| r.contains_key(&column)));
        let json_null = fetched.json_nulls.contains(&column);
        if same_version && !rewritten_later {
            if json_null {
                out.json_nulls.push(column.clone());
            }
            out.values.insert(column, value);
        } else {
            if json_null {
                out.racy_json_nulls.push(column.clone());
            }
            out.racy.insert(column, value);
        }
    }
    out
}
