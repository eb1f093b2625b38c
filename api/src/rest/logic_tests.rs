//! `or=(…)`/`and=(…)` trees: nesting, negation, embedded paths, value quoting, bounds.

use super::filter::{IsValue, Operation, Operator};
use super::fixtures::{get, get_err, get_parse_err};
use super::logic::{Condition, LogicOperator};

/// The only root condition of `GET ?query`.
fn condition(query: &str) -> Condition {
    let request = get(query);
    match request.query.filters.as_slice() {
        [c] => c.clone(),
        other => panic!("?{query}: {other:?}"),
    }
}

/// The children of a logic node.
fn children(c: &Condition) -> &[Condition] {
    match c {
        Condition::Logic { conditions, .. } => conditions,
        Condition::Filter(_) => panic!("not a logic node: {c:?}"),
    }
}

/// The value a leaf compares with.
fn leaf_value(c: &Condition) -> &str {
    match c {
        Condition::Filter(f) => match &f.operation {
            Operation::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        },
        _ => panic!("{c:?}"),
    }
}

#[test]
fn or_of_two_filters() {
    let c = condition("or=(age.lt.18,age.gt.21)");
    assert!(matches!(
        c,
        Condition::Logic {
            operator: LogicOperator::Or,
            negated: false,
            ..
        }
    ));
    assert_eq!(children(&c).len(), 2);
    assert_eq!(leaf_value(&children(&c)[1]), "21");
}

#[test]
fn documented_nested_example() {
    let c = condition(
        "and=(grade.gte.90,student.is.true,or(age.eq.14,not.and(age.gte.11,age.lte.17)))",
    );
    let kids = children(&c);
    assert_eq!(kids.len(), 3);
    assert!(matches!(
        &kids[1],
        Condition::Filter(f) if f.operation == Operation::Is(IsValue::True)
    ));
    let or = &kids[2];
    assert!(matches!(
        or,
        Condition::Logic {
            operator: LogicOperator::Or,
            ..
        }
    ));
    let not_and = &children(or)[1];
    assert!(matches!(
        not_and,
        Condition::Logic {
            operator: LogicOperator::And,
            negated: true,
            ..
        }
    ));
    assert_eq!(c.depth(), 3);
}

#[test]
fn negated_keys_and_negated_leaves() {
    let c = condition("not.or=(a.eq.1,b.not.eq.2)");
    assert!(matches!(
        c,
        Condition::Logic {
            negated: true,
            operator: LogicOperator::Or,
            ..
        }
    ));
    assert!(matches!(&children(&c)[1], Condition::Filter(f) if f.negated));
    let c = condition("and=(not.eq.1)");
    // Only and(/or( follow a leading not.: this is the column "not".
    assert!(
        matches!(&children(&c)[0], Condition::Filter(f) if f.field.name == "not" && !f.negated)
    );
    get_parse_err("and=(not.a.eq.1)");
}

#[test]
fn logic_on_embedded_resources() {
    let request =
        get("select=*,actors(*)&actors.or=(name.eq.a,name.eq.b)&actors.not.and=(a.eq.1,b.eq.2)");
    let actors = request.query.embeds().next().unwrap();
    assert_eq!(actors.query.filters.len(), 2);
    assert!(matches!(
        actors.query.filters[1],
        Condition::Logic { negated: true, .. }
    ));
    assert_eq!(get_err("or=(a.eq.1)&x.or=(a.eq.1)").code(), "PGRST108");
}

#[test]
fn values_in_trees_end_at_commas_unless_quoted_or_arrays() {
    let c =
        condition("or=(name.eq.%22a,b%22,tags.cs.{x,y},id.in.(1,2),t.fts(english).cat,d->>k.eq.v)");
    let kids = children(&c);
    assert_eq!(leaf_value(&kids[0]), "a,b");
    assert_eq!(leaf_value(&kids[1]), "{x,y}");
    assert!(
        matches!(&kids[2], Condition::Filter(f) if f.operation == Operation::In(vec!["1".into(), "2".into()]))
    );
    assert!(
        matches!(&kids[3], Condition::Filter(f) if matches!(&f.operation, Operation::Fts { language: Some(l), value, .. } if l == "english" && value == "cat"))
    );
    assert!(matches!(&kids[4], Condition::Filter(f) if f.field.json_path.len() == 1));
    let c = condition("or=(a.like.*x*,b.eq(any).{1,2})");
    assert_eq!(leaf_value(&children(&c)[0]), "%x%");
    assert!(
        matches!(&children(&c)[1], Condition::Filter(f) if matches!(f.operation, Operation::Compare { operator: Operator::Eq, quantifier: Some(_), .. }))
    );
    let c = condition("or=(a.eq.,b.is.null)");
    assert_eq!(leaf_value(&children(&c)[0]), "");
}

#[test]
fn malformed_trees_are_refused_with_a_column() {
    for bad in [
        "or=a.eq.1",
        "or=()",
        "or=(a.eq.1",
        "or=(a.eq.1,)",
        "or=(id.in.1,2,id.eq.3)",
        "or=(a.eq.1))",
        "and=(ord(id.eq.1,id.eq.1),id.eq.2)",
        "or=(id.eq.1,not.xor(id.eq.2,id.eq.3))",
        "or=(a.noop.1)",
        "or=(a.is.maybe)",
    ] {
        let err = get_parse_err(bad);
        assert!(err.column.is_some(), "{bad}: {err:?}");
    }
    let err = get_parse_err("or=(a.eq.1");
    assert_eq!(err.message(), "failed to parse logic tree (or=(a.eq.1)");
}

#[test]
fn depth_is_bounded() {
    let nested = |n: usize| format!("or=({}a.eq.1{})", "or(".repeat(n - 1), ")".repeat(n - 1));
    assert_eq!(condition(&nested(8)).depth(), 8);
    let err = get_parse_err(&nested(9));
    assert!(err.reason.contains("deeper than 8"), "{err:?}");
    // Far deeper input is refused at the bound, not by the stack.
    get_parse_err(&nested(5000));
}
