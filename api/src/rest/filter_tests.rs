//! Filters `col=op.value`: every operator, `not.`, `(any)`/`(all)`, `in` quoting,
//! full-text search, JSON paths and embedded resources.

use super::error::{Part, RestError};
use super::field::JsonOperand;
use super::filter::{Filter, FtsOperator, IsValue, Operation, Operator, Quantifier};
use super::fixtures::{get, get_err, get_parse_err};
use super::logic::Condition;

/// The only root filter of `GET ?query`.
fn filter(query: &str) -> Filter {
    let request = get(query);
    match request.query.filters.as_slice() {
        [Condition::Filter(f)] => f.clone(),
        other => panic!("?{query}: {other:?}"),
    }
}

/// `Operation::Compare` without a quantifier.
fn compare(operator: Operator, value: &str) -> Operation {
    Operation::Compare {
        operator,
        quantifier: None,
        value: value.into(),
    }
}

#[test]
fn every_binary_operator() {
    use Operator::*;
    let cases = [
        ("eq", Eq),
        ("neq", Neq),
        ("gt", Gt),
        ("gte", Gte),
        ("lt", Lt),
        ("lte", Lte),
        ("match", Match),
        ("imatch", IMatch),
        ("cs", Contains),
        ("cd", ContainedIn),
        ("ov", Overlaps),
        ("sl", StrictlyLeft),
        ("sr", StrictlyRight),
        ("nxr", NotExtendsRight),
        ("nxl", NotExtendsLeft),
        ("adj", Adjacent),
    ];
    for (name, operator) in cases {
        let f = filter(&format!("age={name}.18"));
        assert_eq!(f.field.name, "age");
        assert!(!f.negated);
        assert_eq!(f.operation, compare(operator, "18"), "{name}");
        assert_eq!(operator.name(), name);
        let f = filter(&format!("age=not.{name}.18"));
        assert!(f.negated, "not.{name}");
        assert_eq!(f.operation, compare(operator, "18"));
    }
}

#[test]
fn values_are_kept_verbatim() {
    assert_eq!(
        filter("name=eq.a.b,c(d)").operation,
        compare(Operator::Eq, "a.b,c(d)")
    );
    assert_eq!(
        filter("name=eq.%22q%22").operation,
        compare(Operator::Eq, "\"q\"")
    );
    assert_eq!(filter("name=eq.").operation, compare(Operator::Eq, ""));
    assert_eq!(
        filter("tags=cs.{a,b}").operation,
        compare(Operator::Contains, "{a,b}")
    );
    assert_eq!(
        filter("period=adj.[2017-01-01,2017-03-31)").operation,
        compare(Operator::Adjacent, "[2017-01-01,2017-03-31)")
    );
}

#[test]
fn like_and_ilike_turn_stars_into_percents() {
    assert_eq!(
        filter("name=like.*son").operation,
        compare(Operator::Like, "%son")
    );
    assert_eq!(
        filter("name=ilike.*SON*").operation,
        compare(Operator::ILike, "%SON%")
    );
    // match takes a regex: stars stay.
    assert_eq!(
        filter("name=match.^a.*$").operation,
        compare(Operator::Match, "^a.*$")
    );
}

#[test]
fn is_values_in_any_case() {
    let cases = [
        ("null", IsValue::Null),
        ("NULL", IsValue::Null),
        ("not_null", IsValue::NotNull),
        ("true", IsValue::True),
        ("False", IsValue::False),
        ("unknown", IsValue::Unknown),
    ];
    for (text, value) in cases {
        assert_eq!(
            filter(&format!("a=is.{text}")).operation,
            Operation::Is(value)
        );
    }
    let f = filter("a=not.is.null");
    assert!(f.negated);
    let err = get_parse_err("a=is.nothing");
    assert_eq!(err.column, Some(4));
    assert!(err.reason.contains("null, not_null"), "{err:?}");
}

#[test]
fn isdistinct() {
    assert_eq!(
        filter("a=isdistinct.5").operation,
        Operation::IsDistinct("5".into())
    );
    assert!(filter("a=not.isdistinct.5").negated);
}

#[test]
fn in_lists_with_postgrest_quoting() {
    assert_eq!(
        filter("id=in.(1,2,3)").operation,
        Operation::In(vec!["1".into(), "2".into(), "3".into()])
    );
    // Quotes protect commas and parentheses; a backslash escapes a quote.
    assert_eq!(
        filter("name=in.(%22Hebdon,%20John%22,%22a)b%22,%22say%20%5C%22hi%5C%22%22)").operation,
        Operation::In(vec![
            "Hebdon, John".into(),
            "a)b".into(),
            "say \"hi\"".into()
        ])
    );
    // A quote inside an unquoted item stays.
    assert_eq!(
        filter("name=in.(a%22b,c)").operation,
        Operation::In(vec!["a\"b".into(), "c".into()])
    );
    assert_eq!(filter("id=in.()").operation, Operation::In(vec![]));
    assert_eq!(
        filter("id=in.(%22%22)").operation,
        Operation::In(vec!["".into()])
    );
    assert!(filter("id=not.in.(1,2)").negated);
}

#[test]
fn malformed_in_lists() {
    for bad in ["id=in.1,2", "id=in.(1,2", "id=in.(1,2)x", "id=in.(\"a\"b"] {
        get_parse_err(bad);
    }
}

