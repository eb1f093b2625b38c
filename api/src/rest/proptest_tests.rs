//! Random query strings (bracket-, quote- and dot-heavy, unicode, NUL) thrown at the
//! parser: it never panics, every refusal is a typed PGRST error with a bounded message,
//! and every identifier of an accepted request is a name cut from the input itself — the
//! AST has no other place a client's text could become structure.

use proptest::prelude::*;

use super::error::RestError;
use super::filter::Operation;
use super::limits::Limits;
use super::logic::Condition;
use super::order::OrderTarget;
use super::query::Query;
use super::query_string::decode;
use super::request::{ApiRequest, Headers, ParserConfig, RequestParts, parse_request};
use super::select::SelectItem;
use super::target::{Resource, Target};

/// Characters the grammar gives meaning to, weighted up, plus anything.
fn query_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::sample::select(vec![
            '(', ')', ',', '.', '"', '\\', ':', '!', '*', '=', '&', '-', '>', '%', '{', '}',
            ' ', '+', '\0', ';', '\'',
        ]),
        4 => prop::sample::select(vec![
            'a', 'b', 'e', 'q', 'n', 'o', 't', 'i', 's', 'r', 'l', 'c', 'd', 'x', '0', '1', '9',
        ]),
        1 => prop::sample::select(vec!['é', 'ß', '😀', '\u{7f}', '\u{202e}', '\u{fffd}']),
        1 => any::<char>(),
    ]
}

/// Fragments of valid syntax, so random assembly reaches deep into the grammar.
fn fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "select=",
        "order=",
        "or=",
        "and=",
        "not.or=",
        "a.or=",
        "limit=",
        "offset=",
        "a.limit=",
        "a.order=",
        "columns=",
        "on_conflict=",
        "id=",
        "a.b=",
        "data->x->>0=",
        "eq.",
        "not.",
        "in.(",
        "is.null",
        "fts(english).",
        "like(any).",
        "{1,2}",
        "a(",
        ")",
        "*",
        "a:b",
        "!inner",
        "!hint",
        "...",
        "count()",
        "x.sum()",
        "::text",
        "::int",
        "\"q,\\\"\"",
        ",",
        ".",
        "&",
        "desc",
        "nullsfirst",
        "or(",
        "and(",
        "%00",
        "%FF",
        "%22",
    ])
}

/// A query string built from fragments and random characters.
fn chaotic_query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => fragment().prop_map(str::to_owned),
            2 => prop::collection::vec(query_char(), 0..6).prop_map(String::from_iter),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// A `select=` list nesting embeds up to `depth` levels.
fn select_list(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop::sample::select(vec![
        "id",
        "*",
        "name",
        "a:b",
        "data->x->>0",
        "n::text",
        "count()",
        "x.sum()",
        "\"q,x\"",
        "t:v::double precision",
        "d->-1",
    ])
    .prop_map(str::to_owned);
    if depth == 0 {
        return prop::collection::vec(leaf, 1..4)
            .prop_map(|v| v.join(","))
            .boxed();
    }
    let embed = (
        prop::sample::select(vec!["a", "b", "a!inner", "al:a!fk", "...a", "a!left!fk"]),
        select_list(depth - 1),
    )
        .prop_map(|(name, list)| format!("{name}({list})"));
    prop::collection::vec(prop_oneof![2 => leaf, 1 => embed], 1..4)
        .prop_map(|v| v.join(","))
        .boxed()
}

