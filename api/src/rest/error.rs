//! Errors of the REST request parser, with PostgREST's codes (`PGRST1xx`) and statuses, so
//! `/rest/v1` can answer exactly as PostgREST does and `/api/v1` can wrap the same message.
//!
//! Every message names what is wrong (the parameter, the text, the column) but repeats at
//! most [`SNIPPET_CHARS`] characters of client input, with control characters escaped.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::catalog_error::CatalogError;

/// Most characters of client input one error message repeats.
pub const SNIPPET_CHARS: usize = 48;

/// A bounded, printable copy of client input for an error message.
pub fn snippet(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SNIPPET_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Which part of the query string failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// The query string as a whole (length, encoding, NUL, number of pairs).
    QueryString,
    /// `select=`
    Select,
    /// `col=op.value`
    Filter,
    /// `or=(…)` / `and=(…)`
    Logic,
    /// `order=`
    Order,
    /// `limit=` / `offset=`
    Range,
    /// `columns=`
    Columns,
    /// `on_conflict=`
    OnConflict,
    /// An RPC argument in a GET query string.
    RpcArgument,
    /// A header the parser reads (the header's name is the error's `param`).
    Header,
    /// A parameter the request's method does not take (`columns=` on GET).
    NotAllowed,
}

impl ParamKind {
    /// How a message names this part.
    fn describe(self) -> &'static str {
        match self {
            ParamKind::QueryString => "query string",
            ParamKind::Select => "select parameter",
            ParamKind::Filter => "filter",
            ParamKind::Logic => "logic tree",
            ParamKind::Order => "order",
            ParamKind::Range => "limit/offset",
            ParamKind::Columns => "columns parameter",
            ParamKind::OnConflict => "on_conflict parameter",
            ParamKind::RpcArgument => "function argument",
            ParamKind::Header => "header",
            ParamKind::NotAllowed => "parameter",
        }
    }
}

/// Whether a parse error lies in a parameter's name or in its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The key (`embed.col->x` in `embed.col->x=eq.1`).
    Name,
    /// The value (`eq.1`).
    Value,
}

/// A parse error in the query string (PGRST100), located to the character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParamError {
    /// What was being parsed.
    pub kind: ParamKind,
    /// The parameter's name, bounded ([`snippet`]).
    pub param: String,
    /// The parameter's value, bounded ([`snippet`]).
    pub value: String,
    /// Name or value.
    pub part: Part,
    /// 1-based character column of the failure in that part, when it has one.
    pub column: Option<usize>,
    /// What was wrong or expected; never more than a snippet of input.
    pub reason: String,
}

impl QueryParamError {
    /// An error about the query string as a whole (no single parameter).
    pub fn whole(reason: impl Into<String>) -> Self {
        QueryParamError {
            kind: ParamKind::QueryString,
            param: String::new(),
            value: String::new(),
            part: Part::Value,
            column: None,
            reason: reason.into(),
        }
    }

    /// An error about one parameter's value, without a column.
    pub fn value(kind: ParamKind, key: &str, value: &str, reason: impl Into<String>) -> Self {
        QueryParamError {
            kind,
            param: snippet(key),
            value: snippet(value),
            part: Part::Value,
            column: None,
            reason: reason.into(),
        }
    }

    /// PostgREST's message: what failed to parse, with the bounded input.
    pub fn message(&self) -> String {
        if self.kind == ParamKind::Header {
            return format!("invalid {} header", self.param);
        }
        if self.kind == ParamKind::NotAllowed {
            return format!("unexpected parameter {}", self.param);
        }
        if self.kind == ParamKind::QueryString && self.param.is_empty() {
            return "failed to parse the query string".to_owned();
        }
        if self.param.is_empty() {
            return format!("failed to parse {} ({})", self.kind.describe(), self.value);
        }
        format!(
            "failed to parse {} ({}={})",
            self.kind.describe(),
            self.param,
            self.value
        )
    }

