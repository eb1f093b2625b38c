//! Callers: anon, two users under owner-only RLS (each sees and changes only their rows),
//! service_role (sees all), custom roles from a JWT, roles never leaking between requests
//! sharing a pooled connection, statement timeouts, and schemas never reachable.

use std::collections::BTreeSet;

use fluxbase_migrations::PoolSettings;
use serde_json::json;

use super::harness::*;

/// Alice's and Bob's todos, inserted through the service as each of them.
async fn seed(rest: &Rest) {
    for (uid, titles) in [(ALICE, ["a1", "a2"]), (BOB, ["b1", "b2"])] {
        let body: Vec<_> = titles.iter().map(|t| json!({"title": t})).collect();
        let r = rest
            .table("POST", "todos")
            .user(uid)
            .json(json!(body))
            .send()
            .await;
        expect_status(&r, 201);
    }
}

/// The titles `req` returns.
fn titles(body: &serde_json::Value) -> BTreeSet<String> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn owner_only_rls_for_two_users_anon_and_service_role() {
    let rest = Rest::new().await;
    seed(&rest).await;
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    // Each user sees only their own rows; service_role sees all.
    let r = rest.table("GET", "todos").user(ALICE).send().await;
    assert_eq!(titles(&ok_json(&r, 200)), set(&["a1", "a2"]));
    let r = rest.table("GET", "todos").user(BOB).send().await;
    assert_eq!(titles(&ok_json(&r, 200)), set(&["b1", "b2"]));
    let r = rest.table("GET", "todos").service().send().await;
    assert_eq!(titles(&ok_json(&r, 200)), set(&["a1", "a2", "b1", "b2"]));
    let r = rest
        .table("GET", "todos")
        .user(ALICE)
        .query("title=eq.b1")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([]));

    // anon has no grant on todos: 401, with WWW-Authenticate.
    let r = rest.table("GET", "todos").send().await;
    let body = ok_json(&r, 401);
    assert_eq!(body["code"], "42501");
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));

    // Bob cannot change or delete Alice's rows: nothing matches for him.
    let r = rest
        .table("PATCH", "todos")
        .user(BOB)
        .query("title=eq.a1")
        .prefer("return=representation")
        .json(json!({"done": true}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([]));
    let r = rest
        .table("DELETE", "todos")
        .user(BOB)
        .query("title=like.a*")
        .prefer("count=exact")
        .send()
        .await;
    expect_status(&r, 204);
    assert_eq!(r.header("Content-Range"), Some("*/0"));
    // Nor write a row as Alice: the policy's WITH CHECK refuses it (403).
    let r = rest
        .table("POST", "todos")
        .user(BOB)
        .json(json!({"title": "forged", "user_id": ALICE}))
        .send()
        .await;
    let body = ok_json(&r, 403);
    assert_eq!(body["code"], "42501");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("row-level security")
    );
    // Alice changes her own.
    let r = rest
        .table("PATCH", "todos")
        .user(ALICE)
        .query("title=eq.a1&select=title,done")
        .prefer("return=representation")
        .json(json!({"done": true}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"title": "a1", "done": true}]));
    let r = rest
        .table("GET", "todos")
        .service()
        .query("done=is.true")
        .send()
        .await;
    assert_eq!(titles(&ok_json(&r, 200)), set(&["a1"]));

    // The same in Fluxbase's shape: 401 unauthorized with the SQLSTATE in the message.
    let r = rest.fluxbase("GET", "public", "todos", None).send().await;
    let body = ok_json(&r, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("(SQLSTATE 42501)")
    );
}

#[tokio::test]
async fn roles_never_leak_between_requests_on_one_connection() {
    // One pooled connection: every request takes turns on it.
    let pool = PoolSettings {
        max_connections: 1,
        min_connections: 1,
        ..PoolSettings::default()
    };
    let rest = Rest::with_pool(FIXTURE, |_| {}, pool).await;
    seed(&rest).await;
    let mut tasks = Vec::new();
    for round in 0..40 {
        let uid = if round % 2 == 0 { ALICE } else { BOB };
        let anon = round % 5 == 0;
        let rest = &rest;
        tasks.push(async move {
            let req = rest.rpc("GET", "whoami");
            let req = if anon { req } else { req.user(uid) };
            let who = ok_json(&req.send().await, 200);
            let todos = rest.table("GET", "todos").user(uid).send().await;
            (anon, uid, who, titles(&ok_json(&todos, 200)))
        });
    }
    for (anon, uid, who, seen) in futures_util::future::join_all(tasks).await {
        if anon {
            assert_eq!(who, json!({"role": "anon", "uid": null}));
        } else {
            assert_eq!(who, json!({"role": "authenticated", "uid": uid}));
        }
        let prefix = if uid == ALICE { "a" } else { "b" };
        assert!(
            seen.iter().all(|t| t.starts_with(prefix)),
            "{uid}: {seen:?}"
        );
        assert_eq!(seen.len(), 2);
    }
    // Between requests the connection is back to the login role, without claims.
    let conn = rest.pool.conn().await.unwrap();
    let row = conn
        .query_one(
            "SELECT current_user::text, session_user::text, \
             coalesce(current_setting('request.jwt.claims', true), ''), \
             current_setting('statement_timeout')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), row.get::<_, String>(1));
    assert_eq!(row.get::<_, String>(2), "");
    assert_eq!(row.get::<_, String>(3), "0");
    // Its statements are cached: the act-as statement and the request shapes.
    assert!(rest.service.cached_statements(&conn) >= 3);
}

#[tokio::test]
async fn custom_roles_must_exist_and_be_granted_to_the_login_role() {
    let rest = Rest::new().await;
    let unique = format!("editor_{}", std::process::id());
    let stranger = format!("stranger_{}", std::process::id());
    rest.sql(&format!(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{unique}') THEN
             CREATE ROLE {unique} NOLOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{stranger}') THEN
             CREATE ROLE {stranger} NOLOGIN SUPERUSER; END IF;
         END $$;
         GRANT {unique} TO CURRENT_USER;
         GRANT SELECT ON public.teams TO {unique};
         GRANT USAGE ON SCHEMA auth TO {unique};"
    ))
    .await;
    let r = rest
        .table("GET", "teams")
        .auth(custom(&unique))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200).as_array().unwrap().len(), 2);
    let r = rest.rpc("GET", "whoami").auth(custom(&unique)).send().await;
    assert_eq!(ok_json(&r, 200)["role"], unique.as_str());
    // Exists, but never granted to the login role (and a superuser): 403.
    let r = rest
        .rpc("GET", "whoami")
        .auth(custom(&stranger))
        .send()
        .await;
    let body = ok_json(&r, 403);
    assert_eq!(body["code"], "42501");
    // A write as a refused role is rolled back, never committed as anon.
    let r = rest
        .table("POST", "teams")
        .auth(custom(&stranger))
        .json(json!({"id": 9, "name": "sneaky"}))
        .send()
        .await;
    expect_status(&r, 403);
    // Does not exist: 401.
    let r = rest
        .rpc("GET", "whoami")
        .auth(custom("no_such_role_at_all"))
        .send()
        .await;
    let body = ok_json(&r, 401);
    assert_eq!(body["code"], "22023");
    let teams: i64 = rest
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM public.teams", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(teams, 2);
}

