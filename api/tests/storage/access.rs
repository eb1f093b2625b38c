//! Who may do what over HTTP: the owner-folder policy (user A cannot read, list, overwrite,
//! move, sign or delete user B's file), public buckets without a token, signed URLs without
//! a session until they expire, and only for the object they were made for.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use super::env::{Backend, Env, anon_key, eventually, header, owner_policies, service_key};
use crate::storage_on_both_backends;

storage_on_both_backends!(owner_only_folders, public_bucket, signed_urls);

async fn owner_only_folders(backend: Backend) {
    let env = Env::new(backend).await;
    env.bucket("private", json!({})).await;
    env.sql(&owner_policies("private")).await;
    let (a_id, a) = env.user("a@example.com").await;
    let (b_id, b) = env.user("b@example.com").await;
    let (a, b) = (Some(a.as_str()), Some(b.as_str()));
    let b_file = format!("/storage/v1/object/private/{b_id}/secret.txt");

    let own = env
        .put(Method::POST, &b_file, b"b's", "text/plain", b)
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    let owner: Option<uuid::Uuid> = env
        .app
        .db()
        .client()
        .await
        .query_one("SELECT owner FROM storage.objects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner.unwrap().to_string(), b_id);

    // A cannot read it in any way…
    for uri in [
        b_file.clone(),
        format!("/storage/v1/object/authenticated/private/{b_id}/secret.txt"),
        format!("/storage/v1/object/info/private/{b_id}/secret.txt"),
    ] {
        let got = env.call(TestRequest::get().uri(&uri), a).await;
        assert_eq!(got.status, 404, "{uri}: {}", got.body);
        assert_eq!(got.body["code"], "NoSuchKey");
    }
    let head = env
        .call(TestRequest::default().method(Method::HEAD).uri(&b_file), a)
        .await;
    assert_eq!(head.status, 404);
    let listed = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/private")
                .set_json(json!({"prefix": b_id})),
            a,
        )
        .await;
    assert_eq!(listed.body, json!([]));
    let root = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/private")
                .set_json(json!({"prefix": ""})),
            a,
        )
        .await;
    assert_eq!(root.body, json!([]));
    let sign = env
        .call(
            TestRequest::post()
                .uri(&format!(
                    "/storage/v1/object/sign/private/{b_id}/secret.txt"
                ))
                .set_json(json!({"expiresIn": 60})),
            a,
        )
        .await;
    assert_eq!(sign.status, 404, "{}", sign.body);
    // …nor overwrite it, write into B's folder, move or delete it.
    let overwrite = env.put(Method::PUT, &b_file, b"a's", "text/plain", a).await;
    assert_eq!(overwrite.status, 403, "{}", overwrite.body);
    assert_eq!(overwrite.body["code"], "AccessDenied");
    let upsert = env
        .call(
            TestRequest::post()
                .uri(&b_file)
                .insert_header(("x-upsert", "true"))
                .set_payload("a's"),
            a,
        )
        .await;
    assert_eq!(upsert.status, 403, "{}", upsert.body);
    let plant = env
        .put(
            Method::POST,
            &format!("/storage/v1/object/private/{b_id}/planted.txt"),
            b"x",
            "text/plain",
            a,
        )
        .await;
    assert_eq!(plant.status, 403, "{}", plant.body);
    let moved = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/move")
                .set_json(json!({
                    "bucketId": "private", "sourceKey": format!("{b_id}/secret.txt"),
                    "destinationKey": format!("{a_id}/stolen.txt")
                })),
            a,
        )
        .await;
    assert_eq!(moved.status, 404, "{}", moved.body);
    let deleted = env.call(TestRequest::delete().uri(&b_file), a).await;
    assert_eq!(deleted.status, 404, "{}", deleted.body);
    let deleted_many = env
        .call(
            TestRequest::delete()
                .uri("/storage/v1/object/private")
                .set_json(json!({"prefixes": [format!("{b_id}/secret.txt")]})),
            a,
        )
        .await;
    assert_eq!(deleted_many.body, json!([]));
    // Anonymous callers are refused too.
    let anon = env
        .put(Method::POST, &b_file, b"x", "text/plain", None)
        .await;
    assert_eq!(anon.status, 403, "{}", anon.body);

    // B's file is untouched and B does everything with it.
    let got = env.call(TestRequest::get().uri(&b_file), b).await;
    assert_eq!(got.body, json!("b's"));
    let own_list = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/list/private")
                .set_json(json!({"prefix": b_id})),
            b,
        )
        .await;
    assert_eq!(own_list.body[0]["name"], "secret.txt");
    let a_own = env
        .put(
            Method::POST,
            &format!("/storage/v1/object/private/{a_id}/mine.txt"),
            b"a's",
            "text/plain",
            a,
        )
        .await;
    assert_eq!(a_own.status, 200, "{}", a_own.body);
    let gone = env.call(TestRequest::delete().uri(&b_file), b).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 1);
}

