//! Compiling and evaluating the texts PostgreSQL 15 prints in `pg_policies.qual` (captured
//! from a real database) with three-valued logic.

use serde_json::{Value, json};

use super::*;
use crate::realtime::rls::image::RowRef;
use crate::realtime::rls::parser::parse;

const ALICE: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
const BOB: &str = "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12";

fn env(default_collation: Collation) -> CompileEnv {
    let col = |name: &str, ty: SqlType| ColumnInfo {
        name: name.into(),
        ty,
        collation: default_collation,
    };
    CompileEnv {
        columns: vec![
            col("id", SqlType::Int4),
            col("user_id", SqlType::Uuid),
            col("owner", SqlType::Uuid),
            col("tenant_id", SqlType::Text),
            col("status", SqlType::Text),
            col("deleted_at", SqlType::Other("timestamptz".into())),
            col("is_public", SqlType::Bool),
            col("n", SqlType::Int4),
            col("amount", SqlType::Numeric),
            col("big", SqlType::Int8),
            col("name", SqlType::Text),
            col("price", SqlType::Float4),
            col("data", SqlType::Jsonb),
        ],
        default_collation,
    }
}

fn compiled(text: &str) -> Predicate {
    compile(&parse(text).unwrap(), &env(Collation::C))
}

fn eval(text: &str, row: Value, claims: Value) -> Truth {
    eval_with_json_nulls(text, row, &[], claims)
}

fn eval_with_json_nulls(text: &str, row: Value, json_nulls: &[String], claims: Value) -> Truth {
    let predicate = compiled(text);
    predicate.eval(EvalInput {
        row: RowRef {
            values: row.as_object().unwrap(),
            json_nulls,
        },
        claims: claims.as_object().unwrap(),
        auth_callable: AuthUse {
            uid: true,
            role: true,
            jwt: true,
        },
    })
}

fn assert_compiles(text: &str) {
    let p = compiled(text);
    assert!(
        p.opaque_reasons().is_empty(),
        "{text}: {:?}",
        p.opaque_reasons()
    );
}

#[test]
fn the_subset_compiles() {
    for text in [
        "(user_id = auth.uid())",
        "(auth.uid() = user_id)",
        "((auth.jwt() ->> 'tenant'::text) = tenant_id)",
        "(tenant_id = ((auth.jwt() -> 'app_metadata'::text) ->> 'tenant'::text))",
        "(status = ANY (ARRAY['a'::text, 'b'::text]))",
        "(status <> ALL (ARRAY['x'::text, 'y'::text]))",
        "(deleted_at IS NULL)",
        "(deleted_at IS NOT NULL)",
        "(is_public OR (owner = auth.uid()))",
        "true",
        "false",
        "(auth.role() = 'authenticated'::text)",
        "((n > 5) AND (n <= 10) AND (NOT is_public))",
        "(amount >= 10.5)",
        "(n = ((auth.jwt() ->> 'level'::text))::integer)",
        "((user_id)::text = (auth.jwt() ->> 'sub'::text))",
        "(big <> '-5'::integer)",
        "((name)::text = 'bob'::text)",
        "(user_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)",
        "(is_public = true)",
        "(is_public IS TRUE)",
        "(n = ANY (ARRAY[1, 2, 3]))",
        "(NOT (status = 'x'::text))",
        "(user_id = ((auth.jwt() ->> 'sub'::text))::uuid)",
        "(amount = 1.50)",
        "(price > (1.5)::double precision)",
        "(status = 'it''s'::text)",
        "(auth.uid() IS NOT NULL)",
        "((auth.jwt() -> 'is_admin'::text))::boolean",
        "(((auth.jwt() ->> 'is_admin'::text))::boolean = true)",
        "((n = 1) OR ((n = 2) AND (status = 'a'::text)))",
        "(big = '9999999999'::bigint)",
        "(n = '3000000000'::bigint)",
        "(status = ('a'::character varying)::text)",
        "((name)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[]))",
        "(n IS DISTINCT FROM 3)",
        "((n)::numeric = '1000'::numeric)",
        "(amount > (1)::numeric)",
        "((n)::numeric > 1.5)",
        "(user_id = ( SELECT auth.uid() AS uid))",
        "((n)::text = (auth.jwt() ->> 'n'::text))",
        "(n = (((auth.jwt() -> 'roles'::text) -> 0))::integer)",
        "(NOT (n IS DISTINCT FROM 3))",
        "((n = 1) IS NOT TRUE)",
        "(n = NULL::integer)",
    ] {
        assert_compiles(text);
    }
}

