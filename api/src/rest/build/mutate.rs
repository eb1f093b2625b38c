//! Writes: POST (insert, upsert), PUT (one row by primary key), PATCH and DELETE, each one
//! data-modifying statement whose rows feed the representation:
//!
//! ```sql
//! WITH src AS (
//!   INSERT INTO "s"."t" AS r1 ("a", "b")
//!   SELECT r2."a", r2."b" FROM json_to_recordset($1::json) AS r2("a" integer, "b" text)
//!   ON CONFLICT ("id") DO UPDATE SET "a" = EXCLUDED."a" …
//!   RETURNING r1."id", r1."a"
//! ) SELECT … FROM (SELECT json_build_object(…) AS j FROM src r0) q
//! ```
//!
//! The body is one `json` parameter however many rows it holds (10,000 rows are one
//! parameter, not 10,000); its keys become the column list, typed from the snapshot. A
//! write returns only the columns its representation needs (`RETURNING 1` without one, so
//! a caller who may insert but not read can still insert).

use fluxbase_migrations::schema::{Relation, RelationKind};

use super::filter::conditions;
use super::order::{order_by, range};
use super::read::{Outer, Total, body_mode, outer};
use super::resolve::Resolver;
use super::select::has_conditions;
use super::sql::Sql;
use super::tree::{Child, Cond, Node, Source, Value};
use super::{BodyMode, Plan, PlanKind, key_cond};
use crate::rest::catalog_error::CatalogError;
use crate::rest::error::RestError;
use crate::rest::filter::{Operation, Operator};
use crate::rest::payload::{JsonShape, Payload};
use crate::rest::prefer::{Missing, Resolution, ReturnPreference};
use crate::rest::request::ApiRequest;
use crate::rest::target::Action;

/// Adds one to the count of inserted rows of an upsert (PostgREST's `pgrst.inserted`): the
/// candidate rows pass it, conflicting ones take one off again.
const COUNT_INSERTED: &str = "pg_catalog.set_config('fluxbase.inserted', (coalesce(nullif(\
     pg_catalog.current_setting('fluxbase.inserted', true), '')::int, 0) + 1)::text, true) <> '0'";

/// Takes one off the count of inserted rows for each row an upsert updated instead.
const COUNT_UPDATED: &str = "pg_catalog.set_config('fluxbase.inserted', (coalesce(nullif(\
     pg_catalog.current_setting('fluxbase.inserted', true), '')::int, 0) - 1)::text, true) <> '-1'";

/// The checked JSON body of a write.
struct Body<'a> {
    /// The JSON text.
    text: String,
    /// An array of objects (else one object).
    array: bool,
    /// The columns its keys name.
    columns: Vec<&'a fluxbase_migrations::schema::Column>,
}