#[tokio::test]
async fn statement_timeouts_are_per_role_and_answer_504() {
    let rest = Rest::with(FIXTURE, |s| {
        s.role_statement_timeouts = vec![("anon".into(), std::time::Duration::from_millis(200))];
    })
    .await;
    let r = rest
        .rpc("POST", "nap")
        .json(json!({"seconds": 5}))
        .send()
        .await;
    let body = ok_json(&r, 504);
    assert_eq!(body["code"], "57014");
    let r = rest
        .rpc("POST", "nap")
        .user(ALICE)
        .json(json!({"seconds": 0.3}))
        .send()
        .await;
    expect_status(&r, 204);
    let r = rest
        .fluxbase("GET", "public", "films", None)
        .query("select=id")
        .send()
        .await;
    expect_status(&r, 200);
}

#[tokio::test]
async fn hidden_schemas_and_catalogs_are_unreachable() {
    let rest = Rest::with(FIXTURE, |s| {
        s.schemas = vec!["public".into(), "auth".into(), "pg_catalog".into()]
    })
    .await;
    for schema in ["auth", "pg_catalog", "storage", "information_schema"] {
        let r = rest.fluxbase("GET", schema, "users", None).send().await;
        let body = ok_json(&r, 406);
        assert_eq!(body["error"]["code"], "not_acceptable", "{schema}");
        let r = rest
            .table("GET", "users")
            .service()
            .header("Accept-Profile", schema)
            .send()
            .await;
        assert_eq!(ok_json(&r, 406)["code"], "PGRST106", "{schema}");
    }
    // A public function returning rows of a hidden table is the function's business, but
    // embedding from it never reaches the hidden schema.
    let r = rest
        .table("GET", "profiles")
        .service()
        .query("select=*,users(*)")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST200");
}

#[tokio::test]
async fn a_cancelled_request_never_hands_its_transaction_to_the_next() {
    // One pooled connection. A write is dropped mid-flight (client gone) while its
    // transaction is open: its connection must leave the pool rather than carry the open
    // transaction into the next request, whose COMMIT would then commit it.
    let pool = PoolSettings {
        max_connections: 1,
        min_connections: 1,
        ..PoolSettings::default()
    };
    let rest = Rest::with_pool(FIXTURE, |_| {}, pool).await;
    rest.sql(
        "CREATE FUNCTION public.slow_add(id int) RETURNS public.directors LANGUAGE sql \
         VOLATILE AS $$ INSERT INTO public.directors VALUES (id, 'slow'); \
         SELECT pg_sleep(1.5); SELECT * FROM public.directors WHERE directors.id = slow_add.id $$; \
         GRANT EXECUTE ON FUNCTION public.slow_add(int) TO authenticated;",
    )
    .await;
    tokio::time::timeout(
        DEADLINE,
        rest.cache
            .wait_for(|s| !s.functions_named("public", "slow_add").is_empty()),
    )
    .await
    .unwrap();
    // The single-object check keeps the transaction open until the result is seen.
    let slow = rest
        .rpc("POST", "slow_add")
        .user(ALICE)
        .header("Accept", "application/vnd.pgrst.object+json")
        .json(json!({"id": 77}))
        .send();
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(300), slow).await;
    assert!(cancelled.is_err(), "the call finished before the timeout");
    let r = rest.rpc("GET", "whoami").user(BOB).send().await;
    assert_eq!(
        ok_json(&r, 200),
        json!({"role": "authenticated", "uid": BOB})
    );
    // The connection in the pool is outside any transaction, as the login role.
    let conn = rest.pool.conn().await.unwrap();
    let outside = conn.batch_execute("SAVEPOINT probe").await.unwrap_err();
    assert_eq!(outside.code().map(|c| c.code()), Some("25P01"));
    let row = conn
        .query_one("SELECT current_user::text = session_user::text", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    drop(conn);
    // Once the abandoned backend is gone, its insert was rolled back, never committed.
    let admin = rest.db.client().await;
    let gone = async {
        loop {
            let busy: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE '%slow_add%' \
                     AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if busy == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(DEADLINE, gone).await.unwrap();
    let inserted: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.directors WHERE id = 77)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!inserted, "the cancelled write was committed");
}
