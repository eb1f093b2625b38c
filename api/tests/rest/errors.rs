//! Every error mapping, in PostgREST's shape (`/rest/v1`) and Fluxbase's (`/api/v1`):
//! unknown names, constraint violations, type mismatches, malformed requests and bodies,
//! bounds, and an error in the role switch stopping the statement behind it.

use serde_json::{Value, json};

use super::harness::*;

/// `(status, code)` of a PostgREST-shaped error response.
fn pgrst(r: &fluxbase_api::rest::RestResponse) -> (u16, String) {
    let body = r.json();
    (
        r.status.as_u16(),
        body["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn unknown_names_are_named() {
    let rest = Rest::new().await;
    let r = rest.table("GET", "nope").send().await;
    let body = ok_json(&r, 404);
    assert_eq!(body["code"], "PGRST205");
    assert_eq!(
        body["message"],
        "Could not find the table 'public.nope' in the schema cache"
    );
    for query in [
        "select=id,nope",
        "nope=eq.1",
        "order=nope",
        "or=(id.eq.1,nope.eq.2)",
        "select=id,reviews(nope)",
    ] {
        let r = rest.table("GET", "films").query(query).send().await;
        let body = ok_json(&r, 400);
        assert_eq!(body["code"], "42703", "{query}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(".nope does not exist"),
            "{query}: {body}"
        );
    }
    let r = rest
        .table("POST", "directors")
        .service()
        .json(json!({"id": 1, "nickname": "x"}))
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert_eq!(body["code"], "PGRST204");
    assert_eq!(
        body["message"],
        "Could not find the 'nickname' column of 'directors' in the schema cache"
    );
    // In Fluxbase's shape: the vocabulary code, the PostgREST code in the message.
    let r = rest.fluxbase("GET", "public", "nope", None).send().await;
    let body = ok_json(&r, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("public.nope") && message.ends_with("(PGRST205)"),
        "{message}"
    );
}

#[tokio::test]
async fn constraint_violations_map_to_409_and_400() {
    let rest = Rest::new().await;
    let post =
        |table: &'static str, body: Value| rest.table("POST", table).user(ALICE).json(body).send();
    let cases = [
        ("directors", json!({"id": 1, "name": "dup"}), 409, "23505"),
        ("reviews", json!({"film_id": 99, "stars": 1}), 409, "23503"),
        ("directors", json!({"id": 90}), 400, "23502"),
        ("reviews", json!({"film_id": 1, "stars": 9}), 400, "23514"),
        ("reviews", json!({"film_id": "abc"}), 400, "22P02"),
    ];
    for (table, body, status, code) in cases {
        let r = post(table, body.clone()).await;
        assert_eq!(pgrst(&r), (status, code.to_owned()), "{body}");
    }
    let r = post("directors", json!({"id": 1, "name": "dup"})).await;
    let body = r.json();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key value violates unique constraint")
    );
    assert_eq!(body["details"], "Key (id)=(1) already exists.");
    let r = rest
        .fluxbase("POST", "public", "directors", None)
        .user(ALICE)
        .json(json!({"id": 1, "name": "dup"}))
        .send()
        .await;
    let body = ok_json(&r, 409);
    assert_eq!(body["error"]["code"], "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("(SQLSTATE 23505)")
    );
}

#[tokio::test]
async fn type_mismatches_and_malformed_queries_are_400() {
    let rest = Rest::new().await;
    let cases: &[(&str, &str)] = &[
        ("id=eq.abc", "22P02"),
        ("year=in.(1,x)", "22P02"),
        ("showing=ov.garbage", "22P02"),
        ("id=xx.1", "PGRST100"),
        ("id=eq", "PGRST100"),
        ("select=id;drop table films", "PGRST100"),
        ("select=id)", "PGRST100"),
        ("select=id::text);select", "PGRST100"),
        ("select=id::regclass", "PGRST100"),
        ("or=(id.eq.1", "PGRST100"),
        ("or=id.eq.1", "PGRST100"),
        ("and=(or(id.eq.1),)", "PGRST100"),
        ("order=id.sideways", "PGRST100"),
        ("limit=ten", "PGRST100"),
    ];
    for (query, code) in cases {
        let r = rest.table("GET", "films").query(query).send().await;
        assert_eq!(
            pgrst(&r),
            (400, code.to_string()),
            "{query}: {:?}",
            r.json()
        );
    }
    // Bounds: a huge in list, deep embedding, deep logic trees.
    let huge = (0..1_001)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let r = rest
        .table("GET", "films")
        .query(&format!("id=in.({huge})"))
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert!(
        body["details"]
            .as_str()
            .unwrap()
            .contains("more than 1000 values")
    );
    let deep = "select=id,a(b(c(d(e(f(g(id)))))))";
    let r = rest.table("GET", "films").query(deep).send().await;
    assert!(
        ok_json(&r, 400)["details"]
            .as_str()
            .unwrap()
            .contains("nested deeper")
    );
    let logic = format!("or=({}id.eq.1{})", "and(".repeat(9), ")".repeat(9));
    let r = rest.table("GET", "films").query(&logic).send().await;
    assert!(
        ok_json(&r, 400)["details"]
            .as_str()
            .unwrap()
            .contains("deeper than 8")
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let rest = Rest::new().await;
    let cases: &[(&[u8], &str)] = &[
        (b"{\"id\": 1,", "Invalid JSON body"),
        (
            b"[{\"id\": 80, \"name\": \"a\"}, {\"id\": 81}]",
            "All object keys must match",
        ),
        (b"42", "POST takes a JSON object or an array of objects"),
        (b"", "Empty or invalid json"),
    ];
    for (body, message) in cases {
        let r = rest
            .table("POST", "directors")
            .service()
            .body(body.to_vec())
            .send()
            .await;
        let json = ok_json(&r, 400);
        assert_eq!(json["code"], "PGRST102");
        assert!(
            json["message"].as_str().unwrap().contains(message),
            "{message}: {json}"
        );
    }
    let r = rest
        .table("POST", "directors")
        .service()
        .header("Content-Type", "application/xml")
        .body("<x/>")
        .send()
        .await;
    assert_eq!(ok_json(&r, 415)["code"], "PGRST107");
    let r = rest
        .table("GET", "films")
        .header("Accept", "image/png")
        .send()
        .await;
    assert_eq!(ok_json(&r, 406)["code"], "PGRST107");
    let r = rest
        .table("GET", "films")
        .header("Range", "5-1")
        .send()
        .await;
    assert_eq!(ok_json(&r, 416)["code"], "PGRST103");
    let r = rest
        .table("GET", "films")
        .prefer("handling=strict")
        .prefer("bogus=1")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST122");
    let r = rest
        .table("GET", "films")
        .prefer("handling=strict")
        .prefer("timezone=Mars/Olympus")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST122");
}

#[tokio::test]
async fn time_zones_apply_to_the_request() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "todos")
        .service()
        .query("select=created_at::text")
        .prefer("timezone=Asia/Tokyo")
        .send()
        .await;
    expect_status(&r, 200);
    assert_eq!(r.header("Preference-Applied"), Some("timezone=Asia/Tokyo"));
    rest.sql("INSERT INTO public.todos (user_id, title) VALUES ('00000000-0000-0000-0000-00000000000a', 't')")
        .await;
    let r = rest
        .table("GET", "todos")
        .service()
        .query("select=created_at::text")
        .prefer("timezone=Asia/Tokyo")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"created_at": "2024-01-01 09:00:00+09"}])
    );
    // An unknown zone is ignored leniently.
    let r = rest
        .table("GET", "todos")
        .service()
        .query("select=created_at::text")
        .prefer("timezone=Mars/Olympus")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"created_at": "2024-01-01 00:00:00+00"}])
    );
    assert_eq!(r.header("Preference-Applied"), None);
}

