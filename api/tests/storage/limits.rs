//! Refusals over HTTP: traversal through encoded URLs (`%2e%2e%2f`, `%00`, backslashes,
//! absolute paths, double encoding), bodies over the bucket's `file_size_limit` or
//! `server.body_limit` (413, with or without `Content-Length`), refused types (415) —
//! each refusing before anything is stored.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::json;

use super::env::{Backend, Env, service_key};
use crate::storage_on_both_backends;
use crate::support::assert_error;

storage_on_both_backends!(traversal_through_urls, size_and_type_limits);

async fn traversal_through_urls(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("b", json!({})).await;
    for (path, rule) in [
        ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", "'..'"),
        ("..%2F..%2Fetc%2Fpasswd", "'..'"),
        ("a/%2e%2e/%2e%2e/etc/passwd", "'..'"),
        ("a/../../etc/passwd", "'..'"),
        ("%2Fetc%2Fpasswd", "must not start with '/'"),
        ("/etc/passwd", "must not start with '/'"),
        ("a%00.txt", "NUL"),
        ("a%0Ab", "control characters"),
        ("..%5C..%5Cwindows", "'\\'"),
        ("a//b", "empty segments"),
    ] {
        for (method, uri) in [
            (Method::POST, format!("/storage/v1/object/b/{path}")),
            (Method::GET, format!("/storage/v1/object/b/{path}")),
            (
                Method::POST,
                format!("/api/v1/storage/buckets/b/files/{path}"),
            ),
            (
                Method::GET,
                format!("/api/v1/storage/buckets/b/files/{path}"),
            ),
        ] {
            let got = env
                .call(
                    TestRequest::default()
                        .method(method.clone())
                        .uri(&uri)
                        .set_payload("evil"),
                    sk,
                )
                .await;
            assert_eq!(got.status, 400, "{method} {uri}: {}", got.body);
            let message = if uri.starts_with("/storage") {
                assert_eq!(got.body["code"], "InvalidKey", "{uri}");
                got.body["message"].as_str().unwrap().to_string()
            } else {
                assert_eq!(got.body["error"]["code"], "bad_request", "{uri}");
                got.body["error"]["message"].as_str().unwrap().to_string()
            };
            assert!(
                message.contains("object name") && message.contains(rule),
                "{uri}: {message:?} should name the rule {rule:?}"
            );
        }
    }
    // Double encoding decodes once: a harmless literal name, stored as such.
    let literal = env
        .put(
            Method::POST,
            "/storage/v1/object/b/%252e%252e%252fetc%252fpasswd",
            b"x",
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(literal.status, 200, "{}", literal.body);
    assert_eq!(literal.body["Key"], "b/%2e%2e%2fetc%2fpasswd");
    let bad_bucket = env
        .put(
            Method::POST,
            "/storage/v1/object/..%2Fb/x",
            b"x",
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(bad_bucket.status, 400, "{}", bad_bucket.body);
    assert_eq!(bad_bucket.body["code"], "InvalidBucketName");
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 1);
    // Whatever the name, the bytes live under the bucket's id and a version uuid.
    for file in env.root.object_files() {
        let relative = file.strip_prefix(&env.root.dir).unwrap();
        let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
        assert_eq!(parts.len(), 3, "{relative:?}");
        assert_eq!(parts[0], "b");
        assert!(uuid::Uuid::parse_str(&parts[2]).is_ok(), "{relative:?}");
    }
}

async fn size_and_type_limits(backend: Backend) {
    let env = Env::with(backend, |config| config.server.body_limit.0 = 4096).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket(
        "small",
        json!({"file_size_limit": 100, "allowed_mime_types": ["image/*", "text/plain"]}),
    )
    .await;
    env.bucket("big", json!({})).await;
    let body = vec![b'x'; 101];
    // Announced by Content-Length: refused before the body is read.
    let announced = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/small/a.txt")
                .insert_header(("content-type", "text/plain"))
                .insert_header(("content-length", "101"))
                .set_payload(body.clone()),
            sk,
        )
        .await;
    assert_eq!(announced.status, 413, "{}", announced.body);
    assert_eq!(announced.body["code"], "EntityTooLarge");
    assert!(
        announced.body["message"]
            .as_str()
            .unwrap()
            .contains("100 bytes")
    );
    // Streamed without a length: refused when the limit is passed.
    let streamed = env
        .put(
            Method::POST,
            "/storage/v1/object/small/a.txt",
            &body,
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(streamed.status, 413, "{}", streamed.body);
    // The server's limit binds buckets without one, on both surfaces.
    let over = vec![b'y'; 4097];
    let server = env
        .put(
            Method::PUT,
            "/storage/v1/object/big/b.bin",
            &over,
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(server.status, 413, "{}", server.body);
    assert!(
        server.body["message"]
            .as_str()
            .unwrap()
            .contains("4096 bytes")
    );
    let v1 = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets/big/files/b.bin")
                .set_payload(over.clone()),
            sk,
        )
        .await;
    assert_error(&v1, 413, "payload_too_large", "4096 bytes");
    // Exactly at the limits: stored.
    let at = env
        .put(
            Method::POST,
            "/storage/v1/object/small/ok.txt",
            &body[..100],
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(at.status, 200, "{}", at.body);
    let at_server = env
        .put(
            Method::POST,
            "/storage/v1/object/big/ok.bin",
            &over[..4096],
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(at_server.status, 200, "{}", at_server.body);

    // Types: the allow-list with a wildcard.
    let png = env
        .put(
            Method::POST,
            "/storage/v1/object/small/p.png",
            b"png",
            "image/png",
            sk,
        )
        .await;
    assert_eq!(png.status, 200, "{}", png.body);
    let html = env
        .put(
            Method::POST,
            "/storage/v1/object/small/p.html",
            b"<p>",
            "text/html",
            sk,
        )
        .await;
    assert_eq!(html.status, 415, "{}", html.body);
    assert_eq!(html.body["code"], "InvalidMimeType");
    assert!(html.body["message"].as_str().unwrap().contains("text/html"));
    let v1_html = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets/small/files/q.html")
                .insert_header(("content-type", "text/html"))
                .set_payload("<p>"),
            sk,
        )
        .await;
    assert_error(&v1_html, 415, "unsupported_media_type", "text/html");

    // Nothing of the refused uploads was kept.
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 3);
    super::env::eventually("only the three stored objects have bytes", || async {
        env.root.object_files().len() == 3
    })
    .await;
}
