//! `order=`: several terms, directions, nulls, JSON paths, related (to-one) terms and
//! embedded orders, and PostgREST's documented malformed orders.

use super::field::Field;
use super::fixtures::{get, get_err, get_parse_err};
use super::order::{Direction, NullsOrder, OrderTarget, OrderTerm};

/// A term on a plain column.
fn term(name: &str, direction: Option<Direction>, nulls: Option<NullsOrder>) -> OrderTerm {
    OrderTerm {
        target: OrderTarget::Field(Field::column(name)),
        direction,
        nulls,
    }
}

#[test]
fn several_terms_with_directions_and_nulls() {
    let order = get("order=age.desc,height.asc,name,x.nullsfirst,y.desc.nullslast")
        .query
        .order;
    assert_eq!(
        order,
        vec![
            term("age", Some(Direction::Desc), None),
            term("height", Some(Direction::Asc), None),
            term("name", None, None),
            term("x", None, Some(NullsOrder::First)),
            term("y", Some(Direction::Desc), Some(NullsOrder::Last)),
        ]
    );
}

#[test]
fn json_path_terms() {
    let order = get("order=json_col->key.asc.nullslast,data->>0")
        .query
        .order;
    let OrderTarget::Field(field) = &order[0].target else {
        panic!()
    };
    assert_eq!(
        (field.name.as_str(), field.json_path.len()),
        ("json_col", 1)
    );
    assert_eq!(order[0].nulls, Some(NullsOrder::Last));
    let OrderTarget::Field(field) = &order[1].target else {
        panic!()
    };
    assert_eq!(field.json_path.len(), 1);
}

#[test]
fn related_terms_need_the_embed() {
    let request = get("select=*,clients(*)&order=clients(name).desc.nullsfirst,id");
    assert_eq!(
        request.query.order[0].target,
        OrderTarget::Related {
            relation: "clients".into(),
            field: Field::column("name")
        }
    );
    assert_eq!(request.query.order[0].direction, Some(Direction::Desc));
    let err = get_err("order=clients(name)");
    assert_eq!(err.code(), "PGRST108");
    get_parse_err("order=clients(name,id)");
}

#[test]
fn embedded_orders() {
    let request =
        get("select=*,actors(*,roles(*))&actors.order=last_name.desc&actors.roles.order=x");
    let actors = request.query.embeds().next().unwrap();
    assert_eq!(
        actors.query.order,
        vec![term("last_name", Some(Direction::Desc), None)]
    );
    let roles = actors.query.embeds().next().unwrap();
    assert_eq!(roles.query.order.len(), 1);
    assert!(request.query.order.is_empty());
    assert_eq!(get_err("actors.order=x").code(), "PGRST108");
}

#[test]
fn postgrest_malformed_orders() {
    for (bad, column) in [
        ("order=id.ac", 4),
        ("order=id.descc", 4),
        ("order=id.nulsfist", 4),
        ("order=id.nullslasttt", 4),
        ("order=id.asc.nlsfst", 8),
        ("order=id.asc.desc", 8),
        ("order=id.nullsfirst.asc", 15),
    ] {
        let err = get_parse_err(bad);
        assert_eq!(err.column, Some(column), "{bad}: {err:?}");
    }
    get_parse_err("order=");
    get_parse_err("order=a,");
    assert!(get_parse_err("order=a&order=b").reason.contains("twice"));
}
