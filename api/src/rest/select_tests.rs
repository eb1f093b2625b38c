//! `select=`: columns, aliases, casts, JSON paths, aggregates and embeds, from PostgREST's
//! documented examples, and the errors of malformed selects.

use super::error::Part;
use super::field::{Field, JsonArrow, JsonOperand, JsonStep};
use super::fixtures::{get, get_err, get_parse_err};
use super::select::{AggregateFunction, Embed, JoinType, SelectItem};

/// A plain column item.
fn col(name: &str) -> SelectItem {
    SelectItem::Column {
        field: Field::column(name),
        alias: None,
        cast: None,
    }
}

/// The embeds of a select list.
fn embeds(items: &[SelectItem]) -> Vec<&Embed> {
    items
        .iter()
        .filter_map(|i| match i {
            SelectItem::Embed(e) => Some(e.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn absent_select_is_star_and_empty_select_is_nothing() {
    assert_eq!(get("").query.select, vec![SelectItem::Star]);
    assert_eq!(get("select=").query.select, vec![]);
    assert_eq!(get("select=*").query.select, vec![SelectItem::Star]);
}

#[test]
fn columns_aliases_and_casts() {
    let select = get("select=first_name,age").query.select;
    assert_eq!(select, vec![col("first_name"), col("age")]);

    let select = get("select=fullName:full_name,birthDate:birth_date")
        .query
        .select;
    assert_eq!(
        select[0],
        SelectItem::Column {
            field: Field::column("full_name"),
            alias: Some("fullName".into()),
            cast: None
        }
    );

    let select = get("select=full_name,salary::text,n::double precision")
        .query
        .select;
    assert_eq!(
        select[1],
        SelectItem::Column {
            field: Field::column("salary"),
            alias: None,
            cast: Some("text".into())
        }
    );
    assert!(
        matches!(&select[2], SelectItem::Column { cast: Some(c), .. } if c == "double precision")
    );
}

#[test]
fn spaces_around_items_are_ignored_and_quoted_names_keep_anything() {
    let select = get("select=%20id%20,%20name").query.select;
    assert_eq!(select, vec![col("id"), col("name")]);
    let select = get("select=%22my,col%22,%22a%5C%22b%22").query.select;
    assert_eq!(select, vec![col("my,col"), col("a\"b")]);
}

#[test]
fn json_paths_with_keys_and_indexes() {
    let select = get("select=id,json_data->>blood_type,json_data->phones->0->>number,a->-1")
        .query
        .select;
    let SelectItem::Column { field, .. } = &select[1] else {
        panic!("{select:?}")
    };
    assert_eq!(
        field.json_path,
        vec![JsonStep {
            arrow: JsonArrow::Text,
            operand: JsonOperand::Key("blood_type".into())
        }]
    );
    assert_eq!(field.output_name(), "blood_type");
    let SelectItem::Column { field, .. } = &select[2] else {
        panic!()
    };
    let operands: Vec<_> = field.json_path.iter().map(|s| s.operand.clone()).collect();
    assert_eq!(
        operands,
        vec![
            JsonOperand::Key("phones".into()),
            JsonOperand::Index(0),
            JsonOperand::Key("number".into())
        ]
    );
    let SelectItem::Column { field, .. } = &select[3] else {
        panic!()
    };
    assert_eq!(field.json_path[0].operand, JsonOperand::Index(-1));
}

#[test]
fn json_path_aliased_and_cast() {
    let select = get("select=bt:data->>blood_type::text").query.select;
    assert_eq!(
        select,
        vec![SelectItem::Column {
            field: Field {
                name: "data".into(),
                json_path: vec![JsonStep {
                    arrow: JsonArrow::Text,
                    operand: JsonOperand::Key("blood_type".into())
                }]
            },
            alias: Some("bt".into()),
            cast: Some("text".into())
        }]
    );
}

#[test]
fn embeds_with_alias_hint_join_and_spread() {
    let select = get("select=title,directors(id,last_name)").query.select;
    let e = embeds(&select);
    assert_eq!(e[0].relation, "directors");
    assert_eq!(e[0].join, JoinType::Left);
    assert_eq!(e[0].query.select, vec![col("id"), col("last_name")]);

    let select = get("select=*,director:directors!fk_director!inner(*)")
        .query
        .select;
    let e = embeds(&select);
    assert_eq!(e[0].alias.as_deref(), Some("director"));
    assert_eq!(e[0].hint.as_deref(), Some("fk_director"));
    assert_eq!(e[0].join, JoinType::Inner);
    assert_eq!(e[0].key(), "director");

    let select = get("select=a(*),b!left(*),c!inner!hint(*)").query.select;
    let e = embeds(&select);
    assert_eq!(e[1].join, JoinType::Left);
    assert_eq!(
        (e[2].join, e[2].hint.as_deref()),
        (JoinType::Inner, Some("hint"))
    );

    let select = get("select=title,...directors(first_name,last_name)")
        .query
        .select;
    let e = embeds(&select);
    assert!(e[0].spread);
    assert_eq!(e[0].alias, None);
}

#[test]
fn embeds_nest_two_levels_and_more() {
    let select = get("select=name,films(title,actors(first_name,roles(*)))")
        .query
        .select;
    let films = embeds(&select)[0];
    let actors = embeds(&films.query.select)[0];
    let roles = embeds(&actors.query.select)[0];
    assert_eq!(roles.relation, "roles");
    assert_eq!(get("select=a(b(c(*)))").query.depth(), 3);
}

#[test]
fn embedding_deeper_than_the_bound_is_refused() {
    let select = format!("select={}*{}", "a(".repeat(7), ")".repeat(7));
    let err = get_parse_err(&select);
    assert!(err.reason.contains("deeper than 6"), "{err:?}");
    // Six levels are fine.
    let select = format!("select={}*{}", "a(".repeat(6), ")".repeat(6));
    assert_eq!(get(&select).query.depth(), 6);
}

#[test]
fn aggregates() {
    let select = get("select=count()").query.select;
    assert_eq!(
        select,
        vec![SelectItem::Aggregate {
            function: AggregateFunction::Count,
            field: None,
            cast: None,
            result_cast: None,
            alias: None
        }]
    );
    let select = get(
        "select=total:count()::int,amount.sum(),amount::int.avg()::text,d.max(),d.min(),x.count()",
    )
    .query
    .select;
    assert!(matches!(
        &select[0],
        SelectItem::Aggregate { alias: Some(a), result_cast: Some(c), field: None, .. }
            if a == "total" && c == "int"
    ));
    assert!(matches!(
        &select[1],
        SelectItem::Aggregate { function: AggregateFunction::Sum, field: Some(f), .. } if f.name == "amount"
    ));
    assert!(matches!(
        &select[2],
        SelectItem::Aggregate { function: AggregateFunction::Avg, cast: Some(c), result_cast: Some(r), .. }
            if c == "int" && r == "text"
    ));
    let functions: Vec<_> = select[3..]
        .iter()
        .map(|s| match s {
            SelectItem::Aggregate { function, .. } => *function,
            _ => panic!(),
        })
        .collect();
    use AggregateFunction::*;
    assert_eq!(functions, vec![Max, Min, Count]);
}

#[test]
fn count_inside_embeds() {
    let select = get("select=title,actors(count())").query.select;
    assert!(matches!(
        embeds(&select)[0].query.select[0],
        SelectItem::Aggregate {
            function: AggregateFunction::Count,
            field: None,
            ..
        }
    ));
}

#[test]
fn malformed_selects_name_the_column() {
    // PostgREST's own doctest: the '[' at column 16.
    let err = get_parse_err("select=id,clients(name[])");
    assert_eq!((err.part, err.column), (Part::Value, Some(16)));
    assert!(err.reason.contains("'['"), "{err:?}");
    assert_eq!(err.param, "select");
    assert_eq!(err.value, "id,clients(name[])");

    for bad in [
        "select=name!hint",
        "select=*!hint",
        "select=name::",
        "select=a(b",
        "select=a)",
        "select=count(*)",
        "select=a:",
        "select=data->>-78xy",
        "select=data->",
        "select=x.sum",
        "select=x.median()",
        "select=a!inner!inner(*)",
        "select=a!h1!h2(*)",
        "select=%22open",
        "select=,a",
        "select=a,,b",
    ] {
        let err = get_parse_err(bad);
        assert!(err.column.is_some(), "{bad}: {err:?}");
    }
}

#[test]
fn casts_only_take_type_names() {
    for bad in [
        "select=id::int%20from%20pg_authid",
        "select=id::text;drop",
        "select=id::1int",
        "select=id::%22text%22",
        "select=id::int[]",
    ] {
        get_parse_err(bad);
    }
    let select = get("select=a::timestamp%20with%20time%20zone,b::int8")
        .query
        .select;
    assert!(
        matches!(&select[0], SelectItem::Column { cast: Some(c), .. } if c == "timestamp with time zone")
    );
}

#[test]
fn identifiers_are_bounded_to_63_bytes() {
    let ok = "a".repeat(63);
    assert_eq!(get(&format!("select={ok}")).query.select, vec![col(&ok)]);
    let err = get_parse_err(&format!("select=id,{}", "a".repeat(64)));
    assert!(err.reason.contains("63 bytes"), "{err:?}");
    assert_eq!(err.column, Some(4));
    // Multi-byte: 32 two-byte letters are 64 bytes.
    get_err(&format!("select={}", "é".repeat(32)));
}

#[test]
fn sql_in_select_is_refused_or_stays_one_name() {
    for bad in [
        "select=id;drop%20table%20x",
        "select=id,(select%20password%20from%20auth.users)",
        "select=id--",
        "select=id/*x*/",
        "select=id'",
        "select=*,a(*);select%201",
    ] {
        get_parse_err(bad);
    }
    // Spaces are legal in names (PostgREST): the whole text is one identifier the builder
    // quotes and looks up, never SQL.
    assert_eq!(
        get("select=id%20from%20users").query.select,
        vec![col("id from users")]
    );
}

#[test]
fn dashes_join_name_parts_but_never_arrows() {
    assert_eq!(
        get("select=identifier-with-dashes").query.select,
        vec![col("identifier-with-dashes")]
    );
    let select = get("select=data->a-b->>c").query.select;
    let SelectItem::Column { field, .. } = &select[0] else {
        panic!()
    };
    assert_eq!(field.name, "data");
    assert_eq!(field.json_path[0].operand, JsonOperand::Key("a-b".into()));
    get_parse_err("select=a-");
    get_parse_err("select=-a");
}
