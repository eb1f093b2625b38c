//! The query string: percent-decoding into ordered `key=value` pairs, and the roles of
//! keys (PostgREST's `QueryParams.parse`):
//!
//! ```text
//! query  = pair ("&" pair)*                 -- empty pairs skipped, "+" is a space
//! pair   = key ["=" value]                  -- a key without "=" has the value ""
//! key    = "select" | "columns" | "on_conflict"
//!        | [path "."] ("order" | "limit" | "offset")
//!        | [path "."] ["not."] ("and" | "or")
//!        | [path "."] field                 -- a filter, or an RPC argument (GET)
//! path   = name ("." name)*                 -- embeds, by alias or relation name
//! ```
//!
//! Keys split on `.` outside double quotes, so a quoted `"order"` is a column, not the
//! order parameter. The raw query string is bounded in length, in pairs, and may not hold
//! NUL or invalid UTF-8.

use super::cursor::Cursor;
use super::error::{ParamKind, Part, QueryParamError, RestError, snippet};
use super::limits::Limits;
use super::logic::LogicOperator;

/// What a key asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// `select=`
    Select,
    /// `columns=`
    Columns,
    /// `on_conflict=`
    OnConflict,
    /// `[path.]order=`
    Order(Vec<String>),
    /// `[path.]limit=`
    Limit(Vec<String>),
    /// `[path.]offset=`
    Offset(Vec<String>),
    /// `[path.][not.]and|or=`
    Logic {
        /// The embed path.
        path: Vec<String>,
        /// And or or.
        operator: LogicOperator,
        /// `not.` before it.
        negated: bool,
    },
    /// Anything else: a filter (or an RPC argument on GET).
    Filter,
}

/// Decodes a raw query string (without the `?`) into ordered pairs.
pub(crate) fn decode(query: &str, limits: &Limits) -> Result<Vec<(String, String)>, RestError> {
    if query.len() > limits.max_query_len {
        return Err(QueryParamError::whole(format!(
            "the query string is longer than {} bytes",
            limits.max_query_len
        ))
        .into());
    }
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == limits.max_params {
            return Err(QueryParamError::whole(format!(
                "more than {} parameters",
                limits.max_params
            ))
            .into());
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(pairs)
}

/// `%XY` escapes and `+` as a space; a `%` not followed by two hex digits stays as is.
fn percent_decode(text: &str) -> Result<String, RestError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    if out.contains(&0) {
        return Err(QueryParamError::whole("the query string contains a NUL byte").into());
    }
    String::from_utf8(out)
        .map_err(|_| QueryParamError::whole("the query string is not valid UTF-8").into())
}

/// Splits a key on `.` outside double quotes (a `\` escapes inside quotes).
pub(crate) fn split_key(key: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in key.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(&key[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&key[start..]);
    parts
}

/// The role of a key, with its embed path parsed into names.
pub(crate) fn classify(key: &str, limits: &Limits) -> Result<Role, RestError> {
    match key {
        "select" => return Ok(Role::Select),
        "columns" => return Ok(Role::Columns),
        "on_conflict" => return Ok(Role::OnConflict),
        _ => {}
    }
    let parts = split_key(key);
    let (last, init) = parts.split_last().unwrap_or((&"", &[]));
    let role = match *last {
        "order" => Role::Order(path_names(ParamKind::Order, key, init, limits)?),
        "limit" => Role::Limit(path_names(ParamKind::Range, key, init, limits)?),
        "offset" => Role::Offset(path_names(ParamKind::Range, key, init, limits)?),
        "and" | "or" => {
            let operator = if *last == "and" {
                LogicOperator::And
            } else {
                LogicOperator::Or
            };
            let (negated, init) = match init.split_last() {
                Some((&"not", before)) => (true, before),
                _ => (false, init),
            };
            Role::Logic {
                path: path_names(ParamKind::Logic, key, init, limits)?,
                operator,
                negated,
            }
        }
        _ => Role::Filter,
    };
    Ok(role)
}

/// Parses embed path segments, each a whole name.
fn path_names(
    kind: ParamKind,
    key: &str,
    segments: &[&str],
    limits: &Limits,
) -> Result<Vec<String>, RestError> {
    if segments.len() > limits.max_embed_depth {
        return Err(QueryParamError {
            kind,
            param: snippet(key),
            value: String::new(),
            part: Part::Name,
            column: None,
            reason: format!("embed path deeper than {} levels", limits.max_embed_depth),
        }
        .into());
    }
    let mut names = Vec::with_capacity(segments.len());
    let mut offset = 0;
    for segment in segments {
        let mut c = Cursor::new(segment, limits);
        let name = c.name().and_then(|name| {
            if c.at_end() {
                Ok(name)
            } else {
                Err(c.unexpected("'.' between embed names"))
            }
        });
        match name {
            Ok(name) => names.push(name),
            Err(syntax) => {
                return Err(QueryParamError {
                    kind,
                    param: snippet(key),
                    value: String::new(),
                    part: Part::Name,
                    column: Some(offset + syntax.column(segment)),
                    reason: syntax.reason,
                }
                .into());
            }
        }
        offset += segment.chars().count() + 1;
    }
    Ok(names)
}
