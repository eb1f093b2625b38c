//! `/storage/v1` in storage-api's shapes: buckets, objects (raw and form uploads, upsert,
//! download with ranges and validators, info, list, move, copy, delete), and errors as
//! storage-js parses them.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::env::{Backend, Env, header, service_key};
use crate::storage_on_both_backends;
use crate::support::token;

storage_on_both_backends!(
    buckets,
    objects_round_trip,
    downloads_with_ranges_and_validators,
    form_uploads_and_metadata,
    errors_in_storage_api_shape
);

/// An error answer: the status, storage-api's code, a message mentioning `needle`, and
/// exactly `{statusCode, code, error, message}`.
#[track_caller]
fn assert_api_error(got: &crate::support::Reply, status: u16, code: &str, needle: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    let body = got
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{}", got.body));
    assert_eq!(body.len(), 4, "{}", got.body);
    assert_eq!(body["statusCode"], status.to_string(), "{}", got.body);
    assert_eq!(body["code"], code, "{}", got.body);
    assert_eq!(body["error"], code, "{}", got.body);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

async fn buckets(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    let created = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/bucket")
                .set_json(json!({
                    "id": "docs", "name": "docs", "public": false,
                    "file_size_limit": "1.5MB", "allowed_mime_types": ["text/*", "image/png"]
                })),
            sk,
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body, json!({"name": "docs"}));

    let got = env
        .call(TestRequest::get().uri("/storage/v1/bucket/docs"), sk)
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["id"], "docs");
    assert_eq!(got.body["public"], false);
    assert_eq!(got.body["file_size_limit"], 1_500_000);
    assert_eq!(
        got.body["allowed_mime_types"],
        json!(["text/*", "image/png"])
    );
    assert_eq!(got.body["type"], "STANDARD");
    for field in ["owner", "created_at", "updated_at"] {
        assert!(
            got.body.get(field).is_some(),
            "{field} missing: {}",
            got.body
        );
    }

    env.bucket("assets", json!({"public": true})).await;
    let listed = env
        .call(TestRequest::get().uri("/storage/v1/bucket"), sk)
        .await;
    let names: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["assets", "docs"]);
    let searched = env
        .call(
            TestRequest::get().uri("/storage/v1/bucket?search=DO&limit=5&sortOrder=desc"),
            sk,
        )
        .await;
    assert_eq!(
        searched.body.as_array().unwrap().len(),
        1,
        "{}",
        searched.body
    );

    // Update: public on, the size limit removed (null), the type list left alone (absent).
    let updated = env
        .call(
            TestRequest::put().uri("/storage/v1/bucket/docs").set_json(
                json!({"id": "docs", "name": "docs", "public": true, "file_size_limit": null}),
            ),
            sk,
        )
        .await;
    assert_eq!(updated.body, json!({"message": "Successfully updated"}));
    let got = env
        .call(TestRequest::get().uri("/storage/v1/bucket/docs"), sk)
        .await;
    assert_eq!(got.body["public"], true);
    assert_eq!(got.body["file_size_limit"], Value::Null);
    assert_eq!(
        got.body["allowed_mime_types"],
        json!(["text/*", "image/png"])
    );

    // A bucket with an object cannot be deleted; emptied, it can.
    let up = env
        .put(
            Method::POST,
            "/storage/v1/object/docs/a.txt",
            b"a",
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let refused = env
        .call(TestRequest::delete().uri("/storage/v1/bucket/docs"), sk)
        .await;
    assert_api_error(&refused, 409, "ResourceNotEmpty", "not empty");
    let emptied = env
        .call(TestRequest::post().uri("/storage/v1/bucket/docs/empty"), sk)
        .await;
    assert_eq!(emptied.body, json!({"message": "Successfully emptied"}));
    let deleted = env
        .call(TestRequest::delete().uri("/storage/v1/bucket/docs"), sk)
        .await;
    assert_eq!(deleted.body, json!({"message": "Successfully deleted"}));
    let gone = env
        .call(TestRequest::get().uri("/storage/v1/bucket/docs"), sk)
        .await;
    assert_api_error(&gone, 404, "NoSuchBucket", "bucket not found");
    assert!(env.root.object_files().is_empty(), "{:?}", env.root.files());

    let twice = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/bucket")
                .set_json(json!({"id": "assets", "name": "assets"})),
            sk,
        )
        .await;
    assert_api_error(&twice, 409, "BucketAlreadyExists", "already exists");
    let bad = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/bucket")
                .set_json(json!({"name": "no spaces"})),
            sk,
        )
        .await;
    assert_api_error(&bad, 400, "InvalidBucketName", "bucket id");
    let bad_limit = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/bucket")
                .set_json(json!({"name": "x", "file_size_limit": "10 parsecs"})),
            sk,
        )
        .await;
    assert_api_error(&bad_limit, 400, "InvalidRequest", "file_size_limit");
    // Without policies on storage.buckets, only the service role manages buckets.
    let anon = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/bucket")
                .set_json(json!({"name": "mine"})),
            None,
        )
        .await;
    assert_api_error(&anon, 403, "AccessDenied", "row-level security");
}

