//! Catalog lookups the WAL does not carry: base types of user types, primary keys, slot lag.

use postgres_protocol::escape::escape_literal;

use crate::connection::Connection;
use crate::error::Result;
use crate::lsn::Lsn;
use crate::pgoutput::message::{RelationBody, RelationColumn};
use crate::relation::{FIRST_NORMAL_OID, TypeCache, TypeShape, UserType};
use crate::wal2json::TableInfo;

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

/// A table's shape as pgoutput would describe it, plus what wal2json needs; `None` when the
/// catalog has no such table.
pub(crate) async fn table(
    conn: &mut Connection,
    publication: &str,
    schema: &str,
    table: &str,
) -> Result<Option<TableInfo>> {
    let (schema_lit, table_lit) = (escape_literal(schema), escape_literal(table));
    // `ident_key`: the columns pgoutput flags as key (replica identity index, all under FULL);
    // `index_key`: primary key or identity index columns whatever the setting.
    let sql = format!(
        "WITH rel AS (SELECT c.oid, c.relreplident FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = {schema_lit} AND c.relname = {table_lit}) \
         SELECT rel.oid::text AS id, rel.relreplident::text AS ident, \
           EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = {pub} \
                   AND p.schemaname = {schema_lit} AND p.tablename = {table_lit})::text AS published, \
           a.attname::text AS name, a.atttypid::text AS type, a.atttypmod::text AS typmod, \
           (a.attgenerated <> '')::text AS generated, \
           (rel.relreplident = 'f' OR a.attnum = ANY (SELECT unnest(i.indkey) FROM pg_index i \
              WHERE i.indrelid = rel.oid AND ((rel.relreplident = 'd' AND i.indisprimary) \
              OR (rel.relreplident = 'i' AND i.indisreplident))))::text AS ident_key, \
           (a.attnum = ANY (SELECT unnest(i.indkey) FROM pg_index i \
              WHERE i.indrelid = rel.oid AND (i.indisprimary OR i.indisreplident)))::text AS index_key \
         FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
        pub = escape_literal(publication),
    );
    let rows = conn.simple_query(&sql).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let flag = |row: &crate::connection::Row, name| row.get(name) == Some("true");
    let id: u32 = first.get("id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut info = TableInfo {
        body: RelationBody {
            id,
            schema: schema.to_owned(),
            table: table.to_owned(),
            replica_identity: first
                .get("ident")
                .and_then(|v| v.bytes().next())
                .unwrap_or(b'd'),
            columns: Vec::with_capacity(rows.len()),
        },
        primary_key: Vec::new(),
        wire: Vec::with_capacity(rows.len()),
        index_key: Vec::new(),
        published: flag(first, "published"),
    };
    for row in &rows {
        let name = row.get("name").unwrap_or_default().to_owned();
        let type_oid = row.get("type").and_then(|v| v.parse().ok()).unwrap_or(0);
        info.wire.push((name.clone(), type_oid));
        if flag(row, "index_key") {
            info.index_key.push(name.clone());
        }
        // pgoutput does not send generated columns.
        if !flag(row, "generated") {
            info.body.columns.push(RelationColumn {
                is_key: flag(row, "ident_key"),
                name,
                type_oid,
                type_modifier: row.get("typmod").and_then(|v| v.parse().ok()).unwrap_or(-1),
            });
        }
    }
    info.primary_key = primary_key(conn, id).await?;
    Ok(Some(info))
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