    /// Where and why.
    pub fn details(&self) -> String {
        let part = match self.part {
            Part::Name => "in the parameter name ",
            Part::Value => "",
        };
        match self.column {
            Some(column) => format!("{} {part}at column {column}", self.reason),
            None if self.part == Part::Name => format!("{} in the parameter name", self.reason),
            None => self.reason.clone(),
        }
    }
}

/// Why a range was refused (PGRST103).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// `limit=-1`, `offset=-1`.
    Negative {
        /// `limit` or `offset`, with its embed path.
        param: String,
    },
    /// `Range: 10-5`.
    LowerGreaterThanUpper,
    /// A `Range` header that is not `first-[last]`.
    Malformed {
        /// The header value, bounded.
        value: String,
    },
    /// A `Range-Unit` other than `items`.
    Unit {
        /// The header value, bounded.
        value: String,
    },
    /// An offset past the last row, found by counting (`Prefer: count=exact`).
    OutOfBounds {
        /// The offset asked for.
        offset: u64,
        /// The rows there are.
        total: u64,
    },
}

/// Everything the parser can refuse, each with PostgREST's code and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// PGRST100 (400): a query parameter that does not parse or breaks a bound.
    #[error("{}", .0.message())]
    QueryParam(QueryParamError),
    /// PGRST101 (405): RPC with a method other than GET, HEAD or POST.
    #[error("Cannot use the {method} method on RPC")]
    InvalidRpcMethod {
        /// The method, bounded.
        method: String,
    },
    /// PGRST102 (400): a body that is not what the method and Content-Type promise.
    #[error("{reason}")]
    InvalidBody {
        /// What is wrong with it.
        reason: String,
    },
    /// PGRST102 (413): a body longer than `rest.body_limit` (PostgREST leaves this to its
    /// proxy; the code is the one of a body that cannot be read).
    #[error("The request body is larger than {limit} bytes (rest.body_limit)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// PGRST102 (408): a body that stopped arriving (`server.body_timeout`).
    #[error("The request body did not arrive in time (server.body_timeout)")]
    BodyTimeout,
    /// PGRST103 (416): a negative limit or an unsatisfiable or malformed `Range`.
    #[error("Requested range not satisfiable")]
    InvalidRange(RangeError),
    /// PGRST105 (405): PUT whose filters are not only `eq` on plain columns.
    #[error("Filters must include all and only primary key columns with 'eq' operators")]
    InvalidPut {
        /// Which filter is wrong.
        reason: String,
    },
    /// PGRST106 (406): a schema that is not exposed.
    #[error("Invalid schema: {schema}")]
    UnacceptableSchema {
        /// The schema asked for, bounded.
        schema: String,
        /// The exposed schemas.
        exposed: Vec<String>,
    },
    /// PGRST107 (406): no media type of `Accept` can be produced.
    #[error("None of these media types are available: {accept}")]
    NotAcceptable {
        /// The Accept header, bounded.
        accept: String,
    },
    /// PGRST107 (415): a `Content-Type` the method cannot read.
    #[error("Content-Type not acceptable: {content_type}")]
    UnsupportedContentType {
        /// The Content-Type header, bounded.
        content_type: String,
    },
    /// PGRST108 (400): filter, order or limit on an embed that `select=` does not name.
    #[error("'{embed}' is not an embedded resource in this request")]
    NotEmbedded {
        /// The embed path, bounded.
        embed: String,
    },
    /// PGRST109 (400): PATCH or DELETE with `limit`/`offset` but no `order`.
    #[error("A limited update or delete must be ordered by a unique column")]
    LimitWithoutOrder,
    /// PGRST114 (400): PUT with `limit` or `offset`.
    #[error("limit/offset querystring parameters are not allowed for PUT")]
    PutLimit,
    /// PGRST117 (405): a method REST does not serve.
    #[error("Unsupported HTTP method: {method}")]
    UnsupportedMethod {
        /// The method, bounded.
        method: String,
    },
    /// PGRST122 (400): unknown preferences with `Prefer: handling=strict`.
    #[error("Invalid preferences given with handling=strict")]
    InvalidPreferences {
        /// The preferences not understood, each bounded.
        prefs: Vec<String>,
    },
    /// PGRST125 (404): a path this API does not serve (a row key with POST, an empty name).
    #[error("Invalid path specified in request URL")]
    InvalidPath {
        /// What is wrong with it.
        reason: String,
    },
    /// PGRST2xx or 42703: a name the schema cache does not hold.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// PGRST115 (400): a PUT whose payload does not carry the primary key of its filters.
    #[error("Payload values do not match URL in primary key column(s)")]
    PutMismatch,
    /// PGRST116 (406): `vnd.pgrst.object+json` asked for, and not exactly one row.
    #[error("Cannot coerce the result to a single JSON object")]
    Singular {
        /// How many rows there were.
        rows: u64,
    },
    /// PGRST116 (404): a row key in the path (`/api/v1/tables/s/t/{key}`) names no row
    /// the caller may see.
    #[error("No row of {relation} has the primary key in the path")]
    RowNotFound {
        /// `schema.table`.
        relation: String,
    },
    /// PGRST118 (400): `order=embed(col)` on an embed that is not to-one.
    #[error("A related order on '{target}' is not possible")]
    RelatedOrderNotToOne {
        /// The ordered relation.
        origin: String,
        /// The embed.
        target: String,
    },
    /// PGRST120 (400): a filter on an embed other than `is.null` / `not.is.null`.
    #[error("Bad operator on the '{embed}' embedded resource")]
    UnacceptableFilter {
        /// The embed, bounded.
        embed: String,
    },
    /// PGRST124 (400): more rows affected than `Prefer: max-affected` allows.
    #[error("Query result exceeds max-affected preference constraint")]
    MaxAffected {
        /// How many rows the write affected.
        rows: u64,
    },
    /// PGRST127 (400): a combination this server does not build.
    #[error("Feature not implemented")]
    NotImplemented {
        /// What is not supported.
        details: String,
    },
}