async fn objects_round_trip(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("b", json!({})).await;

    let first = env
        .put(
            Method::POST,
            "/storage/v1/object/b/dir/a%20b.txt",
            b"one",
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["Key"], "b/dir/a b.txt");
    assert!(uuid::Uuid::parse_str(first.body["Id"].as_str().unwrap()).is_ok());
    let again = env
        .put(
            Method::POST,
            "/storage/v1/object/b/dir/a%20b.txt",
            b"two",
            "text/plain",
            sk,
        )
        .await;
    assert_api_error(&again, 409, "KeyAlreadyExists", "already exists");
    let upsert = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/b/dir/a%20b.txt")
                .insert_header(("x-upsert", "true"))
                .insert_header(("content-type", "text/plain"))
                .set_payload("two"),
            sk,
        )
        .await;
    assert_eq!(upsert.status, 200, "{}", upsert.body);
    let update = env
        .put(
            Method::PUT,
            "/storage/v1/object/b/dir/a%20b.txt",
            b"three",
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(update.status, 200, "{}", update.body);
    let got = env
        .call(
            TestRequest::get().uri("/storage/v1/object/b/dir/a%20b.txt"),
            sk,
        )
        .await;
    assert_eq!(got.body, json!("three"));
    assert_eq!(header(&got, "content-type"), "text/plain");
    // The authenticated path serves the same.
    let auth = env
        .call(
            TestRequest::get().uri("/storage/v1/object/authenticated/b/dir/a%20b.txt"),
            sk,
        )
        .await;
    assert_eq!(auth.body, json!("three"));

    // A 0-byte object.
    let empty = env
        .put(
            Method::POST,
            "/storage/v1/object/b/empty",
            b"",
            "application/octet-stream",
            sk,
        )
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    let got = env
        .call(TestRequest::get().uri("/storage/v1/object/b/empty"), sk)
        .await;
    assert_eq!((got.status, &got.body), (200, &Value::Null));

    let info = env
        .call(
            TestRequest::get().uri("/storage/v1/object/info/b/dir/a%20b.txt"),
            sk,
        )
        .await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["name"], "dir/a b.txt");
    assert_eq!(info.body["bucket_id"], "b");
    assert_eq!(info.body["size"], 5);
    assert_eq!(info.body["content_type"], "text/plain");
    assert_eq!(
        info.body["sha256"],
        hex::encode(Sha256::digest(b"three")).as_str()
    );

    // Listing: one folder level; folders carry nulls.
    let root = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/b")
                .set_json(json!({"prefix": "", "limit": 100, "offset": 0,
                                 "sortBy": {"column": "name", "order": "asc"}})),
            sk,
        )
        .await;
    let root = root.body.as_array().unwrap().clone();
    assert_eq!(root.len(), 2, "{root:?}");
    assert_eq!(root[0]["name"], "dir");
    assert_eq!(root[0]["id"], Value::Null);
    assert_eq!(root[0]["metadata"], Value::Null);
    assert_eq!(root[1]["name"], "empty");
    assert_eq!(root[1]["metadata"]["size"], 0);
    let dir = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/b")
                .set_json(json!({"prefix": "dir"})),
            sk,
        )
        .await;
    assert_eq!(dir.body[0]["name"], "a b.txt");
    assert_eq!(dir.body[0]["metadata"]["mimetype"], "text/plain");
    assert_eq!(dir.body[0]["metadata"]["size"], 5);

    // Move within the bucket, copy across buckets.
    env.bucket("other", json!({})).await;
    let moved = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/move")
                .set_json(json!({
                    "bucketId": "b", "sourceKey": "dir/a b.txt", "destinationKey": "moved.txt"
                })),
            sk,
        )
        .await;
    assert_eq!(moved.body, json!({"message": "Successfully moved"}));
    let old = env
        .call(
            TestRequest::get().uri("/storage/v1/object/b/dir/a%20b.txt"),
            sk,
        )
        .await;
    assert_api_error(&old, 404, "NoSuchKey", "object not found");
    let copied = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/copy")
                .set_json(json!({
                    "bucketId": "b", "sourceKey": "moved.txt",
                    "destinationKey": "copy.txt", "destinationBucket": "other"
                })),
            sk,
        )
        .await;
    assert_eq!(copied.status, 200, "{}", copied.body);
    assert_eq!(copied.body["Key"], "other/copy.txt");
    let got = env
        .call(
            TestRequest::get().uri("/storage/v1/object/other/copy.txt"),
            sk,
        )
        .await;
    assert_eq!(got.body, json!("three"));

    // Delete one, then many (names that are not there are left out).
    let one = env
        .call(
            TestRequest::delete().uri("/storage/v1/object/other/copy.txt"),
            sk,
        )
        .await;
    assert_eq!(one.body, json!({"message": "Successfully deleted"}));
    let again = env
        .call(
            TestRequest::delete().uri("/storage/v1/object/other/copy.txt"),
            sk,
        )
        .await;
    assert_api_error(&again, 404, "NoSuchKey", "object not found");
    let many = env
        .call(
            TestRequest::delete()
                .uri("/storage/v1/object/b")
                .set_json(json!({"prefixes": ["moved.txt", {"path": "empty"}, "never"]})),
            sk,
        )
        .await;
    let mut names: Vec<&str> = many
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["empty", "moved.txt"]);
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 0);
    super::env::eventually("the bytes of deleted objects are gone", || async {
        env.root.object_files().is_empty()
    })
    .await;
}

