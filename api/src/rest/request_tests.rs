//! The whole request: methods and actions, schemas and profiles, which parameters each
//! method takes, PUT rules, RPC arguments, query-string and header bounds.

use super::error::{RestError, SNIPPET_CHARS};
use super::fixtures::{call_with, get, get_err, get_parse_err, table, table_with};
use super::logic::Condition;
use super::request::{Headers, ParserConfig, RequestParts, parse_request};
use super::target::{Action, CallMethod, Resource, Target};

/// A request on `resource` with `config`.
fn parse_on(
    method: &str,
    resource: Resource,
    headers: Headers,
    config: &ParserConfig,
) -> Result<super::request::ApiRequest, RestError> {
    let parts = RequestParts {
        method,
        resource,
        query: "",
        headers,
    };
    parse_request(&parts, config)
}

/// Two exposed schemas, plus one that may never be exposed.
fn two_schemas() -> ParserConfig {
    ParserConfig {
        schemas: vec!["api".into(), "public".into(), "auth".into()],
        ..ParserConfig::default()
    }
}

#[test]
fn methods_map_to_actions() {
    let cases = [
        ("GET", Action::Read { head: false }),
        ("HEAD", Action::Read { head: true }),
        ("POST", Action::Insert),
        ("PATCH", Action::Update),
        ("DELETE", Action::Delete),
    ];
    for (method, action) in cases {
        let request = table(method, "").unwrap();
        assert_eq!(request.action, action);
        assert_eq!(request.schema, "public");
        assert_eq!(
            request.target,
            Target::Table {
                name: "items".into(),
                key: None
            }
        );
    }
    assert_eq!(table("PUT", "id=eq.1").unwrap().action, Action::Upsert);
    for method in ["OPTIONS", "TRACE", "get", "CONNECT"] {
        let err = table(method, "").unwrap_err();
        assert_eq!(
            err,
            RestError::UnsupportedMethod {
                method: method.into()
            }
        );
        assert_eq!((err.code(), err.status().as_u16()), ("PGRST117", 405));
    }
}

#[test]
fn functions_take_get_head_and_post_only() {
    let h = Headers::default;
    assert_eq!(
        call_with("GET", "", h()).unwrap().action,
        Action::Call(CallMethod::Get)
    );
    assert_eq!(
        call_with("HEAD", "", h()).unwrap().action,
        Action::Call(CallMethod::Head)
    );
    assert_eq!(
        call_with("POST", "", h()).unwrap().action,
        Action::Call(CallMethod::Post)
    );
    for method in ["PATCH", "PUT", "DELETE"] {
        let err = call_with(method, "", h()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Cannot use the {method} method on RPC")
        );
        assert_eq!((err.code(), err.status().as_u16()), ("PGRST101", 405));
    }
}

#[test]
fn rpc_arguments_from_the_query_string() {
    let request = call_with("GET", "a=1&b=x%20y&v=1&v=2&v=3", Headers::default()).unwrap();
    let args: Vec<_> = request
        .rpc_args
        .iter()
        .map(|a| (a.name.as_str(), a.values.clone()))
        .collect();
    assert_eq!(
        args,
        vec![
            ("a", vec!["1".to_owned()]),
            ("b", vec!["x y".to_owned()]),
            ("v", vec!["1".to_owned(), "2".to_owned(), "3".to_owned()]),
        ]
    );
    // Filters, select and order apply to a set-returning function's rows.
    let request = call_with(
        "GET",
        "a=1&id=gt.2&select=id,name&order=id.desc&limit=3",
        Headers::default(),
    )
    .unwrap();
    assert_eq!(request.rpc_args.len(), 1);
    assert_eq!(request.query.filters.len(), 1);
    assert_eq!(request.query.order.len(), 1);
    assert_eq!(request.query.range.limit, Some(3));
    // POST takes its arguments from the body: a non-filter parameter is an error.
    assert_eq!(
        call_with("POST", "a=1", Headers::default())
            .unwrap_err()
            .code(),
        "PGRST100"
    );
    // An embed path never names an argument.
    assert_eq!(
        call_with("GET", "a.b=1", Headers::default())
            .unwrap_err()
            .code(),
        "PGRST100"
    );
    assert_eq!(
        call_with("GET", "a->b=1", Headers::default())
            .unwrap_err()
            .code(),
        "PGRST100"
    );
}

#[test]
fn path_names_and_keys() {
    let config = ParserConfig::default();
    let resource = Resource::Table {
        schema: Some("public"),
        name: "todos",
        key: Some("42"),
    };
    let request = parse_on("GET", resource, Headers::default(), &config).unwrap();
    assert_eq!(
        request.target,
        Target::Table {
            name: "todos".into(),
            key: Some("42".into())
        }
    );
    let err = parse_on("POST", resource, Headers::default(), &config).unwrap_err();
    assert_eq!((err.code(), err.status().as_u16()), ("PGRST125", 404));
    // PUT with a key needs no filter.
    assert_eq!(
        parse_on("PUT", resource, Headers::default(), &config)
            .unwrap()
            .action,
        Action::Upsert
    );
    for name in ["", "a\0b"] {
        let resource = Resource::Table {
            schema: None,
            name,
            key: None,
        };
        assert_eq!(
            parse_on("GET", resource, Headers::default(), &config)
                .unwrap_err()
                .code(),
            "PGRST125"
        );
    }
    let long = "t".repeat(64);
    let resource = Resource::Function {
        schema: None,
        name: &long,
    };
    let err = parse_on("POST", resource, Headers::default(), &config).unwrap_err();
    assert!(err.details().unwrap().contains("63 bytes"));
}

