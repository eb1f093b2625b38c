//! Writing what a node selects: its JSON object (built by PostgreSQL with
//! `json_build_object`, keys bound as parameters, or `row_to_json` for a whole row), the
//! value of each key, and embeds as correlated subqueries — `json_agg` of the child's
//! objects for to-many, the child's object for to-one, one scalar subquery per key for a
//! spread. Subqueries sit in the select list so PostgreSQL evaluates them only for the
//! rows that survive `LIMIT`.

use super::filter::conditions;
use super::order::{group_by, order_by, range};
use super::sql::Sql;
use super::tree::{Child, Col, Item, Node, Source, Value};
use crate::rest::field::{JsonArrow, JsonOperand};
use crate::rest::select::AggregateFunction;

/// `json_build_object` takes at most 100 arguments: 50 keys per call.
const KEYS_PER_OBJECT: usize = 50;

/// Writes a column reference with its JSON path (and cast, when `cast`).
pub(crate) fn col(sql: &mut Sql, alias: u32, col: &Col, cast: bool) {
    let cast = if cast { col.cast } else { None };
    if cast.is_some() {
        sql.push("CAST(");
    }
    sql.column(alias, col.name);
    for step in col.path {
        sql.push(match step.arrow {
            JsonArrow::Json => "->",
            JsonArrow::Text => "->>",
        });
        match &step.operand {
            JsonOperand::Key(key) => sql.param_as(key.as_str(), "text"),
            JsonOperand::Index(index) => sql.param_as(index.to_string(), "int4"),
        }
    }
    if let Some(ty) = cast {
        sql.push(" AS ");
        sql.push(ty);
        sql.push(")");
    }
}

/// Writes the value of one key of `node`.
pub(crate) fn value(sql: &mut Sql, node: &Node, v: &Value) {
    match v {
        Value::Column(c) => col(sql, node.alias, c, true),
        Value::Aggregate {
            function,
            field,
            result_cast,
        } => {
            if result_cast.is_some() {
                sql.push("CAST(");
            }
            sql.push(match function {
                AggregateFunction::Count => "count(",
                AggregateFunction::Sum => "sum(",
                AggregateFunction::Avg => "avg(",
                AggregateFunction::Max => "max(",
                AggregateFunction::Min => "min(",
            });
            match field {
                Some(c) => col(sql, node.alias, c, true),
                None => sql.push("*"),
            }
            sql.push(")");
            if let Some(ty) = result_cast {
                sql.push(" AS ");
                sql.push(ty);
                sql.push(")");
            }
        }
        Value::Embed(index) => embed(sql, node, *index),
        Value::Spread {
            embed,
            value: inner,
        } => {
            let child = &node.embeds[*embed];
            sql.push("(SELECT ");
            value(sql, &child.node, inner);
            from_where(sql, child, node.alias);
            sql.push(")");
        }
    }
}

/// Writes the JSON object of one row of `node`; returns, for an aggregated node, the text
/// of each grouped value (for [`group_by`]).
pub(crate) fn object(sql: &mut Sql, node: &Node) -> Vec<String> {
    let mut groups = Vec::new();
    if let Source::Call(call) = node.source
        && call.scalar
    {
        sql.push("to_json(");
        sql.alias(node.alias);
        sql.push(".v)");
        return groups;
    }
    if node.whole_row {
        sql.push("row_to_json(");
        sql.alias(node.alias);
        sql.push(")");
        return groups;
    }
    let chunks: Vec<&[Item]> = node.items.chunks(KEYS_PER_OBJECT).collect();
    match chunks.as_slice() {
        [] => sql.push("json_build_object()"),
        [one] => build_object(sql, node, one, &mut groups),
        many => {
            // Objects of more than 50 keys: the texts of several objects spliced into one,
            // so keys keep their order (jsonb concatenation would sort them).
            sql.push("(");
            let last = many.len() - 1;
            for (i, chunk) in many.iter().enumerate() {
                if i > 0 {
                    sql.push(" || ', ' || ");
                }
                match i {
                    0 => sql.push("left("),
                    _ if i == last => sql.push("substr("),
                    _ => sql.push("left(substr("),
                }
                build_object(sql, node, chunk, &mut groups);
                match i {
                    0 => sql.push("::text, -1)"),
                    _ if i == last => sql.push("::text, 2)"),
                    _ => sql.push("::text, 2), -1)"),
                }
            }
            sql.push(")::json");
        }
    }
    groups
}