/// Builds the plan of a write on `relation`.
pub(super) fn write<'a>(
    request: &'a ApiRequest,
    action: Action,
    relation: &'a Relation,
    key: Option<&'a str>,
    payload: Option<Payload>,
    resolver: &mut Resolver<'a>,
) -> Result<Plan, RestError> {
    let mut node = resolver.node(&request.query, Source::Written(relation), 0, false)?;
    if let Some(key) = key {
        node.conds.push(key_cond(relation, key)?);
    }
    let prefs = &request.preferences;
    let representation = prefs.return_ == Some(ReturnPreference::Representation);
    let location = action == Action::Insert && prefs.return_ == Some(ReturnPreference::HeadersOnly);
    let location_keys: Vec<String> = if location {
        relation.primary_key_columns().to_vec()
    } else {
        Vec::new()
    };
    let mut returning: Vec<&str> = Vec::new();
    if representation {
        needed_columns(&node, relation, &mut returning);
    }
    for k in &location_keys {
        push_unique(&mut returning, k);
    }
    let target = resolver.alias();
    let body_alias = resolver.alias();
    let body = match action {
        Action::Insert | Action::Update | Action::Upsert => Some(body(payload, relation)?),
        _ => None,
    };
    let defaults = prefs.missing == Some(Missing::Default);

    let mut sql = Sql::default();
    sql.push("WITH src AS (");
    let kind = match (action, body) {
        (Action::Insert, Some(mut body)) => {
            let conflict = conflict_target(request, relation)?;
            let merge =
                prefs.resolution == Some(Resolution::MergeDuplicates) && !conflict.is_empty();
            insert(&mut sql, relation, target, body_alias, &mut body, defaults);
            if merge {
                sql.push(" WHERE ");
                sql.push(COUNT_INSERTED);
            }
            if !conflict.is_empty() {
                on_conflict(&mut sql, &conflict, &body, merge);
            }
            PlanKind::Insert { merge }
        }
        (Action::Upsert, Some(mut body)) => {
            check_put(&node, relation)?;
            insert(&mut sql, relation, target, body_alias, &mut body, defaults);
            sql.push(" WHERE ");
            sql.push(COUNT_INSERTED);
            sql.push(" AND ");
            conditions(&mut sql, &node, body_alias);
            let pk: Vec<&str> = relation
                .primary_key_columns()
                .iter()
                .map(String::as_str)
                .collect();
            on_conflict(&mut sql, &pk, &body, true);
            PlanKind::Put
        }
        (Action::Update, Some(body)) if body.columns.is_empty() => {
            // Nothing to set: select no rows, so the response is an empty representation.
            sql.push("SELECT ");
            returning_list(&mut sql, target, &returning);
            sql.push(" FROM ");
            sql.relation(relation);
            sql.push(" ");
            sql.alias(target);
            sql.push(" WHERE false)");
            return finish(
                request,
                sql,
                &node,
                relation,
                PlanKind::Update,
                location_keys,
            );
        }
        (Action::Update, Some(mut body)) => {
            sql.push("UPDATE ");
            sql.relation(relation);
            sql.push(" AS ");
            sql.alias(target);
            sql.push(" SET ");
            for (i, column) in body.columns.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.ident(&column.name);
                sql.push(" = ");
                sql.column(body_alias, &column.name);
            }
            sql.push(" FROM ");
            source(&mut sql, body_alias, &mut body, defaults);
            affected(&mut sql, &node, relation, target, resolver.alias())?;
            PlanKind::Update
        }
        (Action::Delete, None) => {
            sql.push("DELETE FROM ");
            sql.relation(relation);
            sql.push(" AS ");
            sql.alias(target);
            affected(&mut sql, &node, relation, target, resolver.alias())?;
            PlanKind::Delete
        }
        _ => {
            return Err(RestError::InvalidPath {
                reason: "this method does not write a table".to_owned(),
            });
        }
    };
    sql.push(" RETURNING ");
    returning_list(&mut sql, target, &returning);
    sql.push(")");
    finish(request, sql, &node, relation, kind, location_keys)
}

/// Appends the outer query and assembles the plan.
fn finish(
    request: &ApiRequest,
    mut sql: Sql,
    node: &Node,
    relation: &Relation,
    kind: PlanKind,
    location_keys: Vec<String>,
) -> Result<Plan, RestError> {
    let representation = request.preferences.return_ == Some(ReturnPreference::Representation);
    let (body, strip_nulls) = if representation {
        body_mode(request.accept, false, BodyMode::Array)
    } else {
        (BodyMode::None, false)
    };
    let location = (!location_keys.is_empty()).then_some(location_keys.as_slice());
    sql.push(" ");
    outer(
        &mut sql,
        node,
        &Outer {
            total: Total::None,
            body,
            strip_nulls,
            filtered: false,
            location,
            inserted: matches!(kind, PlanKind::Put | PlanKind::Insert { merge: true }),
        },
    );
    Ok(Plan {
        main: sql,
        explain: None,
        read_only: false,
        kind,
        body,
        media: request.accept,
        csv_header: (body == BodyMode::Csv).then(|| super::read::csv_header(node, &relation.name)),
        range: crate::rest::range::RowRange::ALL,
        count: request.preferences.count,
        max_rows: None,
        relation: relation.name.clone(),
        location_keys,
        keyed: matches!(
            request.target,
            crate::rest::target::Target::Table { key: Some(_), .. }
        ),
        head: false,
    })
}

/// The payload of a write, its keys checked against the relation's columns.
fn body(payload: Option<Payload>, relation: &Relation) -> Result<Body<'_>, RestError> {
    let Some(Payload::Json { text, shape, keys }) = payload else {
        return Err(RestError::InvalidBody {
            reason: "a JSON body is required".to_owned(),
        });
    };
    let columns = keys
        .iter()
        .map(|k| {
            relation
                .column(k)
                .ok_or_else(|| CatalogError::column_not_found(&relation.name, k).into())
        })
        .collect::<Result<Vec<_>, RestError>>()?;
    Ok(Body {
        text,
        array: matches!(shape, JsonShape::Array(_)),
        columns,
    })
}

