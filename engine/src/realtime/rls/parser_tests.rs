//! The parser on the texts PostgreSQL 15 prints in `pg_policies.qual`.

use super::*;

fn col(name: &str) -> Expr {
    Expr::Column(vec![name.into()])
}

fn call(schema: &str, name: &str) -> Expr {
    Expr::Call {
        name: vec![schema.into(), name.into()],
        args: vec![],
    }
}

fn cast(expr: Expr, ty: &str) -> Expr {
    Expr::Cast {
        expr: Box::new(expr),
        ty: TypeName {
            name: ty.into(),
            has_modifier: false,
            array_dims: 0,
        },
    }
}

fn bin(op: &str, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op: op.into(),
        left: Box::new(left),
        right: Box::new(right),
    }
}

#[test]
fn owner_equality() {
    assert_eq!(
        parse("(user_id = auth.uid())").unwrap(),
        bin("=", col("user_id"), call("auth", "uid"))
    );
}

#[test]
fn claim_paths_with_casts() {
    assert_eq!(
        parse("((auth.jwt() ->> 'tenant'::text) = tenant_id)").unwrap(),
        bin(
            "=",
            bin(
                "->>",
                call("auth", "jwt"),
                cast(Expr::Str("tenant".into()), "text")
            ),
            col("tenant_id")
        )
    );
    let nested =
        parse("(tenant_id = ((auth.jwt() -> 'app_metadata'::text) ->> 'tenant'::text))").unwrap();
    let Expr::Binary { right, .. } = nested else {
        panic!("not a comparison")
    };
    assert!(matches!(*right, Expr::Binary { ref op, .. } if op == "->>"));
    assert_eq!(
        parse("(n = ((auth.jwt() ->> 'level'::text))::integer)").unwrap(),
        bin(
            "=",
            col("n"),
            cast(
                bin(
                    "->>",
                    call("auth", "jwt"),
                    cast(Expr::Str("level".into()), "text")
                ),
                "integer"
            )
        )
    );
}

#[test]
fn any_array_and_logic() {
    let e = parse("(status = ANY (ARRAY['a'::text, 'b'::text]))").unwrap();
    assert!(
        matches!(e, Expr::Quantified { all: false, ref right, .. } if matches!(**right, Expr::Array(ref items) if items.len() == 2))
    );
    let e = parse("(status <> ALL (ARRAY['x'::text, 'y'::text]))").unwrap();
    assert!(matches!(e, Expr::Quantified { all: true, .. }));
    assert_eq!(
        parse("(is_public OR (owner = auth.uid()))").unwrap(),
        Expr::Or(vec![
            col("is_public"),
            bin("=", col("owner"), call("auth", "uid"))
        ])
    );
    let e = parse("((n > 5) AND (n <= 10) AND (NOT is_public))").unwrap();
    assert!(matches!(e, Expr::And(ref items) if items.len() == 3));
    assert_eq!(parse("true").unwrap(), Expr::Bool(true));
    assert_eq!(parse("false").unwrap(), Expr::Bool(false));
    assert_eq!(
        parse("(deleted_at IS NULL)").unwrap(),
        Expr::IsNull {
            expr: Box::new(col("deleted_at")),
            negated: false
        }
    );
    assert!(matches!(
        parse("(NOT (a IS DISTINCT FROM 3))").unwrap(),
        Expr::Not(inner) if matches!(*inner, Expr::Distinct { negated: false, .. })
    ));
}

#[test]
fn casts_and_literals() {
    assert_eq!(
        parse("(big <> '-5'::integer)").unwrap(),
        bin("<>", col("big"), cast(Expr::Str("-5".into()), "integer"))
    );
    assert_eq!(
        parse("(price > (1.5)::double precision)").unwrap(),
        bin(
            ">",
            col("price"),
            cast(Expr::Num("1.5".into()), "double precision")
        )
    );
    assert_eq!(
        parse("(status = 'it''s'::text)").unwrap(),
        bin("=", col("status"), cast(Expr::Str("it's".into()), "text"))
    );
    let e = parse(
        "((name)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[]))",
    )
    .unwrap();
    let Expr::Quantified { right, .. } = e else {
        panic!("not quantified")
    };
    assert!(matches!(*right, Expr::Cast { ref ty, .. } if ty.name == "text" && ty.array_dims == 1));
    assert!(matches!(
        parse("(ts > '2024-01-01 00:00:00+00'::timestamp with time zone)").unwrap(),
        Expr::Binary { right, .. } if matches!(*right, Expr::Cast { ref ty, .. } if ty.name == "timestamp with time zone")
    ));
    assert_eq!(
        parse("(\"User\" = 'x'::text)").unwrap(),
        bin("=", col("User"), cast(Expr::Str("x".into()), "text"))
    );
}

#[test]
fn opaque_constructs() {
    let e = parse("(EXISTS ( SELECT 1\n   FROM t t2\n  WHERE (t2.id = t.n)))").unwrap();
    assert_eq!(e, Expr::Opaque("EXISTS (subquery)".into()));
    let e = parse("(a IN ( SELECT 1\nUNION\n SELECT 2))").unwrap();
    assert_eq!(e, Expr::Opaque("IN (subquery)".into()));
    let e = parse("(CURRENT_USER = 'anon'::name)").unwrap();
    assert!(matches!(e, Expr::Binary { left, .. } if matches!(*left, Expr::Opaque(_))));
    let e = parse("(\"User\" = ( SELECT current_setting('x'::text) AS current_setting))").unwrap();
    assert!(matches!(e, Expr::Binary { right, .. } if matches!(*right, Expr::Call { .. })));
    assert_eq!(
        parse("(user_id = ( SELECT auth.uid() AS uid))").unwrap(),
        bin("=", col("user_id"), call("auth", "uid"))
    );
    let e = parse("(\"User\" < ('m'::text COLLATE \"C\"))").unwrap();
    assert!(matches!(e, Expr::Binary { right, .. } if matches!(*right, Expr::Opaque(_))));
    assert!(parse("(a = ").is_err());
    assert!(parse("CASE WHEN a THEN b END").is_err());
    assert!(parse("(a = 'unterminated)").is_err());
}
