//! The outer query every statement ends with, and reads of tables and views.
//!
//! ```sql
//! SELECT <total>::int8, count(*)::int8, <body>, <location>, <inserted>
//! FROM (SELECT <object> AS j FROM <source> r0 WHERE … GROUP BY … ORDER BY … LIMIT $n) q
//! ```
//!
//! PostgreSQL builds the whole response body (`json_agg`, or CSV lines with
//! `string_agg`), so the server copies one text value into the response. The result has
//! the same five columns for every request, so a prepared statement never changes result
//! type when a table does.

use super::filter::conditions;
use super::order::{group_by, order_by, range};
use super::select::{columns, from_item, has_conditions, object};
use super::sql::Sql;
use super::tree::Node;
use super::{BodyMode, Plan, PlanKind};
use crate::rest::media::MediaType;
use crate::rest::prefer::CountPreference;
use crate::rest::request::ApiRequest;

/// What the first column (`Content-Range`'s total) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Total {
    /// Nothing counted.
    None,
    /// The page's own count: no range restricts the rows.
    Page,
    /// `count(*)` of every row the conditions select.
    Exact,
    /// `count(*)` up to this many rows (`count=estimated` under `rest.max_rows`).
    UpTo(u64),
}

/// How the outer query is written.
pub(crate) struct Outer<'s> {
    /// The total column.
    pub total: Total,
    /// The body column.
    pub body: BodyMode,
    /// `nulls=stripped`.
    pub strip_nulls: bool,
    /// Apply the node's conditions, grouping and range (reads); a write's representation
    /// only orders the rows it returned.
    pub filtered: bool,
    /// Primary-key columns for a `Location` header.
    pub location: Option<&'s [String]>,
    /// Read the count of inserted rows of an upsert.
    pub inserted: bool,
}

/// Writes the outer query over `node`.
pub(crate) fn outer(sql: &mut Sql, node: &Node, outer: &Outer) {
    sql.push("SELECT ");
    match outer.total {
        Total::None => sql.push("NULL::int8"),
        Total::Page => sql.push("count(*)::int8"),
        Total::Exact => {
            sql.push("(SELECT count(*) FROM ");
            from_item(sql, node);
            where_clause(sql, node);
            sql.push(")::int8");
        }
        Total::UpTo(limit) => {
            sql.push("(SELECT count(*) FROM (SELECT 1 FROM ");
            from_item(sql, node);
            where_clause(sql, node);
            sql.push(" LIMIT ");
            sql.number(limit);
            sql.push(") c)::int8");
        }
    }
    sql.push(", count(*)::int8, ");
    body(sql, node, outer);
    match outer.location {
        Some(keys) => {
            sql.push(", (SELECT ARRAY[");
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.column(node.alias, key);
                sql.push("::text");
            }
            sql.push("] FROM src ");
            sql.alias(node.alias);
            sql.push(" LIMIT 1)");
        }
        None => sql.push(", NULL::text[]"),
    }
    if outer.inserted {
        sql.push(
            ", nullif(pg_catalog.current_setting('fluxbase.inserted', true), '')::int4 FROM (SELECT ",
        );
    } else {
        sql.push(", NULL::int4 FROM (SELECT ");
    }
    let groups = match outer.body {
        BodyMode::Csv => columns(sql, node),
        BodyMode::None if !node.aggregated => {
            sql.push("NULL");
            Vec::new()
        }
        _ => object(sql, node),
    };
    if outer.body != BodyMode::Csv {
        sql.push(" AS j");
    }
    sql.push(" FROM ");
    from_item(sql, node);
    if outer.filtered {
        where_clause(sql, node);
        group_by(sql, &groups);
    }
    if outer.filtered || outer.body != BodyMode::None {
        order_by(sql, node, node.alias);
    }
    if outer.filtered {
        range(sql, node.range);
    }
    sql.push(") q");
}

/// ` WHERE …` of a node's own conditions (nothing when there are none).
pub(crate) fn where_clause(sql: &mut Sql, node: &Node) {
    if has_conditions(node) {
        sql.push(" WHERE ");
        conditions(sql, node, node.alias);
    }
}

