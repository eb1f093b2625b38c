//! What a request's path and method name: the [`Resource`] the router extracted, turned
//! into the [`Action`], the [`Target`] and the schema.
//!
//! ```text
//! table:    GET/HEAD → Read, POST → Insert, PATCH → Update, PUT → Upsert, DELETE → Delete
//! function: GET/HEAD/POST → Call               (anything else: PGRST101; tables: PGRST117)
//! schema  = path schema | Accept-Profile (reads) | Content-Profile (writes) | first exposed
//! ```
//!
//! A schema must be listed in `rest.schemas` and never be one of [`NEVER_EXPOSED`] or a
//! `pg_*` schema (PGRST106); a path schema and a profile header that disagree are refused.
//! Path names are identifiers: not empty, no NUL, at most `max_identifier_len` bytes.

use super::error::{RestError, snippet};
use super::limits::Limits;
use super::request::{Headers, ParserConfig};

/// Schemas no request may reach, whatever `rest.schemas` says: Fluxbase's own data and
/// PostgreSQL's catalogs (any `pg_*` schema is refused as well).
pub const NEVER_EXPOSED: [&str; 7] = [
    "auth",
    "dashboard",
    "storage",
    "jobs",
    "realtime",
    "pg_catalog",
    "information_schema",
];

/// Whether `schema` is one no request may reach.
pub fn is_never_exposed(schema: &str) -> bool {
    NEVER_EXPOSED.contains(&schema) || schema.starts_with("pg_")
}

/// The resource a path names, as the router extracted it (percent-decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/rest/v1/{name}`, `/api/v1/tables/[{schema}/]{name}[/{key}]`.
    Table {
        /// The schema in the path (Fluxbase paths only).
        schema: Option<&'a str>,
        /// The table or view.
        name: &'a str,
        /// A primary-key value in the path (`/api/v1/tables/s/t/{key}`).
        key: Option<&'a str>,
    },
    /// `/rest/v1/rpc/{name}`, `/api/v1/rpc/{name}`.
    Function {
        /// The schema in the path, if the route has one.
        schema: Option<&'a str>,
        /// The function.
        name: &'a str,
    },
}

/// How a function is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMethod {
    /// GET: arguments in the query string; the function must not write (stable/immutable).
    Get,
    /// HEAD: as GET, without a body in the response.
    Head,
    /// POST: arguments in the body.
    Post,
}

/// What the request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// GET/HEAD on a table: `SELECT`.
    Read {
        /// HEAD: count and headers only.
        head: bool,
    },
    /// POST on a table: `INSERT` (an upsert with `Prefer: resolution=`).
    Insert,
    /// PATCH: `UPDATE … WHERE filters`.
    Update,
    /// PUT: insert or replace the one row the primary-key filters name.
    Upsert,
    /// DELETE: `DELETE … WHERE filters`.
    Delete,
    /// A function call.
    Call(CallMethod),
}

impl Action {
    /// Whether the request carries a body to parse ([`super::payload`]).
    pub fn has_body(self) -> bool {
        matches!(
            self,
            Action::Insert | Action::Update | Action::Upsert | Action::Call(CallMethod::Post)
        )
    }

    /// Whether it changes rows (the profile header is then `Content-Profile`).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Action::Insert
                | Action::Update
                | Action::Upsert
                | Action::Delete
                | Action::Call(CallMethod::Post)
        )
    }
}

/// What the request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A table or view.
    Table {
        /// Its name (an identifier for the schema cache).
        name: String,
        /// A primary-key value from the path: the row it names, ANDed with the filters.
        key: Option<String>,
    },
    /// A function.
    Function {
        /// Its name (an identifier for the schema cache).
        name: String,
    },
}

/// The action, the target and the path's schema, from the method and the resource.
pub(crate) fn resolve_target<'a>(
    method: &str,
    resource: &Resource<'a>,
    limits: &Limits,
) -> Result<(Action, Target, Option<&'a str>), RestError> {
    match *resource {
        Resource::Table { schema, name, key } => {
            let action = match method {
                "GET" => Action::Read { head: false },
                "HEAD" => Action::Read { head: true },
                "POST" => Action::Insert,
                "PATCH" => Action::Update,
                "PUT" => Action::Upsert,
                "DELETE" => Action::Delete,
                _ => {
                    return Err(RestError::UnsupportedMethod {
                        method: snippet(method),
                    });
                }
            };
            if key.is_some() && action == Action::Insert {
                return Err(RestError::InvalidPath {
                    reason: "a row key in the path is only valid with GET, HEAD, PATCH, PUT \
                        and DELETE"
                        .to_owned(),
                });
            }
            if let Some(key) = key
                && (key.is_empty() || key.contains('\0'))
            {
                return Err(RestError::InvalidPath {
                    reason: "the row key in the path is empty or holds a NUL byte".to_owned(),
                });
            }
            let target = Target::Table {
                name: path_name("table", name, limits)?,
                key: key.map(str::to_owned),
            };
            Ok((action, target, schema))
        }
        Resource::Function { schema, name } => {
            let call = match method {
                "GET" => CallMethod::Get,
                "HEAD" => CallMethod::Head,
                "POST" => CallMethod::Post,
                _ => {
                    return Err(RestError::InvalidRpcMethod {
                        method: snippet(method),
                    });
                }
            };
            let target = Target::Function {
                name: path_name("function", name, limits)?,
            };
            Ok((Action::Call(call), target, schema))
        }
    }
}

/// Validates a name from the path as an identifier.
fn path_name(what: &str, name: &str, limits: &Limits) -> Result<String, RestError> {
    let reason = if name.is_empty() {
        format!("the {what} name is empty")
    } else if name.len() > limits.max_identifier_len {
        format!(
            "the {what} name is longer than {} bytes",
            limits.max_identifier_len
        )
    } else if name.contains('\0') {
        format!("the {what} name holds a NUL byte")
    } else {
        return Ok(name.to_owned());
    };
    Err(RestError::InvalidPath { reason })
}

/// The schema of the request, checked against the exposed ones.
pub(crate) fn resolve_schema(
    action: Action,
    path_schema: Option<&str>,
    headers: &Headers,
    config: &ParserConfig,
) -> Result<String, RestError> {
    let exposed: Vec<String> = config
        .schemas
        .iter()
        .filter(|s| !is_never_exposed(s))
        .cloned()
        .collect();
    let profile = if action.is_write() {
        headers.content_profile
    } else {
        headers.accept_profile
    };
    let profile = profile.map(str::trim).filter(|p| !p.is_empty());
    let refuse = |schema: &str| RestError::UnacceptableSchema {
        schema: snippet(schema),
        exposed: exposed.clone(),
    };
    if let (Some(path), Some(profile)) = (path_schema, profile)
        && path != profile
    {
        return Err(refuse(profile));
    }
    let schema = match path_schema.or(profile) {
        Some(schema) => schema,
        None => exposed
            .first()
            .map(String::as_str)
            .ok_or_else(|| refuse(""))?,
    };
    if exposed.iter().any(|s| s == schema) {
        Ok(schema.to_owned())
    } else {
        Err(refuse(schema))
    }
}