/// One parameter that is valid on its own.
fn valid_param() -> impl Strategy<Value = String> {
    let filter = (
        prop::sample::select(vec!["id", "name", "data->>x", "a.id", "al.x", "a.a.id"]),
        prop::sample::select(vec!["", "not."]),
        prop::sample::select(vec![
            "eq.1",
            "gt.5",
            "like.*x*",
            "in.(1,\"a,b\")",
            "is.null",
            "isdistinct.3",
            "fts(english).cat",
            "eq(any).{1,2}",
            "cs.{a}",
            "adj.[1,2)",
            "in.()",
        ]),
    )
        .prop_map(|(k, n, op)| format!("{k}={n}{op}"));
    let logic = (
        prop::sample::select(vec!["or", "and", "not.or", "a.or"]),
        prop::sample::select(vec![
            "(a.eq.1,b.in.(1,2))",
            "(a.eq.1,and(c.is.null,d.fts(english).x),not.or(e.gt.2))",
            "(x->>y.like.*z*,n.eq.\"a,b\")",
        ]),
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    let other = prop::sample::select(vec![
        "order=id.desc",
        "order=name.asc.nullslast,id",
        "order=data->x.desc",
        "a.order=id",
        "limit=10",
        "offset=5",
        "a.limit=2",
        "columns=a,b",
        "on_conflict=id",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        2 => select_list(3).prop_map(|s| format!("select={s}")),
        3 => filter,
        1 => logic,
        1 => other,
    ]
}

/// Valid parameters joined, then a few characters inserted at random places.
fn mutated_query() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(valid_param(), 0..6),
        prop::collection::vec((any::<prop::sample::Index>(), query_char()), 0..3),
    )
        .prop_map(|(params, edits)| {
            let mut chars: Vec<char> = params.join("&").chars().collect();
            for (at, c) in edits {
                let at = at.index(chars.len() + 1);
                chars.insert(at, c);
            }
            String::from_iter(chars)
        })
}

/// Both kinds of query strings.
fn query() -> impl Strategy<Value = String> {
    prop_oneof![chaotic_query(), mutated_query()]
}

/// Parses `query` for `method` on a table or a function.
fn parse(method: &str, call: bool, query: &str) -> Result<ApiRequest, RestError> {
    let resource = if call {
        Resource::Function {
            schema: None,
            name: "fn",
        }
    } else {
        Resource::Table {
            schema: None,
            name: "items",
            key: None,
        }
    };
    let parts = RequestParts {
        method,
        resource,
        query,
        headers: Headers::default(),
    };
    parse_request(&parts, &ParserConfig::default())
}

/// Every identifier of a request, with what it is.
fn identifiers(request: &ApiRequest) -> Vec<String> {
    let mut out = vec![];
    if let Some(columns) = &request.columns {
        out.extend(columns.iter().cloned());
    }
    if let Some(columns) = &request.on_conflict {
        out.extend(columns.iter().cloned());
    }
    out.extend(request.rpc_args.iter().map(|a| a.name.clone()));
    query_identifiers(&request.query, &mut out);
    out
}

/// The identifiers of a query node and its embeds.
fn query_identifiers(query: &Query, out: &mut Vec<String>) {
    for item in &query.select {
        match item {
            SelectItem::Star => {}
            SelectItem::Column { field, alias, .. } => {
                out.push(field.name.clone());
                out.extend(alias.clone());
            }
            SelectItem::Aggregate { field, alias, .. } => {
                out.extend(field.as_ref().map(|f| f.name.clone()));
                out.extend(alias.clone());
            }
            SelectItem::Embed(embed) => {
                out.push(embed.relation.clone());
                out.extend(embed.alias.clone());
                out.extend(embed.hint.clone());
                query_identifiers(&embed.query, out);
            }
        }
    }
    for condition in &query.filters {
        condition_identifiers(condition, out);
    }
    for term in &query.order {
        match &term.target {
            OrderTarget::Field(field) => out.push(field.name.clone()),
            OrderTarget::Related { relation, field } => {
                out.push(relation.clone());
                out.push(field.name.clone());
            }
        }
    }
}

/// The column names a condition tests.
fn condition_identifiers(condition: &Condition, out: &mut Vec<String>) {
    match condition {
        Condition::Filter(f) => out.push(f.field.name.clone()),
        Condition::Logic { conditions, .. } => {
            conditions
                .iter()
                .for_each(|c| condition_identifiers(c, out));
        }
    }
}

/// Casts and languages of a query: they may reach SQL text, so their alphabet is fixed.
fn type_words(query: &Query, out: &mut Vec<String>) {
    for item in &query.select {
        match item {
            SelectItem::Column { cast, .. } => out.extend(cast.clone()),
            SelectItem::Aggregate {
                cast, result_cast, ..
            } => {
                out.extend(cast.clone());
                out.extend(result_cast.clone());
            }
            SelectItem::Embed(embed) => type_words(&embed.query, out),
            SelectItem::Star => {}
        }
    }
    fn walk(c: &Condition, out: &mut Vec<String>) {
        match c {
            Condition::Filter(f) => {
                if let Operation::Fts {
                    language: Some(l), ..
                } = &f.operation
                {
                    out.push(l.clone());
                }
            }
            Condition::Logic { conditions, .. } => conditions.iter().for_each(|c| walk(c, out)),
        }
    }
    query.filters.iter().for_each(|c| walk(c, out));
}