impl From<QueryParamError> for RestError {
    fn from(err: QueryParamError) -> Self {
        RestError::QueryParam(err)
    }
}

impl RestError {
    /// PostgREST's error code.
    pub fn code(&self) -> &'static str {
        match self {
            RestError::QueryParam(_) => "PGRST100",
            RestError::InvalidRpcMethod { .. } => "PGRST101",
            RestError::InvalidBody { .. }
            | RestError::PayloadTooLarge { .. }
            | RestError::BodyTimeout => "PGRST102",
            RestError::InvalidRange(_) => "PGRST103",
            RestError::InvalidPut { .. } => "PGRST105",
            RestError::UnacceptableSchema { .. } => "PGRST106",
            RestError::NotAcceptable { .. } | RestError::UnsupportedContentType { .. } => {
                "PGRST107"
            }
            RestError::NotEmbedded { .. } => "PGRST108",
            RestError::LimitWithoutOrder => "PGRST109",
            RestError::PutLimit => "PGRST114",
            RestError::UnsupportedMethod { .. } => "PGRST117",
            RestError::InvalidPreferences { .. } => "PGRST122",
            RestError::InvalidPath { .. } => "PGRST125",
            RestError::Catalog(err) => err.code(),
            RestError::PutMismatch => "PGRST115",
            RestError::Singular { .. } | RestError::RowNotFound { .. } => "PGRST116",
            RestError::RelatedOrderNotToOne { .. } => "PGRST118",
            RestError::UnacceptableFilter { .. } => "PGRST120",
            RestError::MaxAffected { .. } => "PGRST124",
            RestError::NotImplemented { .. } => "PGRST127",
        }
    }

    /// The HTTP status PostgREST answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RestError::QueryParam(_)
            | RestError::InvalidBody { .. }
            | RestError::NotEmbedded { .. }
            | RestError::LimitWithoutOrder
            | RestError::PutLimit
            | RestError::InvalidPreferences { .. }
            | RestError::PutMismatch
            | RestError::RelatedOrderNotToOne { .. }
            | RestError::UnacceptableFilter { .. }
            | RestError::MaxAffected { .. }
            | RestError::NotImplemented { .. } => StatusCode::BAD_REQUEST,
            RestError::InvalidRpcMethod { .. }
            | RestError::InvalidPut { .. }
            | RestError::UnsupportedMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RestError::InvalidRange(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            RestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RestError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            RestError::UnacceptableSchema { .. }
            | RestError::NotAcceptable { .. }
            | RestError::Singular { .. } => StatusCode::NOT_ACCEPTABLE,
            RestError::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RestError::InvalidPath { .. } | RestError::RowNotFound { .. } => StatusCode::NOT_FOUND,
            RestError::Catalog(err) => err.status(),
        }
    }

    /// PostgREST's `details`.
    pub fn details(&self) -> Option<String> {
        match self {
            RestError::QueryParam(err) => Some(err.details()),
            RestError::InvalidRange(err) => Some(match err {
                RangeError::Negative { param } => {
                    format!("{param} should be greater than or equal to zero.")
                }
                RangeError::LowerGreaterThanUpper => "The lower boundary must be lower than or \
                    equal to the upper boundary in the Range header."
                    .to_owned(),
                RangeError::Malformed { value } => {
                    format!("The Range header must be <first>-[<last>], not {value}.")
                }
                RangeError::Unit { value } => {
                    format!("The only Range-Unit is items, not {value}.")
                }
                RangeError::OutOfBounds { offset, total } => {
                    format!("An offset of {offset} was requested, but there are only {total} rows.")
                }
            }),
            RestError::InvalidPut { reason } | RestError::InvalidPath { reason } => {
                Some(reason.clone())
            }
            RestError::InvalidPreferences { prefs } => {
                Some(format!("Invalid preferences: {}", prefs.join(", ")))
            }
            RestError::LimitWithoutOrder => {
                Some("Add an order= parameter on a unique column to the request.".to_owned())
            }
            RestError::Singular { rows } => Some(format!("The result contains {rows} rows")),
            RestError::RelatedOrderNotToOne { origin, target } => Some(format!(
                "'{origin}' and '{target}' do not form a many-to-one or one-to-one relationship"
            )),
            RestError::UnacceptableFilter { .. } => Some(
                "Only is null or not is null filters are allowed on embedded resources".to_owned(),
            ),
            RestError::MaxAffected { rows } => Some(format!("The query affects {rows} rows")),
            RestError::NotImplemented { details } => Some(details.clone()),
            RestError::Catalog(err) => err.details().map(|d| match d {
                Value::String(text) => text,
                other => other.to_string(),
            }),
            _ => None,
        }
    }

    /// PostgREST's `hint`.
    pub fn hint(&self) -> Option<String> {
        match self {
            RestError::NotEmbedded { embed } => Some(format!(
                "Verify that '{embed}' is included in the 'select' query parameter."
            )),
            RestError::UnacceptableSchema { exposed, .. } => Some(format!(
                "Only the following schemas are exposed: {}",
                exposed.join(", ")
            )),
            RestError::Catalog(err) => err.hint(),
            _ => None,
        }
    }

    /// PostgREST's error body: `{code, details, hint, message}` (`details` is JSON, not
    /// text, for an ambiguous embed).
    pub fn postgrest_body(&self) -> Value {
        let details = match self {
            RestError::Catalog(err) => err.details(),
            _ => self.details().map(Value::String),
        };
        json!({
            "code": self.code(),
            "details": details,
            "hint": self.hint(),
            "message": self.to_string(),
        })
    }
}
