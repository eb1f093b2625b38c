//! Media types: content negotiation of `Accept` (what the response is) and the
//! `Content-Type` of a body (what the payload is), as PostgREST does them:
//!
//! ```text
//! Accept       = range ("," range)*              -- ordered by q, then by specificity
//! range        = type "/" subtype (";" param)*   -- q=0 excludes a range
//! produced     = application/json, */*, application/*, application/vnd.pgrst.array+json
//!              | application/vnd.pgrst.array+json;nulls=stripped
//!              | application/vnd.pgrst.object+json[;nulls=stripped]    -- exactly one row
//!              | text/csv
//! Content-Type = application/json (the default) | text/csv | application/x-www-form-urlencoded
//!              | text/plain | application/octet-stream                 -- RPC only
//! ```
//!
//! The first acceptable range that can be produced wins; none is PGRST107 (406). A body
//! type the method cannot read is PGRST107 (415).

use super::error::{RestError, snippet};

/// Most ranges of one `Accept` header considered.
const MAX_ACCEPT_RANGES: usize = 32;

/// What the response body will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// A JSON array of objects (`application/json`, `*/*`, no `Accept`).
    Json,
    /// A JSON array with null-valued keys removed (`vnd.pgrst.array+json;nulls=stripped`).
    JsonStripNulls,
    /// One JSON object: exactly one row, else 406 PGRST116 (`vnd.pgrst.object+json`).
    SingleObject {
        /// `;nulls=stripped`
        strip_nulls: bool,
    },
    /// CSV with a header line (`text/csv`).
    Csv,
}

impl MediaType {
    /// The `Content-Type` of a response in this type.
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::JsonStripNulls => {
                "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8"
            }
            MediaType::SingleObject { strip_nulls: false } => {
                "application/vnd.pgrst.object+json; charset=utf-8"
            }
            MediaType::SingleObject { strip_nulls: true } => {
                "application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8"
            }
            MediaType::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// What a request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json` (also when the header is absent).
    Json,
    /// `text/csv`: a header line of column names, then rows.
    Csv,
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `text/plain`: the single unnamed `text` argument of a function.
    Text,
    /// `application/octet-stream`: the single unnamed `bytea` argument of a function.
    Binary,
}

/// One media range of `Accept`.
struct AcceptRange<'a> {
    /// `type/subtype`, lowercased by the caller's comparison.
    essence: String,
    /// Parameters other than `q`.
    params: Vec<(&'a str, &'a str)>,
    /// Quality, 0..=1000.
    quality: u16,
}

/// Splits `type/subtype;a=b;c=d` into its essence and parameters.
fn split_media(text: &str) -> (String, Vec<(&str, &str)>) {
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    (essence, params)
}

/// A quality value (`q=0.5`) in thousandths; malformed values count as 1.
fn quality(value: &str) -> u16 {
    let value = value.trim();
    match value.parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 1000,
    }
}

/// What the response to a request with this `Accept` header will be.
pub(crate) fn negotiate(accept: Option<&str>) -> Result<MediaType, RestError> {
    let Some(header) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(MediaType::Json);
    };
    let mut ranges: Vec<AcceptRange> = header
        .split(',')
        .take(MAX_ACCEPT_RANGES)
        .map(|range| {
            let (essence, params) = split_media(range);
            let quality = params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("q"))
                .map_or(1000, |(_, v)| quality(v));
            let params = params
                .into_iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("q"))
                .collect();
            AcceptRange {
                essence,
                params,
                quality,
            }
        })
        .filter(|r| r.quality > 0)
        .collect();
    let specificity = |r: &AcceptRange| match r.essence.as_str() {
        "*/*" => 0,
        e if e.ends_with("/*") => 1,
        _ => 2,
    };
    ranges.sort_by(|a, b| {
        b.quality
            .cmp(&a.quality)
            .then_with(|| specificity(b).cmp(&specificity(a)))
    });
    ranges
        .iter()
        .find_map(produce)
        .ok_or_else(|| RestError::NotAcceptable {
            accept: snippet(header),
        })
}

/// The media type produced for one range, if it can be produced.
fn produce(range: &AcceptRange) -> Option<MediaType> {
    let stripped = range
        .params
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("nulls") && v.eq_ignore_ascii_case("stripped"));
    match range.essence.as_str() {
        "application/json" | "application/*" | "*/*" => Some(MediaType::Json),
        "application/vnd.pgrst.array+json" | "application/vnd.pgrst.array" => Some(if stripped {
            MediaType::JsonStripNulls
        } else {
            MediaType::Json
        }),
        "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => {
            Some(MediaType::SingleObject {
                strip_nulls: stripped,
            })
        }
        "text/csv" | "text/*" => Some(MediaType::Csv),
        _ => None,
    }
}

/// The type of a body from its `Content-Type` (absent: JSON); `call` allows the single
/// unnamed argument types of functions.
pub(crate) fn parse_content_type(
    header: Option<&str>,
    call: bool,
) -> Result<ContentType, RestError> {
    let Some(text) = header.filter(|h| !h.trim().is_empty()) else {
        return Ok(ContentType::Json);
    };
    let (essence, params) = split_media(text);
    let unsupported = || RestError::UnsupportedContentType {
        content_type: snippet(text),
    };
    let charset_ok = params.iter().all(|(k, v)| {
        !k.eq_ignore_ascii_case("charset")
            || v.eq_ignore_ascii_case("utf-8")
            || v.eq_ignore_ascii_case("utf8")
    });
    if !charset_ok {
        return Err(unsupported());
    }
    match essence.as_str() {
        "application/json" => Ok(ContentType::Json),
        "text/csv" => Ok(ContentType::Csv),
        "application/x-www-form-urlencoded" => Ok(ContentType::UrlEncoded),
        "text/plain" if call => Ok(ContentType::Text),
        "application/octet-stream" if call => Ok(ContentType::Binary),
        _ => Err(unsupported()),
    }
}