/// The body column.
fn body(sql: &mut Sql, node: &Node, outer: &Outer) {
    let agg = if outer.strip_nulls {
        "json_strip_nulls(json_agg(q.j))"
    } else {
        "json_agg(q.j)"
    };
    match outer.body {
        BodyMode::None => sql.push("NULL::text"),
        BodyMode::Array => {
            sql.push("coalesce(");
            sql.push(agg);
            sql.push(", '[]')::text");
        }
        BodyMode::First => {
            sql.push("coalesce((");
            sql.push(agg);
            sql.push("->0)::text, 'null')");
        }
        BodyMode::Csv => {
            let n = csv_width(node);
            sql.push("coalesce(string_agg(");
            for i in 0..n {
                if i > 0 {
                    sql.push(" || ',' || ");
                }
                let c = format!("q.c{i}::text");
                sql.push(&format!(
                    "coalesce(CASE WHEN {c} ~ '[\",[:cntrl:]]' OR {c} = '' THEN '\"' || \
                     replace({c}, '\"', '\"\"') || '\"' ELSE {c} END, '')"
                ));
            }
            sql.push(", chr(10)), '')");
        }
    }
}

/// How many columns a CSV line has.
fn csv_width(node: &Node) -> usize {
    node.items.len().max(1)
}

/// A CSV field as written by [`body`]: quoted when it holds a quote, a comma, a control
/// character, or is empty.
pub(crate) fn csv_field(text: &str) -> String {
    if text.is_empty() || text.chars().any(|c| c == '"' || c == ',' || c.is_control()) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The CSV header line (with its newline) of `node`'s keys.
pub(crate) fn csv_header(node: &Node, scalar_name: &str) -> String {
    let mut keys: Vec<String> = node.items.iter().map(|i| csv_field(&i.key)).collect();
    if keys.is_empty() {
        keys.push(csv_field(scalar_name));
    }
    let mut line = keys.join(",");
    line.push('\n');
    line
}

/// `EXPLAIN (FORMAT JSON) SELECT 1 FROM … WHERE …`: the planner's estimate of the rows a
/// request's conditions select (`count=planned`), sent in the same round trip.
pub(crate) fn explain(node: &Node, prefix: impl FnOnce(&mut Sql)) -> Sql {
    let mut sql = Sql::default();
    sql.push("EXPLAIN (FORMAT JSON) ");
    prefix(&mut sql);
    sql.push("SELECT 1 FROM ");
    from_item(&mut sql, node);
    where_clause(&mut sql, node);
    sql
}

/// The total and the planner statement for a read of `node` under `count`.
pub(crate) fn counting(
    node: &Node,
    count: Option<CountPreference>,
    max_rows: Option<u64>,
    prefix: impl FnOnce(&mut Sql),
) -> (Total, Option<Sql>) {
    let exact = if node.range.is_all() && !node.aggregated {
        Total::Page
    } else {
        Total::Exact
    };
    match count {
        None => (Total::None, None),
        Some(CountPreference::Exact) => (exact, None),
        Some(CountPreference::Planned) => (Total::None, Some(explain(node, prefix))),
        Some(CountPreference::Estimated) => match max_rows {
            Some(max) => (
                Total::UpTo(max.saturating_add(1)),
                Some(explain(node, prefix)),
            ),
            None => (exact, None),
        },
    }
}

/// The plan of a read of a table or view (`GET`/`HEAD`).
pub(crate) fn table(
    request: &ApiRequest,
    node: &Node,
    head: bool,
    max_rows: Option<u64>,
    relation: &str,
) -> Plan {
    let (total, explain) = counting(node, request.preferences.count, max_rows, |_| {});
    let (body, strip_nulls) = body_mode(request.accept, head, BodyMode::Array);
    let mut sql = Sql::default();
    outer(
        &mut sql,
        node,
        &Outer {
            total,
            body,
            strip_nulls,
            filtered: true,
            location: None,
            inserted: false,
        },
    );
    Plan {
        main: sql,
        explain,
        read_only: true,
        kind: PlanKind::Read,
        body,
        media: request.accept,
        csv_header: (body == BodyMode::Csv).then(|| csv_header(node, relation)),
        range: node.range,
        count: request.preferences.count,
        max_rows,
        relation: relation.to_owned(),
        location_keys: Vec::new(),
        keyed: false,
        head,
    }
}

/// The body mode and null stripping for a media type; `default` for JSON.
pub(crate) fn body_mode(media: MediaType, head: bool, default: BodyMode) -> (BodyMode, bool) {
    if head {
        return (BodyMode::None, false);
    }
    match media {
        MediaType::Csv => (BodyMode::Csv, false),
        MediaType::JsonStripNulls | MediaType::SingleObject { strip_nulls: true } => {
            (default, true)
        }
        MediaType::Json | MediaType::SingleObject { strip_nulls: false } => (default, false),
    }
}
