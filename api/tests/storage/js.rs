//! The real `@supabase/storage-js` (supabase-js 2.119.1 under Node 22) against the running
//! binary, on both backends: `api/tests/js/storage.mjs` asserts every call's result and
//! error; here the server side is prepared (two signed-up users, the owner-folder policy)
//! and the script's summary checked.

use serde_json::json;

use super::env::{Backend, anon_key, binary, owner_policies, service_key};
use crate::storage_on_both_backends;
use crate::support::http::request;
use crate::support::js;

storage_on_both_backends!(storage_js_works_unchanged);

/// Signs a user up through the binary → (id, access token).
async fn sign_up(addr: &str, email: &str) -> (String, String) {
    let res = request(
        addr,
        "POST",
        "/api/v1/auth/signup",
        &[("Content-Type", "application/json")],
        &json!({"email": email, "password": "a-long-password-1"}).to_string(),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = res.json();
    (
        body["user"]["id"].as_str().unwrap().to_string(),
        body["access_token"].as_str().unwrap().to_string(),
    )
}

async fn storage_js_works_unchanged(backend: Backend) {
    let (server, _dir, db, root) = binary(backend, &[]).await;
    db.client()
        .await
        .batch_execute(&owner_policies("files"))
        .await
        .unwrap();
    let (uid, user_token) = sign_up(&server.addr, "js-user@example.com").await;
    let (other_id, other_token) = sign_up(&server.addr, "js-other@example.com").await;
    let url = format!("http://{}", server.addr);
    let (anon, service) = (anon_key(), service_key());
    let got = js::run(
        "storage.mjs",
        &[
            ("FLUXBASE_URL", &url),
            ("ANON_KEY", &anon),
            ("SERVICE_KEY", &service),
            ("USER_TOKEN", &user_token),
            ("USER_ID", &uid),
            ("OTHER_TOKEN", &other_token),
            ("OTHER_ID", &other_id),
        ],
    )
    .await;
    assert_eq!(got["buckets"], json!(["files", "public-assets"]), "{got}");
    assert_eq!(got["uploaded"], format!("files/{uid}/hello.txt"), "{got}");
    assert_eq!(
        got["errors"],
        json!({"duplicate": "409", "big": "413", "pdf": "415"}),
        "{got}"
    );
    // What the script left: the other user's file and the public one, nothing else.
    let left: Vec<(String, String)> = db
        .client()
        .await
        .query(
            "SELECT bucket_id, name FROM storage.objects ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        left,
        [("public-assets".to_string(), "logo.txt".to_string()),],
        "the other user's file went with the emptied bucket"
    );
    super::env::eventually("only the remaining object has bytes", || async {
        root.object_files().len() == 1
    })
    .await;
}
