//! Refusals of the SQL builder when a request names something the schema cache does not
//! hold: a table, a column, a relationship, a function. Codes, statuses and texts follow
//! PostgREST (`PGRST2xx`, and `42703` for an unknown column in `select=`, filters and
//! `order=`, which PostgREST leaves PostgreSQL to report), so `@supabase/postgrest-js`
//! users see the errors they know. Every name repeated is bounded by [`snippet`].

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::error::snippet;

/// What the schema cache does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// 42703 (400): a column of `select=`, a filter or `order=` the relation lacks.
    #[error("column {relation}.{column} does not exist")]
    UnknownColumn {
        /// The relation, as the request named it.
        relation: String,
        /// The column, bounded.
        column: String,
    },
    /// PGRST204 (400): a payload key (or `columns=`, `on_conflict=`) that is no column.
    #[error("Could not find the '{column}' column of '{relation}' in the schema cache")]
    ColumnNotFound {
        /// The relation.
        relation: String,
        /// The key, bounded.
        column: String,
    },
    /// PGRST205 (404): no table or view of that name in the schema.
    #[error("Could not find the table '{schema}.{name}' in the schema cache")]
    TableNotFound {
        /// The schema searched.
        schema: String,
        /// The name asked for, bounded.
        name: String,
    },
    /// PGRST200 (400): no foreign key links the two relations (as hinted).
    #[error("Could not find a relationship between '{parent}' and '{child}' in the schema cache")]
    NoRelationship {
        /// The embedding relation.
        parent: String,
        /// The embed's name, bounded.
        child: String,
        /// The `!hint`, bounded.
        hint: Option<String>,
        /// The schema searched.
        schema: String,
    },
    /// PGRST201 (300): several relationships match; a `!hint` must pick one.
    #[error(
        "Could not embed because more than one relationship was found for '{parent}' and '{child}'"
    )]
    AmbiguousRelationship {
        /// The embedding relation.
        parent: String,
        /// The embed's name.
        child: String,
        /// One `{cardinality, embedding, relationship}` object per candidate.
        candidates: Vec<Value>,
        /// The `child!hint` spellings that would pick each candidate.
        hints: Vec<String>,
    },
    /// PGRST202 (404): no overload takes these arguments.
    #[error("Could not find the function {schema}.{name}{} in the schema cache", describe_args(.args))]
    FunctionNotFound {
        /// The schema searched.
        schema: String,
        /// The function asked for, bounded.
        name: String,
        /// The argument names given, sorted.
        args: Vec<String>,
        /// Called by POST with a JSON body (a single unnamed json argument would match).
        json_body: bool,
    },
    /// PGRST203 (300): several overloads take these arguments.
    #[error("Could not choose the best candidate function between: {}", .candidates.join(", "))]
    AmbiguousFunction {
        /// `schema.name(arg => type, …)` of each candidate.
        candidates: Vec<String>,
    },
}

/// ` without parameters` or `(a, b)`.
fn describe_args(args: &[String]) -> String {
    if args.is_empty() {
        " without parameters".to_owned()
    } else {
        format!("({})", args.join(", "))
    }
}

impl CatalogError {
    /// PostgREST's code (`42703` for an unknown column, as PostgreSQL reports it).
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::UnknownColumn { .. } => "42703",
            CatalogError::ColumnNotFound { .. } => "PGRST204",
            CatalogError::TableNotFound { .. } => "PGRST205",
            CatalogError::NoRelationship { .. } => "PGRST200",
            CatalogError::AmbiguousRelationship { .. } => "PGRST201",
            CatalogError::FunctionNotFound { .. } => "PGRST202",
            CatalogError::AmbiguousFunction { .. } => "PGRST203",
        }
    }

    /// PostgREST's status.
    pub fn status(&self) -> StatusCode {
        match self {
            CatalogError::UnknownColumn { .. }
            | CatalogError::ColumnNotFound { .. }
            | CatalogError::NoRelationship { .. } => StatusCode::BAD_REQUEST,
            CatalogError::TableNotFound { .. } | CatalogError::FunctionNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            CatalogError::AmbiguousRelationship { .. } | CatalogError::AmbiguousFunction { .. } => {
                StatusCode::MULTIPLE_CHOICES
            }
        }
    }

    /// PostgREST's `details`: text, or for an ambiguous embed the candidates as JSON.
    pub fn details(&self) -> Option<Value> {
        match self {
            CatalogError::NoRelationship {
                parent,
                child,
                hint,
                schema,
            } => Some(Value::String(format!(
                "Searched for a foreign key relationship between '{parent}' and '{child}'{} in \
                 the schema '{schema}', but no matches were found.",
                hint.as_ref()
                    .map(|h| format!(" using the hint '{h}'"))
                    .unwrap_or_default()
            ))),
            CatalogError::AmbiguousRelationship { candidates, .. } => {
                Some(Value::Array(candidates.clone()))
            }
            CatalogError::FunctionNotFound {
                schema,
                name,
                args,
                json_body,
            } => {
                let params = match args.len() {
                    0 => " without parameters".to_owned(),
                    1 => format!(" with parameter {}", args[0]),
                    _ => format!(" with parameters {}", args.join(", ")),
                };
                let unnamed = if *json_body {
                    " or with a single unnamed json/jsonb parameter"
                } else {
                    ""
                };
                Some(Value::String(format!(
                    "Searched for the function {schema}.{name}{params}{unnamed}, but no matches \
                     were found in the schema cache."
                )))
            }
            _ => None,
        }
    }

    /// PostgREST's `hint`.
    pub fn hint(&self) -> Option<String> {
        match self {
            CatalogError::AmbiguousRelationship { child, hints, .. } => Some(format!(
                "Try changing '{child}' to one of the following: {}. Find the desired \
                 relationship in the 'details' key.",
                hints.join(", ")
            )),
            CatalogError::AmbiguousFunction { .. } => Some(
                "Try renaming the parameters or the function itself in the database so \
                 function overloading can be resolved"
                    .to_owned(),
            ),
            // A table the catalog has is loaded before this is answered.
            CatalogError::TableNotFound { .. } => Some(
                "The database has no table or view of that name in this schema (it was asked, \
                 not only the schema cache)."
                    .to_owned(),
            ),
            CatalogError::FunctionNotFound { .. } => Some(
                "If it was created in the database just now, it is reachable as soon as the \
                 schema cache reloads (about a second)."
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// An unknown column of `relation`.
    pub fn unknown_column(relation: &str, column: &str) -> Self {
        CatalogError::UnknownColumn {
            relation: relation.to_owned(),
            column: snippet(column),
        }
    }

    /// A payload key that is no column of `relation`.
    pub fn column_not_found(relation: &str, column: &str) -> Self {
        CatalogError::ColumnNotFound {
            relation: relation.to_owned(),
            column: snippet(column),
        }
    }
}

/// The JSON PostgREST lists an ambiguous relationship with.
pub(crate) fn candidate(cardinality: &str, embedding: String, relationship: String) -> Value {
    json!({
        "cardinality": cardinality,
        "embedding": embedding,
        "relationship": relationship,
    })
}
