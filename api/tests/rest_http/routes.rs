//! Every route shape of both mounts, the profile headers, HEAD, the OpenAPI roots, and
//! percent-decoded path segments.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_rows_and_functions_at_both_mounts() {
    let api = Api::start(&[]).await;
    let first_two = json!([
        {"id": 1, "title": "Cléo from 5 to 7"},
        {"id": 2, "title": "Jeanne Dielman"}
    ]);
    // The same read at the three table paths.
    for path in [
        "/rest/v1/films?select=id,title&order=id&limit=2",
        "/api/v1/tables/films?select=id,title&order=id&limit=2",
        "/api/v1/tables/public/films?select=id,title&order=id&limit=2",
    ] {
        let got = api.get(path, &[]).await;
        assert_eq!(got.status, 200, "{path}: {}", got.body);
        assert_eq!(got.json(), first_two, "{path}");
        assert!(
            got.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{}",
            got.headers
        );
    }
    // One row by primary key: an object, 404 without it.
    let got = api
        .get("/api/v1/tables/public/films/4?select=id,title", &[])
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json(), json!({"id": 4, "title": "Vagabond"}));
    let got = api.get("/api/v1/tables/public/films/999", &[]).await;
    assert_fluxbase_error(&got, 404, "not_found", "primary key");

    // Functions: POST with named arguments, GET with query-string arguments, both mounts.
    for path in [
        "/rest/v1/rpc/add",
        "/api/v1/rpc/add",
        "/api/v1/rpc/public/add",
    ] {
        let got = api.json("POST", path, &[], json!({"a": 2, "b": 3})).await;
        assert_eq!(got.status, 200, "{path}: {}", got.body);
        assert_eq!(got.json(), json!(5), "{path}");
        let got = api.get(&format!("{path}?a=20&b=22"), &[]).await;
        assert_eq!(got.status, 200, "{path}: {}", got.body);
        assert_eq!(got.json(), json!(42), "{path}");
    }
    // A set-returning function filters like a table.
    let got = api
        .get("/rest/v1/rpc/films_since?since=1970&select=id&id=gt.3", &[])
        .await;
    assert_eq!(got.json(), json!([{"id": 4}]), "{}", got.body);

    // HEAD: the headers of the GET, no body.
    let got = api
        .req(
            "HEAD",
            "/rest/v1/films?select=id",
            &[("Prefer", "count=exact"), ("Range", "0-1")],
            "",
        )
        .await;
    assert_eq!(got.status, 206, "{}", got.headers);
    assert_eq!(got.header("content-range"), Some("0-1/5"));
    assert_eq!(got.body, "");

    // A method the service does not serve is answered by it, in each shape.
    let got = api.req("PATCH", "/rest/v1/rpc/add", &[], "{}").await;
    assert_postgrest_error(&got, 405, "PGRST101", "PATCH");
    let got = api.req("PATCH", "/api/v1/rpc/add", &[], "{}").await;
    assert_fluxbase_error(&got, 405, "method_not_allowed", "PGRST101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_headers_choose_among_the_exposed_schemas() {
    let api = Api::start(&[]).await;
    // `api.notes` by path schema, and by Accept-Profile on /rest/v1.
    let got = api.get("/api/v1/tables/api/notes", &[]).await;
    assert_eq!(
        got.json(),
        json!([{"id": 1, "body": "in api"}]),
        "{}",
        got.body
    );
    let got = api
        .get("/rest/v1/notes", &[("Accept-Profile", "api")])
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json(), json!([{"id": 1, "body": "in api"}]));
    assert_eq!(got.header("content-profile"), Some("api"));
    // Without it, the default schema (public) has no `notes`.
    let got = api.get("/rest/v1/notes", &[]).await;
    assert_postgrest_error(&got, 404, "PGRST205", "notes");
    // Content-Profile for writes (service_role may write api.notes).
    api.sql("GRANT INSERT ON api.notes TO service_role").await;
    let service = format!("Bearer {}", service_token());
    let got = api
        .json(
            "POST",
            "/rest/v1/notes",
            &[
                ("Content-Profile", "api"),
                ("Authorization", &service),
                ("Prefer", "return=representation"),
            ],
            json!({"id": 2, "body": "posted"}),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    assert_eq!(got.json(), json!([{"id": 2, "body": "posted"}]));
    assert_eq!(api.count("SELECT count(*) FROM api.notes").await, 2);
    // A schema that is not exposed, or never may be.
    for schema in ["auth", "nope"] {
        let got = api
            .get("/rest/v1/users", &[("Accept-Profile", schema)])
            .await;
        assert_postgrest_error(&got, 406, "PGRST106", schema);
        let got = api
            .get(&format!("/api/v1/tables/{schema}/users"), &[])
            .await;
        assert_fluxbase_error(&got, 406, "not_acceptable", "PGRST106");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roots_serve_openapi_and_new_tables_are_reachable_without_restart() {
    let api = Api::start(&[]).await;
    for (path, base) in [
        ("/rest/v1/", "/rest/v1"),
        ("/rest/v1", "/rest/v1"),
        ("/api/v1/tables", "/api/v1/tables"),
    ] {
        let got = api.get(path, &[]).await;
        assert_eq!(got.status, 200, "{path}: {}", got.body);
        assert!(
            got.header("content-type")
                .unwrap()
                .starts_with("application/openapi+json"),
            "{}",
            got.headers
        );
        let doc = got.json();
        assert_eq!(doc["swagger"], "2.0", "{path}");
        assert_eq!(doc["basePath"], base, "{path}");
        assert!(doc["paths"]["/films"].is_object(), "{path}");
        assert!(doc["paths"]["/rpc/add"].is_object(), "{path}");
    }
    let got = api.get("/rest/v1/", &[("Accept-Profile", "api")]).await;
    assert!(got.json()["paths"]["/notes"].is_object(), "{}", got.body);
    let got = api.req("POST", "/rest/v1/", &[], "").await;
    assert_postgrest_error(&got, 405, "PGRST117", "POST");

    // A table created while the server runs, with a name that needs percent-encoding
    // (space, slash, percent), is reachable without a restart.
    api.sql(
        r#"CREATE TABLE public."odd name/%" (id int PRIMARY KEY);
           INSERT INTO public."odd name/%" VALUES (7);
           GRANT SELECT ON public."odd name/%" TO anon;"#,
    )
    .await;
    let path = "/rest/v1/odd%20name%2F%25";
    let created = Instant::now();
    let got = loop {
        let got = api.get(path, &[]).await;
        if got.status != 404 || created.elapsed() > Duration::from_secs(10) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json(), json!([{"id": 7}]));
    let got = api
        .get("/api/v1/tables/public/odd%20name%2F%25/7", &[])
        .await;
    assert_eq!(got.json(), json!({"id": 7}), "{}", got.body);
    let doc: Value = api.get("/rest/v1/", &[]).await.json();
    assert!(doc["paths"]["/odd name/%"].is_object(), "{}", doc["paths"]);
}