#[test]
fn outside_the_subset_is_opaque_with_a_reason() {
    for (text, reason) in [
        (
            "(EXISTS ( SELECT 1\n   FROM t t2\n  WHERE (t2.id = t.n)))",
            "EXISTS",
        ),
        (
            "(user_id = (current_setting('x'::text))::uuid)",
            "current_setting",
        ),
        ("((data ->> 'x'::text) = 'y'::text)", "->>"),
        ("(status = ANY ('{a,b}'::text[]))", "non-literal array"),
        ("(COALESCE(n, 0) = 1)", "COALESCE"),
        ("((n + 1) = 2)", "expression"),
        (
            "(ts > '2024-01-01 00:00:00+00'::timestamp with time zone)",
            "column",
        ),
        ("(CURRENT_USER = 'anon'::name)", "CURRENT_USER"),
        ("(n IN ( SELECT 1\nUNION\n SELECT 2))", "IN (subquery)"),
        ("(status ~~ 'x%'::text)", "expression"),
    ] {
        let p = compiled(text);
        let reasons = p.opaque_reasons();
        assert!(
            reasons.iter().any(|r| r.contains(reason)),
            "{text}: expected a reason containing {reason:?}, got {reasons:?}"
        );
    }
}

#[test]
fn text_ordering_needs_the_c_collation() {
    let text = "(status < 'm'::text)";
    let expr = parse(text).unwrap();
    let en_us = Collation {
        bytewise_order: false,
        deterministic: true,
    };
    assert!(!compile(&expr, &env(en_us)).opaque_reasons().is_empty());
    // Equality stays compiled under any deterministic collation.
    let eq = parse("(status = 'm'::text)").unwrap();
    assert!(compile(&eq, &env(en_us)).opaque_reasons().is_empty());
    assert!(
        compile(&expr, &env(Collation::C))
            .opaque_reasons()
            .is_empty()
    );
    assert_eq!(eval(text, json!({"status": "Z"}), json!({})), Truth::True);
    assert_eq!(eval(text, json!({"status": "z"}), json!({})), Truth::False);
}