async fn downloads_with_ranges_and_validators(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("b", json!({})).await;
    let bytes = b"abcdefghij";
    let up = env
        .put(
            Method::POST,
            "/storage/v1/object/b/d/file.txt",
            bytes,
            "text/plain",
            sk,
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let uri = "/storage/v1/object/b/d/file.txt";

    let full = env.call(TestRequest::get().uri(uri), sk).await;
    assert_eq!(full.status, 200);
    assert_eq!(header(&full, "accept-ranges"), "bytes");
    // (Content-Length is written by the HTTP encoder: checked over a socket in `transfers`.)
    let etag = header(&full, "etag").to_string();
    assert_eq!(etag, format!("\"{}\"", hex::encode(Sha256::digest(bytes))));
    let digest = base64_sha(bytes);
    assert_eq!(
        header(&full, "repr-digest"),
        format!("sha-256=:{digest}:").as_str()
    );
    assert_eq!(
        header(&full, "content-security-policy"),
        "default-src 'none'; sandbox"
    );
    let last_modified = header(&full, "last-modified").to_string();

    let ranged = |range: &'static str| TestRequest::get().uri(uri).insert_header(("range", range));
    let part = env.call(ranged("bytes=2-4"), sk).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, json!("cde"));
    assert_eq!(header(&part, "content-range"), "bytes 2-4/10");
    let suffix = env.call(ranged("bytes=-3"), sk).await;
    assert_eq!((suffix.status, &suffix.body), (206, &json!("hij")));
    let open = env.call(ranged("bytes=7-"), sk).await;
    assert_eq!((open.status, &open.body), (206, &json!("hij")));
    let beyond = env.call(ranged("bytes=10-20"), sk).await;
    assert_api_error(&beyond, 416, "InvalidRange", "not satisfiable");
    assert_eq!(header(&beyond, "content-range"), "bytes */10");
    let multi = env.call(ranged("bytes=0-1,3-4"), sk).await;
    assert_eq!(multi.status, 200, "a multi-range is served whole");

    let cached = env
        .call(
            TestRequest::get()
                .uri(uri)
                .insert_header(("if-none-match", etag.as_str())),
            sk,
        )
        .await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.body, Value::Null);
    assert_eq!(header(&cached, "etag"), etag.as_str());
    let stale = env
        .call(
            TestRequest::get()
                .uri(uri)
                .insert_header(("if-none-match", "\"other\"")),
            sk,
        )
        .await;
    assert_eq!(stale.status, 200);
    let since = env
        .call(
            TestRequest::get()
                .uri(uri)
                .insert_header(("if-modified-since", last_modified.as_str())),
            sk,
        )
        .await;
    assert_eq!(since.status, 304);
    let head = env
        .call(TestRequest::default().method(Method::HEAD).uri(uri), sk)
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(header(&head, "etag"), etag.as_str());
    assert_eq!(head.body, Value::Null);

    let attachment = env
        .call(
            TestRequest::get().uri(&format!("{uri}?download=r%C3%A9sum%C3%A9.txt")),
            sk,
        )
        .await;
    assert_eq!(
        header(&attachment, "content-disposition"),
        "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    );
    let own_name = env
        .call(TestRequest::get().uri(&format!("{uri}?download")), sk)
        .await;
    assert_eq!(
        header(&own_name, "content-disposition"),
        "attachment; filename=\"file.txt\"; filename*=UTF-8''file.txt"
    );
    let verified = env
        .call(TestRequest::get().uri(&format!("{uri}?verify=true")), sk)
        .await;
    assert_eq!(
        (verified.status, &verified.body),
        (200, &json!("abcdefghij"))
    );
}

