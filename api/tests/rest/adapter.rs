//! The two conversions the HTTP routes use: an actix request into a `RestCall`, a
//! `RestResponse` into an actix response.

use actix_web::body::MessageBody;
use actix_web::test::TestRequest;
use fluxbase_api::rest::{Flavour, Resource, RestCall};
use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn actix_requests_and_responses_convert_whole() {
    let rest = Rest::new().await;
    let req = TestRequest::get()
        .uri("/rest/v1/films?select=id,title&id=lt.3&order=id")
        .insert_header(("Prefer", "count=exact"))
        .append_header(("Prefer", "handling=lenient"))
        .insert_header(("Range", "0-0"))
        .insert_header(("Accept", "application/json"))
        .to_http_request();
    let resource = Resource::Table {
        schema: None,
        name: "films",
        key: None,
    };
    let call = RestCall::from_http(&req, resource, b"");
    assert_eq!(call.headers.prefer, vec!["count=exact", "handling=lenient"]);
    let response = rest
        .service
        .handle(
            call,
            &fluxbase_auth::AuthContext::anon(),
            Flavour::PostgRest,
        )
        .await;
    let http = response.into_http();
    assert_eq!(http.status().as_u16(), 206);
    assert_eq!(
        http.headers()
            .get("content-range")
            .unwrap()
            .to_str()
            .unwrap(),
        "0-0/2"
    );
    let body = http.into_body().try_into_bytes().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        json!([{"id": 1, "title": "Cléo from 5 to 7"}])
    );
}
