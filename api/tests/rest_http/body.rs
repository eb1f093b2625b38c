//! Request bodies and browsers: a bulk insert of 10,000 rows in one request (≈ 1 MB),
//! `rest.body_limit` (413 in each shape, announced or chunked), and CORS for the headers
//! supabase-js sends and reads.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::support::http::exchange;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows_in_one_request() {
    let api = Api::start(&[]).await;
    let rows: Vec<Value> = (1..=10_000)
        .map(|i| {
            let name = format!(
                "director number {i:05} of the bulk load, named at some length to weigh ~100 B"
            );
            json!({"id": 1000 + i, "name": name})
        })
        .collect();
    let body = Value::Array(rows).to_string();
    assert!(body.len() > 900_000, "{} bytes", body.len());
    let service = format!("Bearer {}", service_token());
    let got = api
        .req(
            "POST",
            "/rest/v1/directors",
            &[
                ("Authorization", &service),
                ("Content-Type", "application/json"),
                ("Prefer", "return=minimal, count=exact"),
            ],
            &body,
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    assert_eq!(got.header("content-range"), Some("*/10000"));
    assert_eq!(
        api.count("SELECT count(*) FROM public.directors WHERE id > 1000")
            .await,
        10_000
    );
    // And read back in one response.
    let got = api
        .get(
            "/api/v1/tables/directors?id=gt.1000&select=id&order=id",
            &[("Authorization", &service)],
        )
        .await;
    let ids = ids(&got.json());
    assert_eq!(ids.len(), 10_000);
    assert_eq!((ids[0], ids[9_999]), (1001, 11_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_in_each_shape() {
    let api = Api::start(&[("FLUXBASE_REST_BODY_LIMIT", "4KB")]).await;
    let service = format!("Bearer {}", service_token());
    let big = json!({"id": 70, "name": "x".repeat(5000)}).to_string();
    let headers = [
        ("Authorization", service.as_str()),
        ("Content-Type", "application/json"),
    ];
    let got = api.req("POST", "/rest/v1/directors", &headers, &big).await;
    assert_postgrest_error(&got, 413, "PGRST102", "4096 bytes");
    let got = api
        .req("POST", "/api/v1/tables/directors", &headers, &big)
        .await;
    assert_fluxbase_error(&got, 413, "payload_too_large", "rest.body_limit");
    // Chunked, without a Content-Length: refused once the limit is crossed.
    let head = format!(
        "POST /rest/v1/directors HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Authorization: {service}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked",
        api.server.addr
    );
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let got = exchange(
        &api.server.addr,
        &head,
        chunked.as_bytes(),
        Duration::from_secs(30),
    )
    .await;
    assert_postgrest_error(&got, 413, "PGRST102", "rest.body_limit");
    // Under the limit it goes through; nothing over it was written.
    let small = json!({"id": 71, "name": "fits"}).to_string();
    let got = api
        .req("POST", "/rest/v1/directors", &headers, &small)
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    assert_eq!(
        api.count("SELECT count(*) FROM public.directors WHERE id >= 70")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_supabase_js_headers_and_exposes_what_it_reads() {
    let api = Api::start(&[]).await;
    let asked = "authorization, apikey, x-client-info, content-type, prefer, range, \
                 accept-profile, content-profile";
    let got = api
        .req(
            "OPTIONS",
            "/rest/v1/todos?id=eq.1",
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "PATCH"),
                ("Access-Control-Request-Headers", asked),
            ],
            "",
        )
        .await;
    assert_eq!(got.status, 204, "{}", got.headers);
    let allowed = got
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for header in asked.split(", ") {
        assert!(
            allowed.split(", ").any(|h| h == header),
            "{header} not in {allowed}"
        );
    }
    let methods = got.header("access-control-allow-methods").unwrap();
    for method in ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"] {
        assert!(methods.contains(method), "{method} not in {methods}");
    }
    // A real answer exposes the headers postgrest-js reads.
    let got = api
        .get(
            "/rest/v1/films?select=id",
            &[
                ("Origin", "https://app.example.com"),
                ("Prefer", "count=exact"),
            ],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
    let exposed = got
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for header in [
        "content-range",
        "location",
        "preference-applied",
        "content-profile",
    ] {
        assert!(exposed.contains(header), "{header} not in {exposed}");
    }
}