fn base64_sha(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

async fn form_uploads_and_metadata(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("b", json!({"allowed_mime_types": ["image/*"]}))
        .await;
    // What storage-js sends for a Blob: text fields, then the file part.
    let boundary = "----fluxbase-test-boundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"cacheControl\"\r\n\r\n3600\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"owner\":\"me\"}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"\"; filename=\"blob\"\r\n\
         Content-Type: image/png\r\n\r\n\u{1}PNGDATA\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let up = env
        .put(
            Method::POST,
            "/storage/v1/object/b/pic.png",
            form.as_bytes(),
            &content_type,
            sk,
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let info = env
        .call(
            TestRequest::get().uri("/storage/v1/object/info/b/pic.png"),
            sk,
        )
        .await;
    assert_eq!(info.body["content_type"], "image/png");
    assert_eq!(info.body["cache_control"], "max-age=3600");
    assert_eq!(info.body["metadata"], json!({"owner": "me"}));
    assert_eq!(info.body["size"], 8);
    let got = env
        .call(TestRequest::get().uri("/storage/v1/object/b/pic.png"), sk)
        .await;
    assert_eq!(header(&got, "cache-control"), "max-age=3600");
    assert_eq!(got.body, json!("\u{1}PNGDATA"));

    // The part's type is checked against the bucket's list.
    let text_form = form.replace("image/png", "text/html");
    let refused = env
        .put(
            Method::POST,
            "/storage/v1/object/b/page.html",
            text_form.as_bytes(),
            &content_type,
            sk,
        )
        .await;
    assert_api_error(&refused, 415, "InvalidMimeType", "text/html");
    // A form without a file part, and a raw upload with x-metadata.
    let no_file = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"cacheControl\"\r\n\r\n1\r\n--{boundary}--\r\n"
    );
    let refused = env
        .put(
            Method::POST,
            "/storage/v1/object/b/x.png",
            no_file.as_bytes(),
            &content_type,
            sk,
        )
        .await;
    assert_api_error(&refused, 400, "InvalidRequest", "no file part");
    let raw = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/b/raw.png")
                .insert_header(("content-type", "image/png"))
                .insert_header(("x-metadata", "eyJrIjoidiJ9"))
                .insert_header(("cache-control", "max-age=60"))
                .set_payload("raw"),
            sk,
        )
        .await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    let info = env
        .call(
            TestRequest::get().uri("/storage/v1/object/info/b/raw.png"),
            sk,
        )
        .await;
    assert_eq!(info.body["metadata"], json!({"k": "v"}));
    assert_eq!(info.body["cache_control"], "max-age=60");
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 2);
}