#[test]
fn in_lists_are_bounded() {
    let ok = vec!["1"; 1000].join(",");
    assert!(
        matches!(filter(&format!("id=in.({ok})")).operation, Operation::In(v) if v.len() == 1000)
    );
    let huge = vec!["1"; 1001].join(",");
    let err = get_parse_err(&format!("id=in.({huge})"));
    assert!(err.reason.contains("more than 1000 values"), "{err:?}");
    assert!(err.value.chars().count() <= super::error::SNIPPET_CHARS + 1);
}

#[test]
fn full_text_search_with_languages() {
    let cases = [
        ("fts", FtsOperator::Fts),
        ("plfts", FtsOperator::Plain),
        ("phfts", FtsOperator::Phrase),
        ("wfts", FtsOperator::Websearch),
    ];
    for (name, operator) in cases {
        assert_eq!(
            filter(&format!("tsv={name}(french).amusant")).operation,
            Operation::Fts {
                operator,
                language: Some("french".into()),
                value: "amusant".into()
            }
        );
        assert_eq!(
            filter(&format!("tsv=not.{name}.fat%20cat")).operation,
            Operation::Fts {
                operator,
                language: None,
                value: "fat cat".into()
            }
        );
    }
    for bad in [
        "tsv=fts().x",
        "tsv=fts(a%20b).x",
        "tsv=fts(english)x",
        "tsv=fts(eng'lish).x",
    ] {
        get_parse_err(bad);
    }
}

#[test]
fn any_and_all_modifiers() {
    assert_eq!(
        filter("id=eq(any).{1,2,3}").operation,
        Operation::Compare {
            operator: Operator::Eq,
            quantifier: Some(Quantifier::Any),
            value: "{1,2,3}".into()
        }
    );
    assert_eq!(
        filter("name=like(all).{O*,*n}").operation,
        Operation::Compare {
            operator: Operator::Like,
            quantifier: Some(Quantifier::All),
            value: "{O%,%n}".into()
        }
    );
    for op in ["gt", "gte", "lt", "lte", "ilike", "match", "imatch"] {
        let f = filter(&format!("a=not.{op}(any).{{1}}"));
        assert!(f.negated);
        assert!(matches!(
            f.operation,
            Operation::Compare {
                quantifier: Some(Quantifier::Any),
                ..
            }
        ));
    }
    let err = get_parse_err("a=neq(any).{1}");
    assert!(err.reason.contains("neq takes no (any)/(all)"), "{err:?}");
    get_parse_err("a=eq(some).{1}");
    get_parse_err("a=eq().1");
}

#[test]
fn unknown_operators_are_refused_by_name() {
    let err = get_parse_err("a.b=noop.0");
    assert!(err.reason.contains("unknown operator \"noop\""), "{err:?}");
    assert_eq!((err.part, err.column), (Part::Value, Some(1)));
    let err = get_err("id=abc");
    assert_eq!(err.code(), "PGRST100");
    assert_eq!(err.to_string(), "failed to parse filter (id=abc)");
    // `not.` applies once.
    get_parse_err("id=not.not.eq.1");
    get_parse_err("id=not.");
    get_parse_err("id=eq");
    get_parse_err("id");
}

#[test]
fn json_path_columns() {
    let f = filter("data->a->>b=eq.1");
    assert_eq!(f.field.name, "data");
    assert_eq!(f.field.json_path.len(), 2);
    assert_eq!(f.field.json_path[1].operand, JsonOperand::Key("b".into()));
    let f = filter("data->0=gt.2");
    assert_eq!(f.field.json_path[0].operand, JsonOperand::Index(0));
    let err = get_parse_err("data->a.x=eq.1");
    assert_eq!(err.part, Part::Name);
}

#[test]
fn filters_on_embedded_resources() {
    let request = get(
        "select=*,actors(*,roles(*))&actors.name=eq.Tom&actors.roles.character=in.(a,b)&id=gt.1",
    );
    assert_eq!(request.query.filters.len(), 1);
    let actors = request.query.embeds().next().unwrap();
    assert!(matches!(&actors.query.filters[..], [Condition::Filter(f)] if f.field.name == "name"));
    let roles = actors.query.embeds().next().unwrap();
    assert!(
        matches!(&roles.query.filters[..], [Condition::Filter(f)] if f.field.name == "character")
    );
    // By alias as well.
    let request = get("select=*,cast:actors(*)&cast.name=eq.Tom");
    assert_eq!(
        request.query.embeds().next().unwrap().query.filters.len(),
        1
    );
}

#[test]
fn filters_on_unselected_embeds_are_pgrst108() {
    let err = get_err("select=*&actors.name=eq.Tom");
    assert_eq!(
        err,
        RestError::NotEmbedded {
            embed: "actors".into()
        }
    );
    assert_eq!(err.code(), "PGRST108");
    assert_eq!(err.status().as_u16(), 400);
    assert_eq!(
        err.hint().as_deref(),
        Some("Verify that 'actors' is included in the 'select' query parameter.")
    );
    let err = get_err("select=*,actors(*)&actors.roles.x=eq.1");
    assert_eq!(
        err,
        RestError::NotEmbedded {
            embed: "actors.roles".into()
        }
    );
}

#[test]
fn filters_combine_in_query_string_order() {
    let request = get("age=gte.18&age=lte.65");
    assert_eq!(request.query.filters.len(), 2);
}
