//! Function calls: GET with query-string arguments, POST with named JSON arguments,
//! overloads chosen by argument names, a single unnamed json / text argument, VARIADIC,
//! defaults, scalar / set / composite / table results (filterable like tables), void,
//! volatility, and the errors.

use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn scalar_results_by_get_and_post() {
    let rest = Rest::new().await;
    let r = rest.rpc("GET", "add").query("a=1&b=2").send().await;
    assert_eq!(ok_json(&r, 200), json!(3));
    // The overload is chosen by the names given.
    let r = rest.rpc("GET", "add").query("a=x&b=y&c=z").send().await;
    assert_eq!(ok_json(&r, 200), json!("xyz"));
    let r = rest
        .rpc("POST", "add")
        .json(json!({"a": 40, "b": 2}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!(42));
    let r = rest
        .rpc("POST", "add")
        .json(json!({"a": "p", "b": "q", "c": "r"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!("pqr"));
    // Form bodies name arguments too.
    let r = rest
        .rpc("POST", "add")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a=5&b=6")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!(11));
    // Defaults, VARIADIC.
    let r = rest.rpc("GET", "greet").send().await;
    assert_eq!(ok_json(&r, 200), json!("hello world"));
    let r = rest.rpc("GET", "greet").query("name=you").send().await;
    assert_eq!(ok_json(&r, 200), json!("hello you"));
    let r = rest.rpc("GET", "total").query("n=1&n=2&n=39").send().await;
    assert_eq!(ok_json(&r, 200), json!(42));
    let r = rest
        .rpc("POST", "total")
        .json(json!({"n": [1, 2, 3]}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!(6));
    let r = rest.rpc("HEAD", "add").query("a=1&b=2").send().await;
    expect_status(&r, 200);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn single_unnamed_arguments_take_the_whole_body() {
    let rest = Rest::new().await;
    let r = rest
        .rpc("POST", "echo")
        .json(json!({"any": ["json", 1]}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!({"any": ["json", 1]}));
    let r = rest.rpc("POST", "echo").json(json!([1, 2])).send().await;
    assert_eq!(ok_json(&r, 200), json!([1, 2]));
    let r = rest
        .rpc("POST", "shout")
        .header("Content-Type", "text/plain")
        .body("quiet")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!("QUIET"));
}

#[tokio::test]
async fn set_and_table_results_filter_order_and_count_like_tables() {
    let rest = Rest::new().await;
    let r = rest
        .rpc("GET", "films_since")
        .query("since=1970&select=id,title,directors(name)&order=id.desc&limit=2")
        .prefer("count=exact")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 206),
        json!([
            {"id": 4, "title": "Vagabond", "directors": {"name": "Agnès Varda"}},
            {"id": 3, "title": "News from Home", "directors": {"name": "Chantal Akerman"}}
        ])
    );
    assert_eq!(r.header("Content-Range"), Some("0-1/3"));
    let r = rest
        .rpc("POST", "films_since")
        .query("select=id&title=like.*e*")
        .json(json!({"since": 1900}))
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 200)), vec![2, 3]);
    let r = rest.rpc("GET", "years").send().await;
    assert_eq!(ok_json(&r, 200), json!([1962, 1975, 1976, 1985]));
    let r = rest.rpc("GET", "ratings").query("rating=gt.8").send().await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"film": "Cléo from 5 to 7", "rating": 8.1}])
    );
    let r = rest
        .rpc("GET", "ratings")
        .query("select=film&rating=is.null")
        .header("Accept", "text/csv")
        .send()
        .await;
    assert_eq!(&r.body[..], b"film\nNews from Home\nUntitled");
    // OUT parameters: one object.
    let r = rest.rpc("GET", "film_stats").send().await;
    assert_eq!(ok_json(&r, 200), json!({"films": 5, "rated": 3}));
    let r = rest
        .rpc("GET", "films_since")
        .query("since=1985")
        .header("Accept", "application/vnd.pgrst.object+json")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200)["title"], "Vagabond");
}

#[tokio::test]
async fn volatility_void_and_raised_errors() {
    let rest = Rest::new().await;
    let r = rest
        .rpc("POST", "add_director")
        .user(ALICE)
        .json(json!({"id": 70, "name": "Via RPC"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!({"id": 70, "name": "Via RPC"}));
    // GET runs read-only: a function that writes is refused (25006 → 405).
    let r = rest
        .rpc("GET", "add_director")
        .user(ALICE)
        .query("id=71&name=x")
        .send()
        .await;
    let body = ok_json(&r, 405);
    assert_eq!(body["code"], "25006");
    let r = rest.rpc("POST", "touch").send().await;
    expect_status(&r, 204);
    assert!(r.body.is_empty());
    let r = rest
        .rpc("POST", "fail")
        .json(json!({"msg": "nope"}))
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert_eq!(body["code"], "P0001");
    assert_eq!(body["message"], "nope");
    assert_eq!(body["hint"], "a hint");
    let count: i64 = rest
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM public.directors WHERE id IN (70, 71)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn unknown_and_ambiguous_functions() {
    let rest = Rest::new().await;
    let r = rest.rpc("GET", "nope").query("a=1").send().await;
    let body = ok_json(&r, 404);
    assert_eq!(body["code"], "PGRST202");
    assert_eq!(
        body["message"],
        "Could not find the function public.nope(a) in the schema cache"
    );
    let r = rest.rpc("GET", "add").query("a=1").send().await;
    assert_eq!(ok_json(&r, 404)["code"], "PGRST202");
    let r = rest.rpc("GET", "twice").query("x=2").send().await;
    let body = ok_json(&r, 300);
    assert_eq!(body["code"], "PGRST203");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("public.twice(x => integer)")
    );
    let r = rest
        .rpc("GET", "total")
        .query("n=1")
        .query("a=1&a=2")
        .send()
        .await;
    assert_eq!(ok_json(&r, 404)["code"], "PGRST202");
    let r = rest.rpc("GET", "add").query("a=1&a=2&b=3").send().await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST100");
    let r = rest.rpc("GET", "add").query("a=one&b=2").send().await;
    assert_eq!(ok_json(&r, 400)["code"], "22P02");
}

#[tokio::test]
async fn functions_run_as_the_caller() {
    let rest = Rest::new().await;
    let r = rest.rpc("GET", "whoami").send().await;
    assert_eq!(ok_json(&r, 200), json!({"role": "anon", "uid": null}));
    let r = rest.rpc("GET", "whoami").user(BOB).send().await;
    assert_eq!(
        ok_json(&r, 200),
        json!({"role": "authenticated", "uid": BOB})
    );
    let r = rest.rpc("GET", "whoami").service().send().await;
    assert_eq!(ok_json(&r, 200)["role"], "service_role");
}
