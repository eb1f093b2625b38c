//! `Accept` negotiation and the `Content-Type` of bodies.

use super::error::RestError;
use super::fixtures::{call_with, table_with};
use super::media::{ContentType, MediaType, negotiate, parse_content_type};
use super::request::Headers;

#[test]
fn accept_picks_the_first_producible_type() {
    let cases = [
        (None, MediaType::Json),
        (Some(""), MediaType::Json),
        (Some("application/json"), MediaType::Json),
        (Some("*/*"), MediaType::Json),
        (Some("application/*"), MediaType::Json),
        (Some("text/csv"), MediaType::Csv),
        (Some("text/csv, application/json"), MediaType::Csv),
        (Some("application/json, text/csv"), MediaType::Json),
        (
            Some("application/vnd.pgrst.object+json"),
            MediaType::SingleObject { strip_nulls: false },
        ),
        (
            Some("application/vnd.pgrst.object+json;nulls=stripped"),
            MediaType::SingleObject { strip_nulls: true },
        ),
        (
            Some("application/vnd.pgrst.array+json;nulls=stripped"),
            MediaType::JsonStripNulls,
        ),
        (Some("application/vnd.pgrst.array+json"), MediaType::Json),
        (Some("image/png, text/csv"), MediaType::Csv),
        (Some("APPLICATION/JSON; charset=utf-8"), MediaType::Json),
    ];
    for (accept, expected) in cases {
        assert_eq!(negotiate(accept).unwrap(), expected, "{accept:?}");
    }
}

#[test]
fn accept_honours_quality_and_specificity() {
    assert_eq!(
        negotiate(Some("application/json;q=0.5, text/csv")).unwrap(),
        MediaType::Csv
    );
    assert_eq!(
        negotiate(Some("text/csv;q=0, */*")).unwrap(),
        MediaType::Json
    );
    assert_eq!(negotiate(Some("*/*, text/csv")).unwrap(), MediaType::Csv);
    assert_eq!(
        negotiate(Some(
            "application/json;q=0.9,application/vnd.pgrst.object+json"
        ))
        .unwrap(),
        MediaType::SingleObject { strip_nulls: false }
    );
}

#[test]
fn unproducible_accept_is_406() {
    let err = negotiate(Some("image/png, text/html")).unwrap_err();
    assert_eq!(err.code(), "PGRST107");
    assert_eq!(err.status().as_u16(), 406);
    assert_eq!(
        err.to_string(),
        "None of these media types are available: image/png, text/html"
    );
    assert!(negotiate(Some("application/json;q=0")).is_err());
    let headers = Headers {
        accept: Some("application/xml"),
        ..Headers::default()
    };
    assert_eq!(
        table_with("GET", "", headers)
            .unwrap_err()
            .status()
            .as_u16(),
        406
    );
}

#[test]
fn content_types_of_bodies() {
    assert_eq!(parse_content_type(None, false).unwrap(), ContentType::Json);
    assert_eq!(
        parse_content_type(Some("application/json; charset=utf-8"), false).unwrap(),
        ContentType::Json
    );
    assert_eq!(
        parse_content_type(Some("text/csv"), false).unwrap(),
        ContentType::Csv
    );
    assert_eq!(
        parse_content_type(Some("application/x-www-form-urlencoded"), false).unwrap(),
        ContentType::UrlEncoded
    );
    assert_eq!(
        parse_content_type(Some("text/plain"), true).unwrap(),
        ContentType::Text
    );
    assert_eq!(
        parse_content_type(Some("application/octet-stream"), true).unwrap(),
        ContentType::Binary
    );
    for (bad, call) in [
        ("text/plain", false),
        ("application/octet-stream", false),
        ("application/xml", true),
        ("application/json; charset=latin1", false),
    ] {
        let err = parse_content_type(Some(bad), call).unwrap_err();
        assert!(
            matches!(err, RestError::UnsupportedContentType { .. }),
            "{bad}"
        );
        assert_eq!((err.code(), err.status().as_u16()), ("PGRST107", 415));
    }
}

#[test]
fn content_type_is_read_only_for_methods_with_a_body() {
    let headers = Headers {
        content_type: Some("image/png"),
        ..Headers::default()
    };
    assert_eq!(
        table_with("GET", "", headers.clone()).unwrap().content_type,
        None
    );
    assert_eq!(
        table_with("DELETE", "", headers.clone())
            .unwrap()
            .content_type,
        None
    );
    assert_eq!(
        table_with("POST", "", headers.clone())
            .unwrap_err()
            .status()
            .as_u16(),
        415
    );
    assert_eq!(
        table_with("PATCH", "", headers.clone())
            .unwrap_err()
            .status()
            .as_u16(),
        415
    );
    assert_eq!(
        call_with("POST", "", headers)
            .unwrap_err()
            .status()
            .as_u16(),
        415
    );
    let headers = Headers {
        content_type: Some("text/plain"),
        ..Headers::default()
    };
    assert_eq!(
        call_with("POST", "", headers).unwrap().content_type,
        Some(ContentType::Text)
    );
}