#[tokio::test]
async fn an_error_in_the_role_switch_stops_the_statement_behind_it() {
    // A login role that may become anon but not authenticated: the switch to
    // authenticated fails, and the INSERT pipelined behind it must not run.
    let rest = Rest::new().await;
    let login = format!("rest_login_{}", std::process::id());
    rest.sql(&format!(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{login}') THEN
             CREATE ROLE {login} LOGIN PASSWORD 'login-secret'; END IF;
         END $$;
         GRANT anon TO {login};
         GRANT USAGE ON SCHEMA public TO {login};"
    ))
    .await;
    let mut config = rest.db.config();
    config.user(&login).password("login-secret");
    let pool = fluxbase_migrations::Db::new(config, fluxbase_migrations::PoolSettings::default());
    let service = fluxbase_api::rest::RestService::new(
        rest.cache.clone(),
        pool,
        fluxbase_api::rest::RestSettings::default(),
    );
    let headers = fluxbase_api::rest::request::Headers::default();
    let body = json!({"id": 95, "name": "must not exist"}).to_string();
    let call = fluxbase_api::rest::RestCall {
        method: "POST",
        resource: fluxbase_api::rest::Resource::Table {
            schema: None,
            name: "directors",
            key: None,
        },
        query: "",
        headers,
        body: body.as_bytes(),
    };
    let r = service
        .handle(call, &user(ALICE), fluxbase_api::rest::Flavour::PostgRest)
        .await;
    let body = ok_json(&r, 403);
    assert_eq!(body["code"], "42501");
    assert!(body["message"].as_str().unwrap().contains("set role"));
    let exists: bool = rest
        .db
        .client()
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.directors WHERE id = 95)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!exists);
}