#[test]
fn owner_and_claims() {
    let owner = "(user_id = auth.uid())";
    let alice = json!({"sub": ALICE, "role": "authenticated"});
    assert_eq!(
        eval(owner, json!({"user_id": ALICE}), alice.clone()),
        Truth::True
    );
    assert_eq!(
        eval(owner, json!({"user_id": BOB}), alice.clone()),
        Truth::False
    );
    // uuid equality ignores case, as uuid_in does.
    let upper = json!({"sub": ALICE.to_uppercase()});
    assert_eq!(eval(owner, json!({"user_id": ALICE}), upper), Truth::True);
    // anon: auth.uid() is NULL, the comparison is NULL, the row invisible.
    assert_eq!(
        eval(owner, json!({"user_id": ALICE}), json!({"role": "anon"})),
        Truth::Null
    );
    assert_eq!(
        eval(owner, json!({"user_id": ALICE}), json!({"sub": ""})),
        Truth::Null
    );
    // A sub that is not a uuid makes auth.uid() raise: only SQL can say what happens.
    assert_eq!(
        eval(owner, json!({"user_id": ALICE}), json!({"sub": "user-1"})),
        Truth::Unknown
    );
    // Unchanged TOAST: the column is absent, not NULL.
    assert_eq!(eval(owner, json!({"id": 1}), alice.clone()), Truth::Unknown);
    assert_eq!(eval(owner, json!({"user_id": null}), alice), Truth::Null);

    let tenant = "(tenant_id = ((auth.jwt() -> 'app_metadata'::text) ->> 'tenant'::text))";
    let claims = json!({"app_metadata": {"tenant": "acme"}});
    assert_eq!(
        eval(tenant, json!({"tenant_id": "acme"}), claims.clone()),
        Truth::True
    );
    assert_eq!(
        eval(tenant, json!({"tenant_id": "other"}), claims),
        Truth::False
    );
    assert_eq!(
        eval(
            tenant,
            json!({"tenant_id": "acme"}),
            json!({"app_metadata": "x"})
        ),
        Truth::Null
    );
    assert_eq!(
        eval(tenant, json!({"tenant_id": "acme"}), json!({})),
        Truth::Null
    );

    let level = "(n = ((auth.jwt() ->> 'level'::text))::integer)";
    assert_eq!(
        eval(level, json!({"n": 3}), json!({"level": 3})),
        Truth::True
    );
    assert_eq!(
        eval(level, json!({"n": 3}), json!({"level": "3"})),
        Truth::True
    );
    assert_eq!(
        eval(level, json!({"n": 3}), json!({"level": "high"})),
        Truth::Unknown
    );
    assert_eq!(
        eval(level, json!({"n": 3}), json!({"level": 3.0})),
        Truth::Unknown
    );

    let role = "(auth.role() = 'authenticated'::text)";
    assert_eq!(
        eval(role, json!({}), json!({"role": "authenticated"})),
        Truth::True
    );
    assert_eq!(eval(role, json!({}), json!({"role": "anon"})), Truth::False);

    let admin = "((auth.jwt() -> 'is_admin'::text))::boolean";
    assert_eq!(
        eval(admin, json!({}), json!({"is_admin": true})),
        Truth::True
    );
    assert_eq!(eval(admin, json!({}), json!({})), Truth::Null);
    assert_eq!(
        eval(admin, json!({}), json!({"is_admin": "true"})),
        Truth::Unknown
    );
}

#[test]
fn three_valued_logic() {
    let public_or_owner = "(is_public OR (owner = auth.uid()))";
    let alice = json!({"sub": ALICE});
    assert_eq!(
        eval(
            public_or_owner,
            json!({"is_public": true, "owner": BOB}),
            alice.clone()
        ),
        Truth::True
    );
    assert_eq!(
        eval(
            public_or_owner,
            json!({"is_public": false, "owner": ALICE}),
            alice.clone()
        ),
        Truth::True
    );
    assert_eq!(
        eval(
            public_or_owner,
            json!({"is_public": false, "owner": BOB}),
            alice.clone()
        ),
        Truth::False
    );
    assert_eq!(
        eval(
            public_or_owner,
            json!({"is_public": null, "owner": BOB}),
            alice.clone()
        ),
        Truth::Null
    );
    assert_eq!(
        eval(
            public_or_owner,
            json!({"is_public": null, "owner": ALICE}),
            alice
        ),
        Truth::True
    );
    // true OR <error>: PostgreSQL might raise on the other branch (this row or another).
    assert_eq!(
        eval(
            public_or_owner,
            json!({"is_public": true, "owner": BOB}),
            json!({"sub": "x"})
        ),
        Truth::Unknown
    );

    let range = "((n > 5) AND (n <= 10) AND (NOT is_public))";
    assert_eq!(
        eval(range, json!({"n": 7, "is_public": false}), json!({})),
        Truth::True
    );
    assert_eq!(
        eval(range, json!({"n": 7, "is_public": null}), json!({})),
        Truth::Null
    );
    assert_eq!(
        eval(range, json!({"n": 11, "is_public": null}), json!({})),
        Truth::False
    );
    // false AND unknown is false: invisible whether PostgreSQL raises or not.
    assert_eq!(eval(range, json!({"n": 11}), json!({})), Truth::False);
    assert_eq!(eval(range, json!({"n": 7}), json!({})), Truth::Unknown);

    let in_list = "(n = ANY (ARRAY[1, 2, 3]))";
    assert_eq!(eval(in_list, json!({"n": 2}), json!({})), Truth::True);
    assert_eq!(eval(in_list, json!({"n": 4}), json!({})), Truth::False);
    assert_eq!(eval(in_list, json!({"n": null}), json!({})), Truth::Null);
    let not_in = "(status <> ALL (ARRAY['x'::text, 'y'::text]))";
    assert_eq!(eval(not_in, json!({"status": "a"}), json!({})), Truth::True);
    assert_eq!(
        eval(not_in, json!({"status": "x"}), json!({})),
        Truth::False
    );
    assert_eq!(
        eval(not_in, json!({"status": null}), json!({})),
        Truth::Null
    );

    assert_eq!(
        eval("(n = NULL::integer)", json!({"n": 1}), json!({})),
        Truth::Null
    );
    assert_eq!(
        eval("(n IS DISTINCT FROM 3)", json!({"n": null}), json!({})),
        Truth::True
    );
    assert_eq!(
        eval("(n IS DISTINCT FROM 3)", json!({"n": 3}), json!({})),
        Truth::False
    );
    assert_eq!(
        eval("((n = 1) IS NOT TRUE)", json!({"n": null}), json!({})),
        Truth::True
    );
    assert_eq!(
        eval(
            "(NOT (status = 'x'::text))",
            json!({"status": null}),
            json!({})
        ),
        Truth::Null
    );
    assert_eq!(
        eval(
            "(deleted_at IS NULL)",
            json!({"deleted_at": null}),
            json!({})
        ),
        Truth::True
    );
    assert_eq!(
        eval(
            "(deleted_at IS NULL)",
            json!({"deleted_at": "2024-01-01 00:00:00+00"}),
            json!({})
        ),
        Truth::False
    );
    assert_eq!(
        eval("(deleted_at IS NULL)", json!({}), json!({})),
        Truth::Unknown
    );
    assert_eq!(eval("false", json!({}), json!({})), Truth::False);
}

