//! Random requests thrown at parse + build against the fixture's real schema snapshot: the
//! builder never panics; every identifier the SQL quotes is a name of the snapshot; the
//! SQL is one statement; every `$n` has its parameter. And a smaller run executed against
//! PostgreSQL (as service_role, `tx=rollback`): whatever the request, the answer is a
//! client error or a success, never a statement the server got wrong (5xx).

use std::cell::Cell;
use std::collections::HashSet;

use fluxbase_api::rest::build::{BuildSettings, build};
use fluxbase_api::rest::request::{Headers, ParserConfig, RequestParts, parse_request};
use fluxbase_api::rest::{Flavour, Payload, Resource, RestCall};
use fluxbase_auth::AuthContext;
use fluxbase_migrations::schema::Schema;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::harness::*;

/// Tables and functions of the fixture, and a few names that are not.
const TARGETS: &[&str] = &[
    "films",
    "directors",
    "reviews",
    "actors",
    "roles",
    "posters",
    "people",
    "teams",
    "matches",
    "todos",
    "profiles",
    "nope",
];
const FUNCTIONS: &[&str] = &[
    "add",
    "films_since",
    "years",
    "film_stats",
    "ratings",
    "echo",
    "total",
    "greet",
    "twice",
    "whoami",
    "nope",
];

/// Pieces of the query language over the fixture's names.
const FRAGMENTS: &[&str] = &[
    "select=",
    "*",
    "id",
    "title",
    "name",
    "year",
    "rating",
    "meta",
    "meta->lang",
    "meta->>lang",
    "meta->tags->0",
    "tsv",
    "showing",
    "stars",
    "body",
    "film_id",
    "director_id",
    "directors(*)",
    "directors(name)",
    "reviews(stars,body)",
    "reviews(count())",
    "reviews(count)",
    "actors(name)",
    "films(id,title)",
    "films(*,reviews(*))",
    "roles(character)",
    "posters(url)",
    "people(name)",
    "mentor_id(name)",
    "teams!home_id(name)",
    "teams(name)",
    "matches(id)",
    "...directors(name)",
    "!inner",
    "!left",
    "count()",
    "stars.avg()",
    "id.max()",
    "x:",
    "::text",
    "::int8",
    "::numeric",
    ",",
    "(",
    ")",
    ".",
    "&",
    "=",
    "eq.",
    "neq.",
    "gt.",
    "gte.",
    "lt.",
    "like.",
    "ilike.",
    "match.",
    "in.(",
    "is.null",
    "is.true",
    "isdistinct.",
    "not.",
    "or=(",
    "and=(",
    "not.or=(",
    "order=",
    "limit=",
    "offset=",
    ".desc",
    ".asc",
    ".nullslast",
    ".nullsfirst",
    "cs.",
    "cd.",
    "ov.",
    "sl.",
    "adj.",
    "{1,2}",
    "[1,5)",
    "fts.",
    "fts(english).",
    "wfts.",
    "eq(any).",
    "like(all).",
    "abc",
    "1",
    "0",
    "-1",
    "1962",
    "%22",
    "\"",
    "\\",
    "*a*",
    "reviews.stars=eq.5",
    "reviews.order=id.desc",
    "reviews.limit=1",
    "reviews.offset=1",
    "directors=not.is.null",
    "reviews=is.null",
    "order=directors(name)",
    "on_conflict=id",
    "columns=id,name",
    "a=1",
    "b=2",
    "since=1970",
    "n=1",
    "x=2",
];

/// A query string: a soup of fragments, or well-formed pairs over the fixture.
fn query() -> impl Strategy<Value = String> {
    let soup = prop::collection::vec(
        prop_oneof![
            9 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
            1 => "[\\PC]{0,4}",
        ],
        0..20,
    )
    .prop_map(|parts| parts.concat());
    let pair = prop::collection::vec(prop::sample::select(FRAGMENTS), 1..5)
        .prop_map(|parts| parts.concat());
    let pairs = prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&"));
    prop_oneof![soup, pairs]
}

/// Columns, embeds and values of the films table, for well-formed queries.
const COLUMNS: &[&str] = &[
    "id",
    "title",
    "year",
    "director_id",
    "rating",
    "meta",
    "showing",
];
const EMBEDS: &[&str] = &[
    "directors(name)",
    "directors(*)",
    "d:directors!inner(id,name)",
    "reviews(stars,body)",
    "reviews(count())",
    "reviews!inner(id)",
    "actors(name,roles(character))",
    "posters(url)",
    "...directors(director:name)",
    "reviews(id,films(title,directors(name)))",
];
const OPS: &[&str] = &[
    "eq.1",
    "neq.2",
    "gt.1970",
    "gte.1",
    "lt.5",
    "lte.1980",
    "like.*a*",
    "ilike.*E*",
    "match.^C",
    "imatch.x",
    "is.null",
    "is.not_null",
    "isdistinct.3",
    "in.(1,2,3)",
    "in.()",
    "not.eq.1",
    "eq.abc",
    "cs.{1}",
    "ov.[1,3)",
    "fts.widow",
    "eq(any).{1,2}",
    "gt(all).{1,2}",
    "not.in.(4)",
    "is.true",
];

