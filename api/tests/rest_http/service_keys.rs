//! The operational runbook's "Service Key Compromise" procedure, end to end over HTTP with
//! the runbook's own calls: a service key reads a table through REST; the compromised key
//! is revoked (`POST /api/v1/admin/service-keys/{id}/revoke` with the runbook's body) and
//! is refused from the next request on; the active keys are listed and each rotated
//! (`…/rotate`): every successor reads through REST, every predecessor is refused.

use serde_json::{Value, json};

use super::*;

/// Creates a service key as `admin`: (id, key).
async fn create_key(api: &Api, admin: &str, name: &str) -> (String, String) {
    let got = api
        .json(
            "POST",
            "/api/v1/admin/service-keys",
            &[("Authorization", admin)],
            json!({"name": name}),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    let body = got.json();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

/// What `key` reads from `todos` through both mounts (the same on both), or the status.
async fn read_with(api: &Api, key: &str) -> Result<Vec<String>, u16> {
    let mut seen: Option<Result<Vec<String>, u16>> = None;
    for path in [
        "/api/v1/tables/public/todos?select=title&order=title",
        "/rest/v1/todos?select=title&order=title",
    ] {
        let got = api.get(path, &[("X-Service-Key", key)]).await;
        let result = if got.status == 200 {
            Ok(got
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["title"].as_str().unwrap().to_owned())
                .collect())
        } else {
            Err(got.status)
        };
        if let Some(before) = &seen {
            assert_eq!(before, &result, "both mounts agree for {path}");
        }
        seen = Some(result);
    }
    seen.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbooks_service_key_procedure_end_to_end() {
    let api = Api::start(&[]).await;
    let alice = api.sign_up("alice@example.com").await;
    let bob = api.sign_up("bob@example.com").await;
    for (user, title) in [(&alice, "alice's"), (&bob, "bob's")] {
        let got = api
            .json(
                "POST",
                "/rest/v1/todos",
                &[("Authorization", &user.bearer())],
                json!({"title": title}),
            )
            .await;
        assert_eq!(got.status, 201, "{}", got.body);
    }
    let admin = format!("Bearer {}", service_token());
    let (compromised_id, compromised) = create_key(&api, &admin, "ci deploys").await;
    let (other_id, other) = create_key(&api, &admin, "backups").await;
    let everything = vec!["alice's".to_owned(), "bob's".to_owned()];

    // A service key reads every row through REST (it acts as service_role).
    assert_eq!(read_with(&api, &compromised).await, Ok(everything.clone()));
    assert_eq!(read_with(&api, &other).await, Ok(everything.clone()));
    // …and writes.
    let got = api
        .json(
            "POST",
            "/rest/v1/directors",
            &[("X-Service-Key", &compromised)],
            json!({"id": 10, "name": "by key"}),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);

    // 1. Revoke the compromised key, as the runbook's curl does it (`-d` without a
    //    Content-Type).
    let got = api
        .req(
            "POST",
            &format!("/api/v1/admin/service-keys/{compromised_id}/revoke"),
            &[("Authorization", &admin)],
            r#"{"reason": "Security incident - suspected compromise"}"#,
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(read_with(&api, &compromised).await, Err(401));
    let got = api
        .get("/rest/v1/todos", &[("X-Service-Key", &compromised)])
        .await;
    assert_postgrest_error(&got, 401, "PGRST301", "revoked service key");
    let got = api
        .get("/api/v1/tables/todos", &[("X-Service-Key", &compromised)])
        .await;
    assert_fluxbase_error(&got, 401, "unauthorized", "revoked service key");
    // Not as a bearer or apikey either.
    for header in ["apikey", "Authorization"] {
        let value = if header == "Authorization" {
            format!("Bearer {compromised}")
        } else {
            compromised.clone()
        };
        let got = api.get("/rest/v1/todos", &[(header, &value)]).await;
        assert_eq!(got.status, 401, "{header}: {}", got.body);
    }
    assert_eq!(read_with(&api, &other).await, Ok(everything.clone()));

    // 3. List all active keys and rotate each: the successors work, the old keys stop
    //    (auth.service_key_rotation_grace is 0 by default).
    let listed = api
        .get("/api/v1/admin/service-keys", &[("Authorization", &admin)])
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let active: Vec<Value> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["status"] == "active")
        .cloned()
        .collect();
    assert_eq!(active.len(), 1, "{}", listed.body);
    assert_eq!(active[0]["id"], other_id.as_str());
    let got = api
        .req(
            "POST",
            &format!("/api/v1/admin/service-keys/{other_id}/rotate"),
            &[("Authorization", &admin)],
            "",
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let successor = got.json()["key"].as_str().unwrap().to_owned();
    assert_ne!(successor, other);
    assert_eq!(read_with(&api, &successor).await, Ok(everything));
    assert_eq!(read_with(&api, &other).await, Err(401));
    assert_eq!(read_with(&api, &compromised).await, Err(401));
}