/// `INSERT INTO t AS rM (cols) SELECT rB.cols FROM <body>`.
fn insert(
    sql: &mut Sql,
    relation: &Relation,
    target: u32,
    alias: u32,
    body: &mut Body,
    defaults: bool,
) {
    sql.push("INSERT INTO ");
    sql.relation(relation);
    sql.push(" AS ");
    sql.alias(target);
    if !body.columns.is_empty() {
        sql.push(" (");
        for (i, column) in body.columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(&column.name);
        }
        sql.push(")");
    }
    sql.push(" SELECT ");
    for (i, column) in body.columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.column(alias, &column.name);
    }
    sql.push(" FROM ");
    source(sql, alias, body, defaults);
}

/// The body's rows (its text moves into the parameters): `json_to_recordset($n::json) AS rB("a" integer, …)`. With
/// `missing=default`, absent keys take the column's default (the snapshot's default
/// expression, merged under the object's own keys).
fn source(sql: &mut Sql, alias: u32, body: &mut Body, defaults: bool) {
    let with_defaults: Vec<_> = if defaults {
        body.columns
            .iter()
            .filter_map(|c| c.default.as_deref().map(|d| (c.name.as_str(), d)))
            .collect()
    } else {
        Vec::new()
    };
    let text = std::mem::take(&mut body.text);
    if body.columns.is_empty() {
        if body.array {
            sql.push("json_array_elements(");
            sql.param_as(text, "json");
            sql.push(") ");
        } else {
            sql.push("(SELECT 1) ");
        }
        sql.alias(alias);
        return;
    }
    let defaults_object = |sql: &mut Sql| {
        sql.push("jsonb_build_object(");
        for (i, (name, default)) in with_defaults.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.param_as(*name, "text");
            sql.push(", (");
            sql.push(default);
            sql.push(")");
        }
        sql.push(")");
    };
    match (body.array, with_defaults.is_empty()) {
        (false, true) => {
            sql.push("json_to_record(");
            sql.param_as(text, "json");
        }
        (true, true) => {
            sql.push("json_to_recordset(");
            sql.param_as(text, "json");
        }
        (false, false) => {
            sql.push("jsonb_to_record(");
            defaults_object(sql);
            sql.push(" || ");
            sql.param_as(text, "jsonb");
        }
        (true, false) => {
            sql.push("jsonb_to_recordset((SELECT jsonb_agg(");
            defaults_object(sql);
            sql.push(" || e) FROM jsonb_array_elements(");
            sql.param_as(text, "jsonb");
            sql.push(") e)");
        }
    }
    sql.push(") AS ");
    sql.alias(alias);
    sql.push("(");
    for (i, column) in body.columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(&column.name);
        sql.push(" ");
        sql.push(&column.data_type.name);
    }
    sql.push(")");
}

/// The columns of an upsert's `ON CONFLICT`: `on_conflict=`, else the primary key (none:
/// a plain insert, as PostgREST does).
fn conflict_target<'a>(
    request: &'a ApiRequest,
    relation: &'a Relation,
) -> Result<Vec<&'a str>, RestError> {
    if request.preferences.resolution.is_none() {
        return Ok(Vec::new());
    }
    match &request.on_conflict {
        Some(columns) => columns
            .iter()
            .map(|c| {
                relation
                    .column(c)
                    .map(|col| col.name.as_str())
                    .ok_or_else(|| CatalogError::column_not_found(&relation.name, c).into())
            })
            .collect(),
        None => Ok(relation
            .primary_key_columns()
            .iter()
            .map(String::as_str)
            .collect()),
    }
}

/// ` ON CONFLICT (cols) DO UPDATE SET … | DO NOTHING`.
fn on_conflict(sql: &mut Sql, conflict: &[&str], body: &Body, merge: bool) {
    sql.push(" ON CONFLICT (");
    for (i, column) in conflict.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(column);
    }
    sql.push(")");
    if !merge || body.columns.is_empty() {
        sql.push(" DO NOTHING");
        return;
    }
    sql.push(" DO UPDATE SET ");
    for (i, column) in body.columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(&column.name);
        sql.push(" = EXCLUDED.");
        sql.ident(&column.name);
    }
    sql.push(" WHERE ");
    sql.push(COUNT_UPDATED);
}