/// A well-formed query on films: select, filters, order, range.
fn films_query() -> impl Strategy<Value = String> {
    let select = (
        prop::collection::vec(prop::sample::select(COLUMNS), 0..4),
        prop::collection::vec(prop::sample::select(EMBEDS), 0..3),
        prop::sample::select(vec!["", "x:", "::text"]),
    )
        .prop_map(|(cols, embeds, deco)| {
            let mut items: Vec<String> = cols.iter().map(|c| (*c).to_owned()).collect();
            if let Some(first) = items.first_mut() {
                if deco.ends_with(':') {
                    *first = format!("{deco}{first}");
                } else {
                    first.push_str(deco);
                }
            }
            items.extend(embeds.iter().map(|e| (*e).to_owned()));
            if items.is_empty() {
                items.push("*".to_owned());
            }
            format!("select={}", items.join(","))
        });
    let filters = prop::collection::vec(
        (prop::sample::select(COLUMNS), prop::sample::select(OPS))
            .prop_map(|(c, op)| format!("{c}={op}")),
        0..3,
    );
    let extra = prop::collection::vec(
        prop::sample::select(vec![
            "order=year.desc.nullslast,id",
            "order=id",
            "limit=2",
            "offset=1",
            "or=(id.eq.1,year.gt.1980)",
            "and=(id.gt.0,or(rating.is.null,title.like.*o*))",
            "reviews.stars=gte.4",
            "reviews.order=id.desc",
            "reviews.limit=1",
            "directors=not.is.null",
            "order=directors(name)",
            "meta->>lang=eq.fr",
        ]),
        0..3,
    );
    (select, filters, extra).prop_map(|(select, filters, extra)| {
        let mut parts = vec![select];
        parts.extend(filters);
        parts.extend(extra.iter().map(|e| (*e).to_owned()));
        parts.join("&")
    })
}

/// One random request's parts.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    function: bool,
    target: &'static str,
    query: String,
    prefer: Vec<&'static str>,
    accept: Option<&'static str>,
    body: String,
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop::sample::select(vec![
        "GET", "GET", "GET", "GET", "HEAD", "POST", "PATCH", "PUT", "DELETE",
    ]);
    let prefer = prop::collection::vec(
        prop::sample::select(vec![
            "count=exact",
            "count=planned",
            "count=estimated",
            "return=representation",
            "return=headers-only",
            "resolution=merge-duplicates",
            "resolution=ignore-duplicates",
            "missing=default",
            "handling=strict",
            "max-affected=1",
            "timezone=UTC",
        ]),
        0..3,
    );
    let accept = prop::option::of(prop::sample::select(vec![
        "application/vnd.pgrst.object+json",
        "text/csv",
        "application/vnd.pgrst.array+json;nulls=stripped",
    ]));
    let body = prop::sample::select(vec![
        r#"{"id": 100, "name": "x"}"#,
        r#"[{"id": 101, "title": "t"}, {"id": 102, "title": "u"}]"#,
        r#"{"title": "only"}"#,
        r#"{"a": 1, "b": 2}"#,
        r#"{"nope": 1}"#,
        r#"[]"#,
        r#"{}"#,
        r#"[1, 2]"#,
        r#"{"id": "abc"}"#,
    ]);
    let target = prop_oneof![
        3 => films_query().prop_map(|q| (false, "films", q)),
        1 => (prop::sample::select(TARGETS), query()).prop_map(|(t, q)| (false, t, q)),
        1 => (prop::sample::select(FUNCTIONS), query()).prop_map(|(f, q)| (true, f, q)),
    ];
    (method, target, prefer, accept, body).prop_map(
        |(method, (function, target, query), prefer, accept, body)| Case {
            method,
            function,
            target,
            query,
            prefer,
            accept,
            body: body.to_owned(),
        },
    )
}

impl Case {
    fn headers(&self, extra: &'static str) -> (Vec<&str>, Headers<'_>) {
        let mut prefer: Vec<&str> = self.prefer.clone();
        prefer.push(extra);
        let headers = Headers {
            prefer: Vec::new(),
            accept: self.accept,
            ..Headers::default()
        };
        (prefer, headers)
    }