#[test]
fn schemas_from_path_and_profiles() {
    let config = two_schemas();
    let table = Resource::Table {
        schema: None,
        name: "t",
        key: None,
    };
    assert_eq!(
        parse_on("GET", table, Headers::default(), &config)
            .unwrap()
            .schema,
        "api"
    );
    let accept = Headers {
        accept_profile: Some("public"),
        ..Headers::default()
    };
    assert_eq!(
        parse_on("GET", table, accept.clone(), &config)
            .unwrap()
            .schema,
        "public"
    );
    // Writes read Content-Profile, not Accept-Profile.
    assert_eq!(
        parse_on("POST", table, accept, &config).unwrap().schema,
        "api"
    );
    let content = Headers {
        content_profile: Some("public"),
        ..Headers::default()
    };
    assert_eq!(
        parse_on("DELETE", table, content.clone(), &config)
            .unwrap()
            .schema,
        "public"
    );
    let call = Resource::Function {
        schema: None,
        name: "f",
    };
    assert_eq!(
        parse_on("POST", call, content, &config).unwrap().schema,
        "public"
    );
    let in_path = Resource::Table {
        schema: Some("public"),
        name: "t",
        key: None,
    };
    assert_eq!(
        parse_on("GET", in_path, Headers::default(), &config)
            .unwrap()
            .schema,
        "public"
    );
}

#[test]
fn unexposed_schemas_are_pgrst106() {
    let config = two_schemas();
    let table = Resource::Table {
        schema: None,
        name: "t",
        key: None,
    };
    let headers = Headers {
        accept_profile: Some("private"),
        ..Headers::default()
    };
    let err = parse_on("GET", table, headers, &config).unwrap_err();
    assert_eq!((err.code(), err.status().as_u16()), ("PGRST106", 406));
    assert_eq!(err.to_string(), "Invalid schema: private");
    assert_eq!(
        err.hint().as_deref(),
        Some("Only the following schemas are exposed: api, public")
    );
    // auth is configured but may never be exposed; pg_* neither.
    for schema in [
        "auth",
        "storage",
        "pg_catalog",
        "pg_toast",
        "information_schema",
    ] {
        let headers = Headers {
            accept_profile: Some(schema),
            ..Headers::default()
        };
        assert_eq!(
            parse_on("GET", table, headers, &config).unwrap_err().code(),
            "PGRST106"
        );
        let in_path = Resource::Table {
            schema: Some(schema),
            name: "t",
            key: None,
        };
        assert_eq!(
            parse_on("GET", in_path, Headers::default(), &config)
                .unwrap_err()
                .code(),
            "PGRST106"
        );
    }
    // A path schema and a profile that disagree.
    let in_path = Resource::Table {
        schema: Some("api"),
        name: "t",
        key: None,
    };
    let headers = Headers {
        accept_profile: Some("public"),
        ..Headers::default()
    };
    assert_eq!(
        parse_on("GET", in_path, headers, &config)
            .unwrap_err()
            .code(),
        "PGRST106"
    );
    // Nothing exposed at all.
    let none = ParserConfig {
        schemas: vec!["auth".into()],
        ..ParserConfig::default()
    };
    assert_eq!(
        parse_on("GET", table, Headers::default(), &none)
            .unwrap_err()
            .code(),
        "PGRST106"
    );
}

#[test]
fn columns_and_on_conflict_belong_to_writes() {
    let request = table(
        "POST",
        "columns=source,%22publication%20year%22&on_conflict=name,id",
    )
    .unwrap();
    assert_eq!(
        request.columns,
        Some(vec!["source".into(), "publication year".into()])
    );
    assert_eq!(request.on_conflict, Some(vec!["name".into(), "id".into()]));
    assert!(table("PATCH", "columns=a").is_ok());
    assert!(call_with("POST", "columns=a", Headers::default()).is_ok());
    for (method, query) in [
        ("GET", "columns=a"),
        ("DELETE", "columns=a"),
        ("PATCH", "on_conflict=a"),
        ("GET", "on_conflict=a"),
    ] {
        assert_eq!(
            table(method, query).unwrap_err().code(),
            "PGRST100",
            "{method} {query}"
        );
    }
    let err = table("GET", "columns=a").unwrap_err();
    assert_eq!(err.to_string(), "unexpected parameter columns");
    assert_eq!(
        err.details().as_deref(),
        Some("columns is only valid with POST and PATCH")
    );
    for bad in ["columns=", "columns=a,,b", "columns=a;b", "on_conflict=a,"] {
        assert_eq!(table("POST", bad).unwrap_err().code(), "PGRST100", "{bad}");
    }
}