#[test]
fn numbers_compare_by_value() {
    assert_eq!(
        eval("(amount >= 10.5)", json!({"amount": "10.50"}), json!({})),
        Truth::True
    );
    assert_eq!(
        eval(
            "(amount >= 10.5)",
            json!({"amount": "10.4999999999999999999"}),
            json!({})
        ),
        Truth::False
    );
    assert_eq!(
        eval("(amount >= 10.5)", json!({"amount": "NaN"}), json!({})),
        Truth::Unknown
    );
    assert_eq!(
        eval("(amount = 1.50)", json!({"amount": "1.5"}), json!({})),
        Truth::True
    );
    assert_eq!(
        eval("((n)::numeric > 1.5)", json!({"n": 2}), json!({})),
        Truth::True
    );
    assert_eq!(
        eval(
            "(big = '9999999999'::bigint)",
            json!({"big": 9_999_999_999i64}),
            json!({})
        ),
        Truth::True
    );
    assert_eq!(
        eval("(big <> '-5'::integer)", json!({"big": -5}), json!({})),
        Truth::False
    );
    assert_eq!(
        eval(
            "(price > (1.5)::double precision)",
            json!({"price": 1.5}),
            json!({})
        ),
        Truth::False
    );
    assert_eq!(
        eval(
            "(price > (0.1)::double precision)",
            json!({"price": 0.1}),
            json!({})
        ),
        Truth::True
    );
    // A wrongly typed decoded value is not guessed at.
    assert_eq!(
        eval("(n = 1)", json!({"n": "1"}), json!({})),
        Truth::Unknown
    );
}

#[test]
fn json_null_is_a_value_not_sql_null() {
    let literal = ["data".to_string()];
    let row = json!({"data": null});
    let t =
        |text: &str, nulls: &[String]| eval_with_json_nulls(text, row.clone(), nulls, json!({}));
    assert_eq!(t("data IS NULL", &literal), Truth::False);
    assert_eq!(t("data IS NOT NULL", &literal), Truth::True);
    assert_eq!(t("data IS NULL", &[]), Truth::True);
    assert_eq!(t("data IS NOT NULL", &[]), Truth::False);
    assert_eq!(
        compiled("data IS NULL AND id = 1").columns(),
        Some(vec!["data", "id"])
    );
    assert_eq!(compiled("EXISTS (SELECT 1 FROM t)").columns(), None);
}