async fn errors_in_storage_api_shape(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("b", json!({})).await;
    let missing = env
        .call(
            TestRequest::get().uri("/storage/v1/object/b/nothing.txt"),
            sk,
        )
        .await;
    assert_eq!(
        missing.body,
        json!({"statusCode": "404", "code": "NoSuchKey", "error": "NoSuchKey",
               "message": "object not found"})
    );
    let info = env
        .call(
            TestRequest::get().uri("/storage/v1/object/info/b/nothing.txt"),
            sk,
        )
        .await;
    assert_api_error(&info, 404, "NoSuchKey", "object not found");
    let no_bucket = env
        .put(
            Method::POST,
            "/storage/v1/object/nope/x",
            b"x",
            "text/plain",
            sk,
        )
        .await;
    assert_api_error(&no_bucket, 404, "NoSuchBucket", "bucket not found");

    let bad_jwt = env
        .call(
            TestRequest::get().uri("/storage/v1/bucket"),
            Some("not.a.jwt"),
        )
        .await;
    assert_api_error(&bad_jwt, 401, "InvalidJWT", "");
    let expired = token(json!({"role": "authenticated", "sub": uuid::Uuid::new_v4(), "exp": 1}));
    let expired = env
        .call(TestRequest::get().uri("/storage/v1/bucket"), Some(&expired))
        .await;
    assert_api_error(&expired, 401, "InvalidJWT", "expired");

    let route = env
        .call(TestRequest::get().uri("/storage/v1/nowhere"), sk)
        .await;
    assert_api_error(
        &route,
        404,
        "NotFound",
        "no route for GET /storage/v1/nowhere",
    );
    let method = env
        .call(TestRequest::patch().uri("/storage/v1/object/b/x.txt"), sk)
        .await;
    assert_api_error(&method, 405, "InvalidRequest", "PATCH is not allowed");
    let transform = env
        .call(
            TestRequest::get().uri("/storage/v1/render/image/public/b/x.png?width=10"),
            sk,
        )
        .await;
    assert_api_error(&transform, 501, "NotSupported", "image transformation");
    let up = env
        .put(
            Method::POST,
            "/storage/v1/object/b/x.png",
            b"x",
            "image/png",
            sk,
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let sign_transform = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/sign/b/x.png")
                .set_json(json!({"expiresIn": 60, "transform": {"width": 10}})),
            sk,
        )
        .await;
    assert_api_error(&sign_transform, 501, "NotSupported", "image transformation");
    let bad_json = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/b")
                .set_payload("{not json"),
            sk,
        )
        .await;
    assert_api_error(&bad_json, 400, "InvalidRequest", "JSON");
    let bad_sort = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/b")
                .set_json(json!({"prefix": "", "sortBy": {"column": "size; drop"}})),
            sk,
        )
        .await;
    assert_api_error(&bad_sort, 400, "InvalidRequest", "sortBy.column");
    let bad_flag = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/b/y.txt")
                .insert_header(("x-upsert", "perhaps"))
                .set_payload("y"),
            sk,
        )
        .await;
    assert_api_error(&bad_flag, 400, "InvalidRequest", "x-upsert");
}
