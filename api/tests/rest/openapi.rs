//! `GET /rest/v1/`: the OpenAPI description of the exposed schema, from the snapshot.

use fluxbase_api::rest::Flavour;

use super::harness::*;

#[tokio::test]
async fn describes_tables_columns_keys_and_functions() {
    let rest = Rest::with(FIXTURE, |s| s.schemas = vec!["public".into(), "api".into()]).await;
    let r = rest.service.openapi(None, "/rest/v1", Flavour::PostgRest);
    let doc = ok_json(&r, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/openapi+json; charset=utf-8")
    );
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["basePath"], "/rest/v1");
    let films = &doc["definitions"]["films"];
    assert_eq!(films["properties"]["id"]["type"], "integer");
    assert_eq!(films["properties"]["id"]["format"], "int32");
    assert!(
        films["properties"]["id"]["description"]
            .as_str()
            .unwrap()
            .contains("<pk/>")
    );
    assert!(
        films["properties"]["director_id"]["description"]
            .as_str()
            .unwrap()
            .contains("<fk table='directors' column='id'/>")
    );
    assert_eq!(films["properties"]["rating"]["type"], "number");
    assert_eq!(films["required"], serde_json::json!(["id", "title"]));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths["/films"]["get"].is_object());
    assert!(paths["/films"]["post"].is_object());
    assert!(paths["/films"]["delete"].is_object());
    // Stable functions take GET and POST, volatile ones POST only.
    assert!(paths["/rpc/add"]["get"].is_object());
    assert!(paths["/rpc/add_director"]["get"].is_null());
    assert_eq!(
        paths["/rpc/add_director"]["post"]["parameters"][0]["schema"]["required"],
        serde_json::json!(["id", "name"])
    );
    // Nothing of the other schemas.
    assert!(paths.get("/notes").is_none());
    assert!(paths.get("/users").is_none());

    let r = rest
        .service
        .openapi(Some("api"), "/rest/v1", Flavour::PostgRest);
    let doc = ok_json(&r, 200);
    assert!(doc["paths"]["/notes"].is_object());
    assert_eq!(r.header("Content-Profile"), Some("api"));
    let r = rest
        .service
        .openapi(Some("auth"), "/rest/v1", Flavour::PostgRest);
    assert_eq!(ok_json(&r, 406)["code"], "PGRST106");
}