#[test]
fn limited_writes() {
    assert!(table("PATCH", "order=id&limit=10").is_ok());
    assert!(table("DELETE", "order=id&limit=10&offset=2").is_ok());
    for method in ["PATCH", "DELETE"] {
        let err = table(method, "limit=10").unwrap_err();
        assert_eq!((err.code(), err.status().as_u16()), ("PGRST109", 400));
    }
    assert_eq!(table("POST", "limit=1").unwrap_err().code(), "PGRST100");
    // Embedded ranges shape the representation and are fine.
    assert!(table("POST", "select=*,a(*)&a.limit=1").is_ok());
}

#[test]
fn put_is_by_primary_key() {
    let request = table("PUT", "id=eq.1&org=eq.2").unwrap();
    assert_eq!(request.query.filters.len(), 2);
    for bad in [
        "",
        "id=gt.1",
        "id=not.eq.1",
        "id=eq(any).{1}",
        "data->a=eq.1",
        "or=(id.eq.1)",
    ] {
        let err = table("PUT", bad).unwrap_err();
        assert_eq!(
            (err.code(), err.status().as_u16()),
            ("PGRST105", 405),
            "{bad}"
        );
    }
    let err = table("PUT", "id=eq.1&limit=1").unwrap_err();
    assert_eq!((err.code(), err.status().as_u16()), ("PGRST114", 400));
}

#[test]
fn query_string_decoding() {
    let request = get("name=eq.a+b%2Cc&select=id%2Cname");
    let Condition::Filter(f) = &request.query.filters[0] else {
        panic!()
    };
    assert!(
        matches!(&f.operation, super::filter::Operation::Compare { value, .. } if value == "a b,c")
    );
    assert_eq!(request.query.select.len(), 2);
    // Empty pairs are skipped; a lone % stays.
    assert!(
        matches!(&get("&&name=eq.100%&").query.filters[0], Condition::Filter(f)
        if matches!(&f.operation, super::filter::Operation::Compare { value, .. } if value == "100%"))
    );
    // A quoted "order" is a column, not the order parameter.
    assert_eq!(get("%22order%22=eq.1").query.filters.len(), 1);
}

#[test]
fn query_string_bounds() {
    let err = get_parse_err("name=eq.%00");
    assert!(err.reason.contains("NUL"));
    assert!(get_parse_err("name=eq.%FF").reason.contains("UTF-8"));
    let long = format!("name=eq.{}", "a".repeat(32 * 1024));
    assert!(
        get_parse_err(&long)
            .reason
            .contains("longer than 32768 bytes")
    );
    let many = vec!["a=eq.1"; 257].join("&");
    assert!(
        get_parse_err(&many)
            .reason
            .contains("more than 256 parameters")
    );
    assert!(get_parse_err("select=a&select=b").reason.contains("twice"));
    let deep = format!("{}x=eq.1", "a.".repeat(7));
    assert_eq!(get_err(&deep).code(), "PGRST100");
    let deep = format!("{}order=x", "a.".repeat(7));
    assert_eq!(get_err(&deep).code(), "PGRST100");
}

#[test]
fn headers_are_bounded() {
    let long = "x".repeat(5000);
    let headers = Headers {
        prefer: vec![&long],
        ..Headers::default()
    };
    let err = table_with("GET", "", headers).unwrap_err();
    assert_eq!(err.code(), "PGRST100");
    assert_eq!(err.to_string(), "invalid Prefer header");
    let headers = Headers {
        accept: Some("a\u{1}b"),
        ..Headers::default()
    };
    assert_eq!(
        table_with("GET", "", headers).unwrap_err().to_string(),
        "invalid Accept header"
    );
}

#[test]
fn strict_preferences_fail_the_request() {
    let headers = Headers {
        prefer: vec!["handling=strict", "nope"],
        ..Headers::default()
    };
    assert_eq!(
        table_with("GET", "", headers).unwrap_err().code(),
        "PGRST122"
    );
}

#[test]
fn error_messages_repeat_a_bounded_prefix_of_the_input() {
    let secretish = "z".repeat(10_000);
    for query in [
        format!("name=noop.{secretish}"),
        format!("{secretish}=noop.1"),
        format!("select={secretish}("),
        format!("or=({secretish}"),
        format!("order={secretish}.up"),
        format!("limit={secretish}"),
    ] {
        let err = get_err(&query);
        let text = format!("{} {:?} {:?}", err, err.details(), err.hint());
        assert!(
            text.len() < 4 * SNIPPET_CHARS + 200,
            "{} bytes: {text}",
            text.len()
        );
        let body = err.postgrest_body();
        assert_eq!(body["code"], "PGRST100");
        assert!(body.get("details").is_some() && body.get("hint").is_some());
    }
}
