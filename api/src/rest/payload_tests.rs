//! Bodies: JSON shapes per action, same keys in every object, `columns=`, CSV and form
//! bodies, function bodies.

use super::error::RestError;
use super::fixtures::{call_with, table_with};
use super::limits::Limits;
use super::media::ContentType;
use super::payload::{JsonShape, Payload};
use super::request::{ApiRequest, Headers};

/// A request on the test table.
fn request(method: &str, query: &str, content_type: Option<&str>) -> ApiRequest {
    let headers = Headers {
        content_type,
        ..Headers::default()
    };
    table_with(method, query, headers).unwrap()
}

/// Parses `body` for `request`.
fn parse(request: &ApiRequest, body: &str) -> Result<Payload, RestError> {
    Payload::parse(request, body.as_bytes(), &Limits::default())
}

/// The shape and keys of a JSON payload.
fn shape(payload: Payload) -> (JsonShape, Vec<String>) {
    match payload {
        Payload::Json { shape, keys, .. } => (shape, keys),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inserts_take_objects_or_arrays_of_objects_with_the_same_keys() {
    let post = request("POST", "", None);
    assert_eq!(
        shape(parse(&post, r#"{"b":1,"a":{"x":[1]}}"#).unwrap()),
        (JsonShape::Object, vec!["b".into(), "a".into()])
    );
    let (s, keys) = shape(parse(&post, r#"[{"a":1,"b":2},{"b":3,"a":null}]"#).unwrap());
    assert_eq!(
        (s, keys),
        (JsonShape::Array(2), vec!["a".into(), "b".into()])
    );
    assert_eq!(
        shape(parse(&post, "[]").unwrap()),
        (JsonShape::Array(0), vec![])
    );
    let err = parse(&post, r#"[{"a":1},{"a":1,"b":2}]"#).unwrap_err();
    assert_eq!((err.code(), err.status().as_u16()), ("PGRST102", 400));
    assert!(
        err.to_string()
            .starts_with("All object keys must match (object 2"),
        "{err}"
    );
    for bad in [
        "",
        "  ",
        "{",
        "[1,2]",
        "42",
        r#"{"a":1} x"#,
        r#"[{"a":1},2]"#,
    ] {
        assert_eq!(parse(&post, bad).unwrap_err().code(), "PGRST102", "{bad:?}");
    }
}

#[test]
fn columns_skip_the_same_keys_check() {
    let post = request("POST", "columns=a,b", None);
    let payload = parse(&post, r#"[{"a":1},{"b":2,"c":3}]"#).unwrap();
    assert_eq!(
        shape(payload),
        (JsonShape::Array(2), vec!["a".into(), "b".into()])
    );
}

#[test]
fn put_and_patch_take_one_object() {
    let put = request("PUT", "id=eq.1", None);
    assert!(parse(&put, r#"{"id":1}"#).is_ok());
    assert!(parse(&put, r#"[{"id":1}]"#).is_ok());
    assert_eq!(
        parse(&put, r#"[{"id":1},{"id":2}]"#)
            .unwrap_err()
            .to_string(),
        "PUT takes one JSON object"
    );
    let patch = request("PATCH", "id=eq.1", None);
    assert!(parse(&patch, r#"{"done":true}"#).is_ok());
    assert_eq!(
        parse(&patch, r#"[{"done":true}]"#).unwrap_err().to_string(),
        "PATCH takes one JSON object"
    );
}

#[test]
fn function_bodies() {
    let call = call_with("POST", "", Headers::default()).unwrap();
    let Payload::Json { text, shape, keys } = parse(&call, "").unwrap() else {
        panic!()
    };
    assert_eq!(
        (text.as_str(), shape, keys.len()),
        ("{}", JsonShape::Object, 0)
    );
    assert_eq!(
        shape_of(parse(&call, r#"{"a":1,"b":2}"#).unwrap()).1,
        vec!["a".to_owned(), "b".to_owned()]
    );
    assert_eq!(shape_of(parse(&call, "[1,2]").unwrap()).0, JsonShape::Other);
    assert_eq!(shape_of(parse(&call, "\"x\"").unwrap()).0, JsonShape::Other);
    let headers = Headers {
        content_type: Some("text/plain"),
        ..Headers::default()
    };
    let call = call_with("POST", "", headers).unwrap();
    assert_eq!(
        parse(&call, "hello").unwrap(),
        Payload::Raw {
            bytes: b"hello".to_vec(),
            content_type: ContentType::Text
        }
    );
}

/// Alias of [`shape`] for readability in the function tests.
fn shape_of(payload: Payload) -> (JsonShape, Vec<String>) {
    shape(payload)
}

#[test]
fn csv_bodies_become_json() {
    let post = request("POST", "", Some("text/csv"));
    let body = "name,\"note, quoted\"\r\nAda,\"say \"\"hi\"\"\"\nBob,NULL\n\"NULL\",\n";
    let Payload::Json { text, shape, keys } = parse(&post, body).unwrap() else {
        panic!()
    };
    assert_eq!(shape, JsonShape::Array(3));
    assert_eq!(keys, vec!["name", "note, quoted"]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!([
            {"name": "Ada", "note, quoted": "say \"hi\""},
            {"name": "Bob", "note, quoted": null},
            {"name": "NULL", "note, quoted": ""}
        ])
    );
    let err = parse(&post, "a,b\n1\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("All lines must have same number of fields")
    );
    assert_eq!(parse(&post, "").unwrap_err().code(), "PGRST102");
    assert_eq!(parse(&post, "a\n\"x").unwrap_err().code(), "PGRST102");
    let patch = request("PATCH", "", Some("text/csv"));
    assert_eq!(parse(&patch, "a\n1").unwrap_err().status().as_u16(), 415);
}

#[test]
fn form_bodies_become_json() {
    let post = request("POST", "", Some("application/x-www-form-urlencoded"));
    let Payload::Json { text, keys, .. } = parse(&post, "name=Ada+L&note=a%26b").unwrap() else {
        panic!()
    };
    assert_eq!(keys, vec!["name", "note"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"name": "Ada L", "note": "a&b"})
    );
    assert_eq!(parse(&post, "a=1&a=2").unwrap_err().code(), "PGRST102");
    let headers = Headers {
        content_type: Some("application/x-www-form-urlencoded"),
        ..Headers::default()
    };
    let call = call_with("POST", "", headers).unwrap();
    let Payload::Json { text, .. } = parse(&call, "v=1&v=2&x=3").unwrap() else {
        panic!()
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"v": ["1", "2"], "x": "3"})
    );
}

#[test]
fn keys_per_object_are_bounded() {
    let post = request("POST", "", None);
    let limits = Limits {
        max_payload_keys: 2,
        ..Limits::default()
    };
    let err = Payload::parse(&post, br#"{"a":1,"b":2,"c":3}"#, &limits).unwrap_err();
    assert!(err.to_string().contains("more than 2 keys"), "{err}");
    // Duplicate keys count once.
    assert!(Payload::parse(&post, br#"{"a":1,"a":2,"b":3}"#, &limits).is_ok());
}

#[test]
fn a_bulk_insert_of_ten_thousand_rows() {
    let post = request("POST", "", None);
    let rows: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"id":{i},"title":"t{i}","done":false}}"#))
        .collect();
    let body = format!("[{}]", rows.join(","));
    let (s, keys) = shape(parse(&post, &body).unwrap());
    assert_eq!(s, JsonShape::Array(10_000));
    assert_eq!(keys, vec!["id", "title", "done"]);
}