/// `json_build_object($k::text, value, …)` of `items`.
fn build_object(sql: &mut Sql, node: &Node, items: &[Item], groups: &mut Vec<String>) {
    sql.push("json_build_object(");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.param_as(item.key.as_str(), "text");
        sql.push(", ");
        grouped_value(sql, node, item, groups);
    }
    sql.push(")");
}

/// Writes an item's value, remembering its text when the node groups by it.
fn grouped_value(sql: &mut Sql, node: &Node, item: &Item, groups: &mut Vec<String>) {
    let start = sql.text.len();
    value(sql, node, &item.value);
    if node.aggregated && matches!(item.value, Value::Column(_)) {
        groups.push(sql.text[start..].to_owned());
    }
}

/// Writes the values of `node`'s keys as columns `c0`, `c1`… (for CSV); returns the
/// grouped values as [`object`] does.
pub(crate) fn columns(sql: &mut Sql, node: &Node) -> Vec<String> {
    let mut groups = Vec::new();
    if let Source::Call(call) = node.source
        && call.scalar
    {
        sql.alias(node.alias);
        sql.push(".v AS c0");
        return groups;
    }
    for (i, item) in node.items.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        grouped_value(sql, node, item, &mut groups);
        sql.push(&format!(" AS c{i}"));
    }
    if node.items.is_empty() {
        sql.push("NULL AS c0");
    }
    groups
}

/// Writes the embed `index` of `parent`: an array of objects, or an object (or null).
fn embed(sql: &mut Sql, parent: &Node, index: usize) {
    let child = &parent.embeds[index];
    let node = &child.node;
    if child.to_one {
        sql.push("(SELECT ");
        let groups = object(sql, node);
        from_where(sql, child, parent.alias);
        group_by(sql, &groups);
        sql.push(")");
        return;
    }
    sql.push("coalesce((SELECT json_agg(q.j) FROM (SELECT ");
    let groups = object(sql, node);
    sql.push(" AS j");
    from_where(sql, child, parent.alias);
    group_by(sql, &groups);
    order_by(sql, node, node.alias);
    range(sql, node.range);
    sql.push(") q), '[]'::json)");
}

/// ` FROM child [JOIN junction] WHERE <link> AND <child's conditions>`, correlated with
/// the parent aliased `parent_alias`.
pub(crate) fn from_where(sql: &mut Sql, child: &Child, parent_alias: u32) {
    let node = &child.node;
    sql.push(" FROM ");
    from_item(sql, node);
    let mut first = true;
    let mut and = |sql: &mut Sql| {
        sql.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    match &child.link.junction {
        Some(j) => {
            sql.push(" JOIN ");
            sql.relation(j.relation);
            sql.push(" ");
            sql.alias(j.alias);
            sql.push(" ON ");
            for (i, (child_col, junction_col)) in j.child_pairs.iter().enumerate() {
                if i > 0 {
                    sql.push(" AND ");
                }
                sql.column(j.alias, junction_col);
                sql.push(" = ");
                sql.column(node.alias, child_col);
            }
            for (parent_col, junction_col) in &j.parent_pairs {
                and(sql);
                sql.column(j.alias, junction_col);
                sql.push(" = ");
                sql.column(parent_alias, parent_col);
            }
        }
        None => {
            for (parent_col, child_col) in &child.link.pairs {
                and(sql);
                sql.column(node.alias, child_col);
                sql.push(" = ");
                sql.column(parent_alias, parent_col);
            }
        }
    }
    if has_conditions(node) {
        and(sql);
        conditions(sql, node, node.alias);
    }
}

/// Whether `node` has conditions of its own (filters or `!inner` embeds).
pub(crate) fn has_conditions(node: &Node) -> bool {
    !node.conds.is_empty() || node.inner_embeds().next().is_some()
}

/// `"schema"."table" rN`, or `src rN` for the rows of a write or a call.
pub(crate) fn from_item(sql: &mut Sql, node: &Node) {
    match node.source {
        Source::Relation(relation) => sql.relation(relation),
        Source::Written(_) | Source::Call(_) => sql.push("src"),
    }
    sql.push(" ");
    sql.alias(node.alias);
}

/// `EXISTS (SELECT 1 FROM child … WHERE …)` for the embed `index` of `parent`.
pub(crate) fn exists(sql: &mut Sql, parent: &Node, parent_alias: u32, index: usize) {
    sql.push("EXISTS (SELECT 1");
    from_where(sql, &parent.embeds[index], parent_alias);
    sql.push(")");
}