    fn resource(&self) -> Resource<'_> {
        if self.function {
            Resource::Function {
                schema: None,
                name: self.target,
            }
        } else {
            Resource::Table {
                schema: None,
                name: self.target,
                key: None,
            }
        }
    }
}

/// Every name of the snapshot: the only identifiers the SQL may quote.
fn names(schema: &Schema) -> HashSet<String> {
    let mut names = HashSet::new();
    for ns in schema.namespaces() {
        names.insert(ns.name.clone());
    }
    for relation in schema.relations() {
        names.insert(relation.schema.clone());
        names.insert(relation.name.clone());
        names.extend(relation.columns.iter().map(|c| c.name.clone()));
    }
    for function in schema.functions() {
        names.insert(function.schema.clone());
        names.insert(function.name.clone());
        names.extend(function.args.iter().map(|a| a.name.clone()));
    }
    names
}

/// The quoted identifiers of a statement (string literals skipped); fails on a `;`.
fn quoted_identifiers(sql: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    Some('\'') => break,
                    Some(_) => {}
                    None => return Err("unterminated string literal".into()),
                }
            },
            '"' => {
                let mut ident = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            ident.push('"');
                        }
                        Some('"') => break,
                        Some(c) => ident.push(c),
                        None => return Err("unterminated identifier".into()),
                    }
                }
                out.push(ident);
            }
            ';' => return Err("a second statement".into()),
            _ => {}
        }
    }
    Ok(out)
}

/// The highest `$n` of a statement.
fn highest_param(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut highest = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if let Ok(n) = sql[start..end].parse::<usize>() {
                highest = highest.max(n);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    highest
}

#[test]
fn random_requests_build_sql_naming_only_the_snapshot() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rest = rt.block_on(Rest::new());
    let snapshot = rest.cache.snapshot();
    let allowed = names(&snapshot);
    let config = ParserConfig::default();
    let schemas = vec!["public".to_owned()];
    let settings = BuildSettings {
        schemas: &schemas,
        max_rows: Some(50),
    };
    let mut runner = TestRunner::new(Config {
        cases: 3_000,
        failure_persistence: None,
        ..Config::default()
    });
    let built = Cell::new(0usize);
    runner
        .run(&case(), |case| {
            let (prefer, mut headers) = case.headers("handling=lenient");
            headers.prefer = prefer;
            let parts = RequestParts {
                method: case.method,
                resource: case.resource(),
                query: &case.query,
                headers,
            };
            let Ok(request) = parse_request(&parts, &config) else {
                return Ok(());
            };
            let payload = if request.action.has_body() {
                match Payload::parse(&request, case.body.as_bytes(), &config.limits) {
                    Ok(p) => Some(p),
                    Err(_) => return Ok(()),
                }
            } else {
                None
            };
            let Ok(plan) = build(&request, payload, &snapshot, &settings) else {
                return Ok(());
            };
            built.set(built.get() + 1);
            for sql in std::iter::once(&plan.main).chain(plan.explain.as_ref()) {
                let idents = quoted_identifiers(&sql.text)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", sql.text)))?;
                for ident in idents {
                    prop_assert!(
                        allowed.contains(&ident),
                        "identifier {ident:?} is not in the snapshot: {}",
                        sql.text
                    );
                }
                prop_assert_eq!(highest_param(&sql.text), sql.params.len(), "{}", sql.text);
            }
            Ok(())
        })
        .unwrap();
    let built = built.get();
    eprintln!("built {built} statements");
    assert!(
        built > 300,
        "only {built} random requests got as far as SQL"
    );
}

#[test]
fn random_requests_run_without_server_errors() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rest = rt.block_on(Rest::with(FIXTURE, |s| s.max_rows = Some(50)));
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let answered: [Cell<usize>; 6] = Default::default();
    runner
        .run(&case(), |case| {
            let (prefer, mut headers) = case.headers("tx=rollback");
            headers.prefer = prefer;
            let call = RestCall {
                method: case.method,
                resource: case.resource(),
                query: &case.query,
                headers,
                body: case.body.as_bytes(),
            };
            let response = rt.block_on(rest.service.handle(
                call,
                &AuthContext::service_role(),
                Flavour::PostgRest,
            ));
            let status = response.status.as_u16();
            let class = &answered[usize::from(status / 100)];
            class.set(class.get() + 1);
            prop_assert!(
                status < 500 || status == 504,
                "{case:?} answered {status}: {}",
                String::from_utf8_lossy(&response.body)
            );
            Ok(())
        })
        .unwrap();
    let answered: Vec<usize> = answered.iter().map(Cell::get).collect();
    eprintln!("answered by status class: {answered:?}");
    assert!(answered[2] > 40, "too few successes: {answered:?}");
}