/// Deepest logic tree and longest in-list of a query and its embeds.
fn logic_bounds(query: &Query) -> (usize, usize) {
    fn longest(c: &Condition) -> usize {
        match c {
            Condition::Filter(f) => match &f.operation {
                Operation::In(items) => items.len(),
                _ => 0,
            },
            Condition::Logic { conditions, .. } => {
                conditions.iter().map(longest).max().unwrap_or(0)
            }
        }
    }
    let mut depth = query
        .filters
        .iter()
        .map(Condition::depth)
        .max()
        .unwrap_or(0);
    let mut list = query.filters.iter().map(longest).max().unwrap_or(0);
    for embed in query.embeds() {
        let (d, l) = logic_bounds(&embed.query);
        depth = depth.max(d);
        list = list.max(l);
    }
    (depth, list)
}

/// Checks every invariant of one parse result.
fn check(query: &str, result: Result<ApiRequest, RestError>) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let request = match result {
        Err(err) => {
            prop_assert!(err.code().starts_with("PGRST"));
            let text = format!("{err} {:?} {:?}", err.details(), err.hint());
            prop_assert!(
                text.len() < 700,
                "unbounded error ({} bytes): {text}",
                text.len()
            );
            return Ok(());
        }
        Ok(request) => request,
    };
    let decoded: String = decode(query, &limits)
        .expect("an accepted query string decodes")
        .into_iter()
        .flat_map(|(k, v)| [k, v])
        .collect::<Vec<_>>()
        .join("\u{1}");
    let unescaped: String = {
        let mut out = String::new();
        let mut chars = decoded.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        out
    };
    for id in identifiers(&request) {
        prop_assert!(
            !id.is_empty() && id.len() <= 63 && !id.contains('\0'),
            "{id:?}"
        );
        prop_assert!(
            decoded.contains(&id) || unescaped.contains(&id),
            "identifier {id:?} is not cut from the input"
        );
    }
    let mut words = vec![];
    type_words(&request.query, &mut words);
    for word in words {
        let plain = word
            .split(' ')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        prop_assert!(plain && word.len() <= 63, "type or language {word:?}");
    }
    prop_assert!(request.query.depth() <= limits.max_embed_depth);
    let (depth, list) = logic_bounds(&request.query);
    prop_assert!(depth <= limits.max_logic_depth && list <= limits.max_list_len);
    prop_assert_eq!(request.schema.as_str(), "public");
    let target_ok = matches!(
        &request.target,
        Target::Table { name, .. } | Target::Function { name } if name == "items" || name == "fn"
    );
    prop_assert!(target_ok);
    Ok(())
}

/// The assembled strategy reaches accepted requests often enough to test their
/// invariants, not only refusals.
#[test]
fn assembled_queries_are_often_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = mutated_query();
    let mut accepted = 0;
    let mut with_embeds = 0;
    for _ in 0..2000 {
        let query = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(request) = parse("GET", false, &query) {
            accepted += 1;
            with_embeds += usize::from(request.query.depth() > 0);
        }
    }
    assert!(accepted > 200, "only {accepted} of 2000 accepted");
    assert!(with_embeds > 50, "only {with_embeds} accepted with embeds");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Assembled query strings, for every method, on tables and functions.
    #[test]
    fn assembled_query_strings(
        query in query(),
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"]),
        call in any::<bool>(),
    ) {
        let result = parse(method, call, &query);
        check(&query, result)?;
    }

    /// Raw random strings of the grammar's characters.
    #[test]
    fn random_query_strings(chars in prop::collection::vec(query_char(), 0..300)) {
        let query = String::from_iter(chars);
        let result = parse("GET", false, &query);
        check(&query, result)?;
        let result = parse("GET", true, &query);
        check(&query, result)?;
    }

    /// Random values behind each kind of parameter.
    #[test]
    fn random_values_per_parameter(
        key in prop::sample::select(vec![
            "select", "order", "or", "not.and", "id", "a.b", "limit", "columns", "data->x",
        ]),
        value in prop::collection::vec(query_char(), 0..120).prop_map(String::from_iter),
    ) {
        let query = format!("select=*,a(*)&{key}={value}");
        let result = parse("GET", false, &query);
        check(&query, result)?;
    }
}
