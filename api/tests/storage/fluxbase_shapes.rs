//! `/api/v1/storage` in Fluxbase's shapes: buckets, files, listing, info, copy and move,
//! with `{"error":{code,message}}` errors.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use super::env::{Backend, Env, header, owner_policies, service_key};
use crate::storage_on_both_backends;
use crate::support::assert_error;

storage_on_both_backends!(buckets_and_files);

async fn buckets_and_files(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    let created = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets")
                .set_json(json!({"id": "files", "public": false, "file_size_limit": 1000})),
            sk,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], "files");
    assert_eq!(created.body["file_size_limit"], 1000);
    let twice = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets")
                .set_json(json!({"id": "files"})),
            sk,
        )
        .await;
    assert_error(&twice, 409, "conflict", "already exists");
    let unknown_field = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets")
                .set_json(json!({"id": "x", "colour": "red"})),
            sk,
        )
        .await;
    assert_error(&unknown_field, 400, "bad_request", "colour");
    let listed = env
        .call(TestRequest::get().uri("/api/v1/storage/buckets"), sk)
        .await;
    assert_eq!(listed.body["buckets"][0]["id"], "files");
    let patched = env
        .call(
            TestRequest::patch()
                .uri("/api/v1/storage/buckets/files")
                .set_json(json!({"file_size_limit": null, "public": true})),
            sk,
        )
        .await;
    assert_eq!(patched.body["file_size_limit"], Value::Null);
    assert_eq!(patched.body["public"], true);

    let file = "/api/v1/storage/buckets/files/files/docs/readme.md";
    let up = env
        .put(Method::POST, file, b"# readme", "text/markdown", sk)
        .await;
    assert_eq!(up.status, 201, "{}", up.body);
    assert_eq!(up.body["name"], "docs/readme.md");
    assert_eq!(up.body["size"], 8);
    assert_eq!(up.body["mime_type"], "text/markdown");
    assert_eq!(up.body["sha256"].as_str().unwrap().len(), 64);
    let conflict = env
        .put(Method::POST, file, b"again", "text/markdown", sk)
        .await;
    assert_error(&conflict, 409, "conflict", "already exists");
    let replaced = env
        .put(Method::PUT, file, b"# readme 2", "text/markdown", sk)
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let got = env.call(TestRequest::get().uri(file), sk).await;
    assert_eq!(got.body, json!("# readme 2"));
    let part = env
        .call(
            TestRequest::get()
                .uri(file)
                .insert_header(("range", "bytes=2-7")),
            sk,
        )
        .await;
    assert_eq!((part.status, &part.body), (206, &json!("readme")));
    let beyond = env
        .call(
            TestRequest::get()
                .uri(file)
                .insert_header(("range", "bytes=99-")),
            sk,
        )
        .await;
    assert_error(&beyond, 416, "range_not_satisfiable", "10 bytes");
    assert_eq!(header(&beyond, "content-range"), "bytes */10");
    let etag = header(&got, "etag").to_string();
    let cached = env
        .call(
            TestRequest::get()
                .uri(file)
                .insert_header(("if-none-match", etag.as_str())),
            sk,
        )
        .await;
    assert_eq!(cached.status, 304);
    let info = env
        .call(
            TestRequest::get().uri("/api/v1/storage/buckets/files/info/docs/readme.md"),
            sk,
        )
        .await;
    assert_eq!(info.body["size"], 10);

    let copy = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets/files/copy")
                .set_json(json!({"from": "docs/readme.md", "to": "docs/copy.md"})),
            sk,
        )
        .await;
    assert_eq!(copy.status, 201, "{}", copy.body);
    let rename = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets/files/move")
                .set_json(json!({"from": "docs/copy.md", "to": "top.md"})),
            sk,
        )
        .await;
    assert_eq!(rename.body["name"], "top.md");
    let root = env
        .call(
            TestRequest::get().uri("/api/v1/storage/buckets/files/files"),
            sk,
        )
        .await;
    assert_eq!(
        root.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["folder"].as_bool().unwrap()))
            .collect::<Vec<_>>(),
        [("docs", true), ("top.md", false)]
    );
    assert_eq!(root.body["entries"][1]["object"]["size"], 10);
    let searched = env
        .call(
            TestRequest::get().uri("/api/v1/storage/buckets/files/files?prefix=docs&search=READ"),
            sk,
        )
        .await;
    assert_eq!(searched.body["entries"][0]["name"], "readme.md");
    let bad_query = env
        .call(
            TestRequest::get().uri("/api/v1/storage/buckets/files/files?limit=lots"),
            sk,
        )
        .await;
    assert_error(&bad_query, 400, "bad_request", "limit");

    let deleted = env.call(TestRequest::delete().uri(file), sk).await;
    assert_eq!(deleted.status, 204);
    let gone = env.call(TestRequest::get().uri(file), sk).await;
    assert_error(&gone, 404, "not_found", "object not found");
    let many = env
        .call(
            TestRequest::delete()
                .uri("/api/v1/storage/buckets/files/files")
                .set_json(json!({"paths": ["top.md", "never.md"]})),
            sk,
        )
        .await;
    assert_eq!(many.body["deleted"].as_array().unwrap().len(), 1);
    let emptied = env
        .call(
            TestRequest::post().uri("/api/v1/storage/buckets/files/empty"),
            sk,
        )
        .await;
    assert_eq!(emptied.body, json!({"deleted": 0}));
    let dropped = env
        .call(
            TestRequest::delete().uri("/api/v1/storage/buckets/files"),
            sk,
        )
        .await;
    assert_eq!(dropped.status, 204);

    // A user under the owner-folder policy, on Fluxbase's paths.
    env.bucket("private", json!({})).await;
    env.sql(&owner_policies("private")).await;
    let (uid, user) = env.user("u@example.com").await;
    let user = Some(user.as_str());
    let own = env
        .put(
            Method::POST,
            &format!("/api/v1/storage/buckets/private/files/{uid}/a.txt"),
            b"mine",
            "text/plain",
            user,
        )
        .await;
    assert_eq!(own.status, 201, "{}", own.body);
    assert_eq!(own.body["owner"], uid.as_str());
    let other = env
        .put(
            Method::POST,
            "/api/v1/storage/buckets/private/files/someone-else/a.txt",
            b"x",
            "text/plain",
            user,
        )
        .await;
    assert_error(&other, 403, "forbidden", "row-level security");
    let missing_bucket = env
        .call(TestRequest::get().uri("/api/v1/storage/buckets/nope"), sk)
        .await;
    assert_error(&missing_bucket, 404, "not_found", "bucket not found");
}
