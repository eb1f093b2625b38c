//! `limit`/`offset` (root and embedded) and the `Range`/`Range-Unit` headers.

use super::error::{RangeError, RestError};
use super::fixtures::{call_with, get, get_err, get_parse_err, table, table_with};
use super::range::RowRange;
use super::request::Headers;

/// A range from offset and limit.
fn range(offset: u64, limit: Option<u64>) -> RowRange {
    RowRange { offset, limit }
}

/// `GET` with a Range header (and unit).
fn with_range(query: &str, value: &str, unit: Option<&str>) -> Result<RowRange, RestError> {
    let headers = Headers {
        range: Some(value),
        range_unit: unit,
        ..Headers::default()
    };
    table_with("GET", query, headers).map(|r| r.query.range)
}

#[test]
fn limit_and_offset() {
    assert_eq!(get("").query.range, RowRange::ALL);
    assert!(get("").query.range.is_all());
    assert_eq!(get("limit=15&offset=30").query.range, range(30, Some(15)));
    assert_eq!(get("offset=5").query.range, range(5, None));
    assert_eq!(get("limit=0").query.range, range(0, Some(0)));
    let request = get("select=*,actors(*)&actors.limit=2&actors.offset=1&limit=10");
    assert_eq!(request.query.range, range(0, Some(10)));
    assert_eq!(
        request.query.embeds().next().unwrap().query.range,
        range(1, Some(2))
    );
}

#[test]
fn bad_limits() {
    let err = get_err("limit=-1");
    assert_eq!(
        err,
        RestError::InvalidRange(RangeError::Negative {
            param: "limit".into()
        })
    );
    assert_eq!((err.code(), err.status().as_u16()), ("PGRST103", 416));
    assert_eq!(
        err.details().as_deref(),
        Some("limit should be greater than or equal to zero.")
    );
    assert_eq!(get_err("actors.offset=-3").code(), "PGRST103");
    for bad in [
        "limit=abc",
        "limit=",
        "limit=1.5",
        "offset=1e3",
        "limit=99999999999999999999",
    ] {
        get_parse_err(bad);
    }
    assert!(get_parse_err("limit=1&limit=2").reason.contains("twice"));
    assert_eq!(get_err("actors.limit=1").code(), "PGRST108");
}

#[test]
fn range_header() {
    assert_eq!(
        with_range("", "0-19", Some("items")).unwrap(),
        range(0, Some(20))
    );
    assert_eq!(with_range("", "10-", None).unwrap(), range(10, None));
    assert_eq!(
        with_range("", "items=5-5", None).unwrap(),
        range(5, Some(1))
    );
    // Intersected with limit/offset.
    assert_eq!(
        with_range("limit=5", "0-9", None).unwrap(),
        range(0, Some(5))
    );
    assert_eq!(
        with_range("offset=3", "0-9", None).unwrap(),
        range(3, Some(7))
    );
    assert_eq!(
        with_range("offset=20", "0-9", None).unwrap(),
        range(20, Some(0))
    );
}

#[test]
fn bad_range_headers() {
    let err = with_range("", "10-5", None).unwrap_err();
    assert_eq!(
        err,
        RestError::InvalidRange(RangeError::LowerGreaterThanUpper)
    );
    assert_eq!(err.to_string(), "Requested range not satisfiable");
    for bad in ["a-b", "5", "-5", "1-2-3", "bytes=0-1", ""] {
        let err = with_range("", bad, None).unwrap_err();
        assert!(
            matches!(err, RestError::InvalidRange(RangeError::Malformed { .. })),
            "{bad}"
        );
    }
    let err = with_range("", "0-1", Some("bytes")).unwrap_err();
    assert!(matches!(
        err,
        RestError::InvalidRange(RangeError::Unit { .. })
    ));
}

#[test]
fn range_header_only_applies_to_reads() {
    let headers = Headers {
        range: Some("0-1"),
        ..Headers::default()
    };
    let request = table_with("DELETE", "", headers.clone()).unwrap();
    assert!(request.query.range.is_all());
    let request = call_with("GET", "", headers.clone()).unwrap();
    assert_eq!(request.query.range, range(0, Some(2)));
    let request = call_with("POST", "", headers).unwrap();
    assert!(request.query.range.is_all());
    assert!(table("GET", "limit=1").is_ok());
}

#[test]
fn intersection_is_commutative_and_bounded() {
    let cases = [
        (range(0, None), range(0, None)),
        (range(3, Some(4)), range(5, Some(10))),
        (range(10, Some(1)), range(0, Some(5))),
        (range(u64::MAX, Some(u64::MAX)), range(1, None)),
    ];
    for (a, b) in cases {
        let ab = a.intersect(b);
        assert_eq!(ab, b.intersect(a));
        assert!(ab.offset >= a.offset.max(b.offset));
    }
}