/// PUT's filters: `eq` on every primary-key column and nothing else (PGRST105).
fn check_put(node: &Node, relation: &Relation) -> Result<(), RestError> {
    let pk = relation.primary_key_columns();
    let mut seen: Vec<&str> = Vec::new();
    for cond in &node.conds {
        let column = match cond {
            Cond::Equals { column, .. } => *column,
            Cond::Filter {
                col,
                negated: false,
                operation:
                    Operation::Compare {
                        operator: Operator::Eq,
                        quantifier: None,
                        ..
                    },
            } if col.path.is_empty() => col.name,
            _ => "",
        };
        if column.is_empty() || !pk.iter().any(|k| k == column) || seen.contains(&column) {
            return Err(invalid_put(relation));
        }
        seen.push(column);
    }
    if pk.is_empty() || seen.len() != pk.len() {
        return Err(invalid_put(relation));
    }
    Ok(())
}

/// PGRST105 for `relation`.
fn invalid_put(relation: &Relation) -> RestError {
    RestError::InvalidPut {
        reason: match relation.primary_key_columns() {
            [] => format!("{} has no primary key", relation.name),
            pk => format!(
                "PUT on {} takes exactly col=eq.value filters on its primary key ({})",
                relation.name,
                pk.join(", ")
            ),
        },
    }
}

/// The ` WHERE` of an UPDATE or DELETE: the conditions, or with `limit`/`offset` the rows
/// an ordered, limited subquery picks (by primary key, else by `ctid` for a table).
fn affected(
    sql: &mut Sql,
    node: &Node,
    relation: &Relation,
    target: u32,
    inner: u32,
) -> Result<(), RestError> {
    if node.range.is_all() {
        if has_conditions(node) {
            sql.push(" WHERE ");
            conditions(sql, node, target);
        }
        return Ok(());
    }
    let pk = relation.primary_key_columns();
    let row_id = |sql: &mut Sql, alias: u32| {
        if pk.is_empty() {
            if relation.kind == RelationKind::PartitionedTable {
                sql.push("(");
                sql.alias(alias);
                sql.push(".tableoid, ");
                sql.alias(alias);
                sql.push(".ctid)");
            } else {
                sql.alias(alias);
                sql.push(".ctid");
            }
            return;
        }
        sql.push("(");
        for (i, column) in pk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.column(alias, column);
        }
        sql.push(")");
    };
    if pk.is_empty()
        && !matches!(
            relation.kind,
            RelationKind::Table | RelationKind::PartitionedTable
        )
    {
        return Err(RestError::NotImplemented {
            details: format!(
                "limit on a write needs a primary key, and {} has none",
                relation.name
            ),
        });
    }
    sql.push(" WHERE ");
    row_id(sql, target);
    sql.push(" IN (SELECT ");
    row_id(sql, inner);
    sql.push(" FROM ");
    sql.relation(relation);
    sql.push(" ");
    sql.alias(inner);
    if has_conditions(node) {
        sql.push(" WHERE ");
        conditions(sql, node, inner);
    }
    order_by(sql, node, inner);
    range(sql, node.range);
    sql.push(")");
    Ok(())
}

/// `rM."a", rM."b"`, or `1` when nothing is needed.
fn returning_list(sql: &mut Sql, alias: u32, columns: &[&str]) {
    if columns.is_empty() {
        sql.push("1");
        return;
    }
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.column(alias, column);
    }
}

/// Adds `name` to `out` unless present.
fn push_unique<'a>(out: &mut Vec<&'a str>, name: &'a str) {
    if !out.contains(&name) {
        out.push(name);
    }
}

/// The columns of the written rows the representation reads: selected columns, the
/// parent side of every embed, ordered columns.
fn needed_columns<'a>(node: &Node<'a>, relation: &'a Relation, out: &mut Vec<&'a str>) {
    if node.whole_row {
        for column in &relation.columns {
            push_unique(out, &column.name);
        }
    }
    for item in &node.items {
        match &item.value {
            Value::Column(c) => push_unique(out, c.name),
            Value::Aggregate { field: Some(c), .. } => push_unique(out, c.name),
            Value::Aggregate { field: None, .. } => {}
            Value::Embed(i) | Value::Spread { embed: i, .. } => link_columns(&node.embeds[*i], out),
        }
    }
    for order in &node.order {
        match order.embed {
            Some(i) => link_columns(&node.embeds[i], out),
            None => push_unique(out, order.col.name),
        }
    }
}

/// The parent's columns of an embed's link.
fn link_columns<'a>(child: &Child<'a>, out: &mut Vec<&'a str>) {
    match &child.link.junction {
        Some(j) => j.parent_pairs.iter().for_each(|(p, _)| push_unique(out, p)),
        None => child
            .link
            .pairs
            .iter()
            .for_each(|(p, _)| push_unique(out, p)),
    }
}