async fn public_bucket(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("pub", json!({"public": true})).await;
    env.bucket("priv", json!({"public": false})).await;
    for bucket in ["pub", "priv"] {
        let up = env
            .put(
                Method::POST,
                &format!("/storage/v1/object/{bucket}/logo.svg"),
                b"<svg/>",
                "image/svg+xml",
                sk,
            )
            .await;
        assert_eq!(up.status, 200, "{}", up.body);
    }
    // No token at all, or the anon key: a public bucket reads.
    for token in [None, Some(anon_key())] {
        let got = env
            .call(
                TestRequest::get().uri("/storage/v1/object/public/pub/logo.svg"),
                token.as_deref(),
            )
            .await;
        assert_eq!((got.status, &got.body), (200, &json!("<svg/>")));
        assert_eq!(header(&got, "content-type"), "image/svg+xml");
        // Served sandboxed: an uploaded SVG or HTML cannot run script on this origin.
        assert_eq!(
            header(&got, "content-security-policy"),
            "default-src 'none'; sandbox"
        );
        let info = env
            .call(
                TestRequest::get().uri("/storage/v1/object/info/public/pub/logo.svg"),
                token.as_deref(),
            )
            .await;
        assert_eq!(info.body["size"], 6);
        let head = env
            .call(
                TestRequest::default()
                    .method(Method::HEAD)
                    .uri("/storage/v1/object/public/pub/logo.svg"),
                token.as_deref(),
            )
            .await;
        assert_eq!(head.status, 200);
        assert_eq!(header(&head, "content-type"), "image/svg+xml");
    }
    // A private bucket's objects are not public, and the bucket's existence is not told.
    let private = env
        .call(
            TestRequest::get().uri("/storage/v1/object/public/priv/logo.svg"),
            None,
        )
        .await;
    assert_eq!(private.status, 404);
    assert_eq!(private.body["code"], "NoSuchBucket");
    // Public read is not public write, nor authenticated read without a policy.
    let write = env
        .put(
            Method::POST,
            "/storage/v1/object/pub/x.svg",
            b"x",
            "image/svg+xml",
            None,
        )
        .await;
    assert_eq!(write.status, 403, "{}", write.body);
    let auth_read = env
        .call(
            TestRequest::get().uri("/storage/v1/object/pub/logo.svg"),
            None,
        )
        .await;
    assert_eq!(auth_read.status, 404, "{}", auth_read.body);
    // Fluxbase's public path reads the same object.
    let v1 = env
        .call(
            TestRequest::get().uri("/api/v1/storage/public/pub/logo.svg"),
            None,
        )
        .await;
    assert_eq!((v1.status, &v1.body), (200, &json!("<svg/>")));
}

