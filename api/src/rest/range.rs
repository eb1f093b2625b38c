//! Row ranges: `limit=`, `offset=` (also `embed.limit=`), and the `Range` / `Range-Unit`
//! headers of PostgREST's pagination:
//!
//! ```text
//! limit, offset = digit+                        -- at most i64::MAX (PostgreSQL's bigint)
//! Range         = ["items="] digit+ "-" [digit+]  -- inclusive, "10-" is open-ended
//! Range-Unit    = "items"
//! ```
//!
//! The top-level range is the intersection of `limit`/`offset` and `Range`. A negative
//! bound or a `Range` whose first row is after its last is PGRST103 (416); text that is
//! not a number is PGRST100.

use super::error::{ParamKind, QueryParamError, RangeError, RestError, snippet};

/// Rows to return: `OFFSET offset LIMIT limit` (no limit when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowRange {
    /// Rows skipped.
    pub offset: u64,
    /// Rows returned at most; `None` for all.
    pub limit: Option<u64>,
}

impl RowRange {
    /// Every row.
    pub const ALL: RowRange = RowRange {
        offset: 0,
        limit: None,
    };

    /// Whether this range restricts nothing.
    pub fn is_all(&self) -> bool {
        *self == RowRange::ALL
    }

    /// The rows both ranges select (an empty intersection has `limit: Some(0)`).
    pub fn intersect(self, other: RowRange) -> RowRange {
        let offset = self.offset.max(other.offset);
        let end = |r: RowRange| r.limit.map(|l| r.offset.saturating_add(l));
        let end = match (end(self), end(other)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RowRange {
            offset,
            limit: end.map(|e| e.saturating_sub(offset)),
        }
    }
}

/// The largest bound PostgreSQL's `LIMIT`/`OFFSET` (bigint) takes.
const MAX_BOUND: u64 = i64::MAX as u64;

/// Parses the value of `limit`/`offset` (`key` is the whole parameter name).
pub(crate) fn parse_bound(key: &str, value: &str) -> Result<u64, RestError> {
    let text = value.trim();
    if let Some(digits) = text.strip_prefix('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(RestError::InvalidRange(RangeError::Negative {
            param: snippet(key),
        }));
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryParamError::value(
            ParamKind::Range,
            key,
            value,
            "expected a non-negative integer",
        )
        .into());
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_BOUND => Ok(n),
        _ => Err(QueryParamError::value(
            ParamKind::Range,
            key,
            value,
            format!("larger than {MAX_BOUND}"),
        )
        .into()),
    }
}

/// Parses the `Range` header (with its `Range-Unit`, if sent) into a range.
pub(crate) fn parse_range_header(range: &str, unit: Option<&str>) -> Result<RowRange, RestError> {
    if let Some(unit) = unit
        && !unit.trim().eq_ignore_ascii_case("items")
    {
        return Err(RestError::InvalidRange(RangeError::Unit {
            value: snippet(unit),
        }));
    }
    let text = range.trim();
    let text = text.strip_prefix("items=").unwrap_or(text);
    let malformed = || {
        RestError::InvalidRange(RangeError::Malformed {
            value: snippet(range),
        })
    };
    let (first, last) = text.split_once('-').ok_or_else(malformed)?;
    let number = |s: &str| -> Result<u64, RestError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        s.parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_BOUND)
            .ok_or_else(malformed)
    };
    let first = number(first)?;
    if last.is_empty() {
        return Ok(RowRange {
            offset: first,
            limit: None,
        });
    }
    let last = number(last)?;
    if first > last {
        return Err(RestError::InvalidRange(RangeError::LowerGreaterThanUpper));
    }
    Ok(RowRange {
        offset: first,
        limit: Some(last - first + 1),
    })
}
