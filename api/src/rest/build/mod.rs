//! The SQL builder: a parsed request ([`ApiRequest`]), its checked body ([`Payload`]) and
//! one schema snapshot in, one statement out ([`Plan`]) — text plus bind parameters.
//!
//! Every identifier is looked up in the snapshot and written quoted; the builder's own
//! aliases are lowercase words never quoted; every client value is a parameter. One
//! request is one statement (a data-modifying `WITH` for writes, so the representation
//! and the write are the same statement), plus, for `count=planned|estimated`, an
//! `EXPLAIN` of the count query sent in the same round trip. See [`read`], [`mutate`] and
//! [`rpc`] for the shapes; [`resolve`] checks names, [`select`], [`filter`] and [`order`]
//! write the pieces.

mod embed;
mod filter;
mod mutate;
mod order;
mod read;
mod resolve;
mod rpc;
mod select;
pub mod sql;
mod tree;

use fluxbase_migrations::schema::{Relation, Schema};

use crate::rest::catalog_error::CatalogError;
use crate::rest::error::{RestError, snippet};
use crate::rest::media::MediaType;
use crate::rest::payload::Payload;
use crate::rest::prefer::CountPreference;
use crate::rest::range::RowRange;
use crate::rest::request::ApiRequest;
use crate::rest::target::{Action, Target};

pub use sql::{Param, Sql};

use resolve::Resolver;
use tree::{Cond, Source};

/// What the builder needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct BuildSettings<'a> {
    /// `rest.schemas`: embeds may only reach relations of these.
    pub schemas: &'a [String],
    /// `rest.max_rows`: the most rows any read returns, at every level.
    pub max_rows: Option<u64>,
}

/// How the body column of the result is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// No body (HEAD, `return=minimal`, void functions).
    None,
    /// A JSON array of the rows' values.
    Array,
    /// The first row's value, or `null` (functions returning one value or one row).
    First,
    /// CSV lines without the header (the plan holds the header).
    Csv,
}

/// What kind of request a plan answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// GET/HEAD on a table or view.
    Read,
    /// POST on a table; `upsert` with `Prefer: resolution=`.
    Insert {
        /// `resolution=merge-duplicates` with a conflict target: 201 only if a row was new.
        merge: bool,
    },
    /// PUT: one row by primary key.
    Put,
    /// PATCH.
    Update,
    /// DELETE.
    Delete,
    /// A function call.
    Call {
        /// The function returns void (204).
        void: bool,
        /// The function returns a set (a count and a range make sense).
        set: bool,
    },
}

/// A statement ready to run, and what the response needs to know about it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The statement: its result is one row `(total int8, page int8, body text,
    /// location text[], inserted int4)`.
    pub main: Sql,
    /// `EXPLAIN (FORMAT JSON)` of the count query, for `count=planned|estimated`.
    pub explain: Option<Sql>,
    /// Runs in a read-only transaction (reads, stable and immutable functions).
    pub read_only: bool,
    /// What the request does.
    pub kind: PlanKind,
    /// How the body column is shaped.
    pub body: BodyMode,
    /// The negotiated media type.
    pub media: MediaType,
    /// The CSV header line, for CSV bodies.
    pub csv_header: Option<String>,
    /// The root range (after `rest.max_rows`), for `Content-Range`.
    pub range: RowRange,
    /// `Prefer: count=`.
    pub count: Option<CountPreference>,
    /// `rest.max_rows` (for `count=estimated`).
    pub max_rows: Option<u64>,
    /// The table or function, for `Location`.
    pub relation: String,
    /// Primary-key columns whose values the `location` column holds.
    pub location_keys: Vec<String>,
    /// The path named a row by primary key: the answer is that row, 404 without it.
    pub keyed: bool,
    /// HEAD: headers only.
    pub head: bool,
}

impl Plan {
    /// Whether the transaction may only end after the result is seen: a write whose
    /// response can still fail (single object, `max-affected`, PUT's key, a keyed row) or
    /// that rolls back (`tx=rollback`). Other transactions end in the same round trip.
    pub fn needs_decision(&self, request: &ApiRequest) -> bool {
        if self.read_only {
            return false;
        }
        let prefs = &request.preferences;
        matches!(self.media, MediaType::SingleObject { .. })
            || self.keyed
            || self.kind == PlanKind::Put
            || prefs.tx == Some(crate::rest::prefer::TxEnd::Rollback)
            || (prefs.max_affected.is_some()
                && prefs.handling == Some(crate::rest::prefer::Handling::Strict))
    }
}

/// Builds the statement of `request` against `schema`. `payload` is the checked body of
/// writes and POST calls (moved in: a bulk insert's JSON becomes one parameter uncopied).
pub fn build(
    request: &ApiRequest,
    payload: Option<Payload>,
    schema: &Schema,
    settings: &BuildSettings,
) -> Result<Plan, RestError> {
    match (&request.target, request.action) {
        (Target::Function { name }, Action::Call(method)) => {
            rpc::call(request, name, method, payload, schema, settings)
        }
        (Target::Table { name, key }, action) => {
            let relation = schema.relation(&request.schema, name).ok_or_else(|| {
                CatalogError::TableNotFound {
                    schema: request.schema.clone(),
                    name: snippet(name),
                }
            })?;
            let mut resolver = Resolver::new(schema, settings.schemas, settings.max_rows);
            match action {
                Action::Read { head } => {
                    let mut node =
                        resolver.node(&request.query, Source::Relation(relation), 0, true)?;
                    if let Some(key) = key {
                        node.conds.push(key_cond(relation, key)?);
                    }
                    let mut plan = read::table(request, &node, head, settings.max_rows, name);
                    plan.keyed = key.is_some();
                    Ok(plan)
                }
                Action::Call(_) => Err(RestError::InvalidPath {
                    reason: "a table cannot be called".to_owned(),
                }),
                write => mutate::write(
                    request,
                    write,
                    relation,
                    key.as_deref(),
                    payload,
                    &mut resolver,
                ),
            }
        }
        (Target::Function { .. }, _) => Err(RestError::InvalidPath {
            reason: "functions are called with GET, HEAD or POST".to_owned(),
        }),
    }
}

/// The condition a row key in the path stands for: its single primary-key column equal to
/// the key.
fn key_cond<'a>(relation: &'a Relation, key: &'a str) -> Result<Cond<'a>, RestError> {
    match relation.primary_key_columns() {
        [column] => Ok(Cond::Equals { column, value: key }),
        [] => Err(RestError::InvalidPath {
            reason: format!(
                "{} has no primary key: select its rows with filters",
                relation.name
            ),
        }),
        columns => Err(RestError::InvalidPath {
            reason: format!(
                "{} has a composite primary key ({}): select its rows with filters",
                relation.name,
                columns.join(", ")
            ),
        }),
    }
}