async fn signed_urls(backend: Backend) {
    let env = Env::new(backend).await;
    let key = service_key();
    let sk = Some(key.as_str());
    env.bucket("b", json!({})).await;
    for name in ["f.txt", "g.txt"] {
        let up = env
            .put(
                Method::POST,
                &format!("/storage/v1/object/b/dir/{name}"),
                name.as_bytes(),
                "text/plain",
                sk,
            )
            .await;
        assert_eq!(up.status, 200, "{}", up.body);
    }
    let signed = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/sign/b/dir/f.txt")
                .set_json(json!({"expiresIn": 600})),
            sk,
        )
        .await;
    let url = signed.body["signedURL"].as_str().unwrap().to_string();
    assert!(url.starts_with("/object/sign/b/dir/f.txt?token="), "{url}");
    // No credential needed; `download` adds an attachment name.
    let got = env
        .call(TestRequest::get().uri(&format!("/storage/v1{url}")), None)
        .await;
    assert_eq!((got.status, &got.body), (200, &json!("f.txt")));
    let named = env
        .call(
            TestRequest::get().uri(&format!("/storage/v1{url}&download=x.txt")),
            None,
        )
        .await;
    assert_eq!(
        header(&named, "content-disposition"),
        "attachment; filename=\"x.txt\"; filename*=UTF-8''x.txt"
    );
    // The token is bound to its object.
    let token = url.split("token=").nth(1).unwrap();
    let moved = env
        .call(
            TestRequest::get().uri(&format!(
                "/storage/v1/object/sign/b/dir/g.txt?token={token}"
            )),
            None,
        )
        .await;
    assert_eq!(moved.status, 401, "{}", moved.body);
    assert_eq!(moved.body["code"], "InvalidSignature");
    let forged = env
        .call(
            TestRequest::get().uri(&format!(
                "/storage/v1/object/sign/b/dir/f.txt?token={token}x"
            )),
            None,
        )
        .await;
    assert_eq!(forged.body["code"], "InvalidSignature");

    // Many at once: a name that cannot be signed gets an error, not a URL.
    let many = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/sign/b")
                .set_json(json!({"expiresIn": 60, "paths": ["dir/f.txt", "dir/none.txt"]})),
            sk,
        )
        .await;
    assert_eq!(many.status, 200, "{}", many.body);
    assert_eq!(many.body[0]["error"], Value::Null);
    assert!(
        many.body[0]["signedURL"]
            .as_str()
            .unwrap()
            .contains("token=")
    );
    assert_eq!(many.body[1]["path"], "dir/none.txt");
    assert_eq!(many.body[1]["signedURL"], Value::Null);
    assert!(
        many.body[1]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    // A URL of one second works, then expires.
    let short = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/sign/b/dir/g.txt")
                .set_json(json!({"expiresIn": 1})),
            sk,
        )
        .await;
    let short = format!("/storage/v1{}", short.body["signedURL"].as_str().unwrap());
    eventually("the one-second signed URL expires", || async {
        let got = env.call(TestRequest::get().uri(&short), None).await;
        match got.status {
            200 => false,
            401 => {
                assert_eq!(got.body["code"], "ExpiredToken", "{}", got.body);
                true
            }
            other => panic!("{other}: {}", got.body),
        }
    })
    .await;
    let too_long = env
        .call(
            TestRequest::post()
                .uri("/storage/v1/object/sign/b/dir/g.txt")
                .set_json(json!({"expiresIn": 30 * 24 * 3600})),
            sk,
        )
        .await;
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    assert!(
        too_long.body["message"]
            .as_str()
            .unwrap()
            .contains("expiresIn")
    );

    // Signed uploads: the URL works once without a session; a second upload to the same
    // name is refused (the signer did not ask for upsert); another name is refused.
    let sign_up = env
        .call(
            TestRequest::post().uri("/storage/v1/object/upload/sign/b/up/new.txt"),
            sk,
        )
        .await;
    assert_eq!(sign_up.status, 200, "{}", sign_up.body);
    let upload_url = format!("/storage/v1{}", sign_up.body["url"].as_str().unwrap());
    let upload_token = sign_up.body["token"].as_str().unwrap().to_string();
    assert!(upload_url.ends_with(&upload_token));
    let put = env
        .put(Method::PUT, &upload_url, b"via url", "text/plain", None)
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["Key"], "b/up/new.txt");
    let again = env
        .put(Method::PUT, &upload_url, b"again", "text/plain", None)
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let elsewhere = env
        .put(
            Method::PUT,
            &format!("/storage/v1/object/upload/sign/b/up/other.txt?token={upload_token}"),
            b"x",
            "text/plain",
            None,
        )
        .await;
    assert_eq!(
        elsewhere.body["code"], "InvalidSignature",
        "{}",
        elsewhere.body
    );
    let got = env
        .call(
            TestRequest::get().uri("/storage/v1/object/b/up/new.txt"),
            sk,
        )
        .await;
    assert_eq!(got.body, json!("via url"));

    // Fluxbase's signed URL shape.
    let v1 = env
        .call(
            TestRequest::post()
                .uri("/api/v1/storage/buckets/b/sign/dir/f.txt")
                .set_json(json!({"expires_in": 60})),
            sk,
        )
        .await;
    assert_eq!(v1.status, 200, "{}", v1.body);
    let v1_url = v1.body["url"].as_str().unwrap();
    assert!(
        v1_url.starts_with("/api/v1/storage/signed/b/dir/f.txt?token="),
        "{v1_url}"
    );
    assert!(v1.body["expires_at"].is_string());
    let got = env.call(TestRequest::get().uri(v1_url), None).await;
    assert_eq!((got.status, &got.body), (200, &json!("f.txt")));
    let wrong = env
        .call(
            TestRequest::get().uri("/api/v1/storage/signed/b/dir/f.txt?token=x.y"),
            None,
        )
        .await;
    crate::support::assert_error(&wrong, 401, "invalid_token", "invalid signature");
}
