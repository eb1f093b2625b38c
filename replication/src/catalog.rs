//! Catalog lookups the WAL does not carry: base types of user types, primary keys, slot lag.

use postgres_protocol::escape::escape_literal;

use crate::connection::Connection;
use crate::error::Result;
use crate::lsn::Lsn;
use crate::relation::{FIRST_NORMAL_OID, TypeCache, TypeShape, UserType};

/// Rounds of lookups for arrays of user types (array → enum, array → domain → …).
const MAX_TYPE_ROUNDS: usize = 4;

/// Looks up `oids` (and the element types they lead to) in `pg_type` and records them.
/// Domains resolve to their innermost base type; types the catalog no longer has become text.
pub(crate) async fn resolve_types(
    conn: &mut Connection,
    types: &mut TypeCache,
    oids: Vec<u32>,
) -> Result<()> {
    let mut todo = oids;
    for _ in 0..MAX_TYPE_ROUNDS {
        if todo.is_empty() {
            break;
        }
        let list = todo
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "WITH RECURSIVE chain(id, cur, depth) AS ( \
               SELECT oid, oid, 0 FROM pg_type WHERE oid IN ({list}) \
               UNION ALL \
               SELECT c.id, t.typbasetype, c.depth + 1 FROM chain c JOIN pg_type t ON t.oid = c.cur \
               WHERE t.typtype = 'd' AND c.depth < 16) \
             SELECT c.id::text AS id, (SELECT typname FROM pg_type WHERE oid = c.id)::text AS name, \
                    b.oid::text AS base, b.typcategory::text AS category, b.typelem::text AS elem \
             FROM chain c JOIN pg_type b ON b.oid = c.cur WHERE b.typtype <> 'd'"
        );
        let rows = conn.simple_query(&sql).await?;
        let mut next = Vec::new();
        for row in &rows {
            let num = |name| {
                row.get(name)
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            let (id, base, elem) = (num("id"), num("base"), num("elem"));
            let shape = if base < FIRST_NORMAL_OID {
                TypeShape::Base(base)
            } else if row.get("category") == Some("A") && elem != 0 {
                if types.is_missing(elem) && !todo.contains(&elem) {
                    next.push(elem);
                }
                TypeShape::ArrayOf(elem)
            } else {
                TypeShape::Text
            };
            types.insert(
                id,
                UserType {
                    name: row.get("name").unwrap_or_default().to_owned(),
                    shape,
                },
            );
        }
        for oid in &todo {
            if types.is_missing(*oid) {
                types.insert(
                    *oid,
                    UserType {
                        name: oid.to_string(),
                        shape: TypeShape::Text,
                    },
                );
            }
        }
        next.sort_unstable();
        next.dedup();
        todo = next;
    }
    Ok(())
}

/// Primary-key column names of a table, in key order; empty when it has none (or is gone).
pub(crate) async fn primary_key(conn: &mut Connection, relation_id: u32) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT a.attname::text AS name FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = {relation_id} AND i.indisprimary \
         ORDER BY array_position(i.indkey::int2[], a.attnum)"
    );
    let rows = conn.simple_query(&sql).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get("name").map(str::to_owned))
        .collect())
}

/// The slot's confirmed flush LSN and how many WAL bytes the server holds beyond it;
/// `None` when the slot does not exist.
pub(crate) async fn slot_lag(conn: &mut Connection, slot: &str) -> Result<Option<(Lsn, u64)>> {
    let sql = format!(
        "SELECT confirmed_flush_lsn::text AS confirmed, \
                GREATEST(pg_current_wal_lsn() - confirmed_flush_lsn, 0)::bigint::text AS lag \
         FROM pg_replication_slots WHERE slot_name = {}",
        escape_literal(slot)
    );
    let rows = conn.simple_query(&sql).await?;
    Ok(rows.first().map(|row| {
        let confirmed = row
            .get("confirmed")
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let lag = row.get("lag").and_then(|v| v.parse().ok()).unwrap_or(0);
        (confirmed, lag)
    }))
}
