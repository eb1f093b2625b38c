//! Service keys: create, use, list, revoke, rotate with grace, delete.

use super::*;

#[actix_web::test]
async fn service_keys_create_use_list_revoke_rotate_delete() {
    use actix_web::http::Method;
    let app = TestApp::new().await;
    let admin = token(json!({"role": "service_role"}));
    let base = "/api/v1/admin/service-keys";
    // An AdminOnly route whose handler answers 503 here (no realtime engine): reaching the
    // 503 proves the credential passed.
    let probe = "/api/v1/admin/realtime/restart";

    // Only admins manage keys.
    let got = app.call(post(base, json!({"name": "ci"}))).await;
    assert_error(&got, 401, "unauthorized", "admin authentication required");
    let user = app
        .call(post(
            "/api/v1/auth/signup",
            creds("user@example.com", "user password"),
        ))
        .await;
    let user_token = user.body["access_token"].as_str().unwrap().to_string();
    let got = app
        .call(bearer(post(base, json!({"name": "ci"})), &user_token))
        .await;
    assert_error(&got, 403, "forbidden", "admin role required");

    // Create: the key once, with its prefix.
    let created = app
        .call(bearer(post(base, json!({"name": "ci deploys"})), &admin))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk_") && key.len() == 46, "{key}");
    assert_eq!(created.body["prefix"], key[..11]);
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["name"], "ci deploys");
    assert!(created.body["last_used_at"].is_null());

    // Stored hashed: no column holds the key or its random part.
    let client = app.db().client().await;
    let row_text: String = client
        .query_one("SELECT row_to_json(k)::text FROM auth.service_keys k", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!row_text.contains(&key[11..]), "{row_text}");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    };
    assert!(row_text.contains(&sha), "stored as SHA-256: {row_text}");

    // The key acts as service_role in X-Service-Key, apikey and Bearer.
    for (header, value) in [
        ("X-Service-Key", key.clone()),
        ("apikey", key.clone()),
        ("Authorization", format!("Bearer {key}")),
    ] {
        let got = app
            .call(
                TestRequest::post()
                    .uri(probe)
                    .insert_header((header, value)),
            )
            .await;
        assert_error(&got, 503, "service_unavailable", "realtime is disabled");
    }
    let got = app
        .call(
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", "sk_not-a-real-key")),
        )
        .await;
    assert_error(
        &got,
        401,
        "unauthorized",
        "invalid, expired or revoked service key",
    );
    let got = app
        .call(
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", format!("{key}x"))),
        )
        .await;
    assert_error(
        &got,
        401,
        "unauthorized",
        "invalid, expired or revoked service key",
    );
    // A service key cannot mint or manage keys.
    let got = app
        .call(
            post(base, json!({"name": "escalate"})).insert_header(("X-Service-Key", key.as_str())),
        )
        .await;
    assert_error(
        &got,
        403,
        "forbidden",
        "service keys cannot manage service keys",
    );

    // Listed with its use, never with the key or hash.
    let listed = app.call(bearer(TestRequest::get().uri(base), &admin)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let entry = &listed.body[0];
    assert_eq!(entry["id"], id.as_str());
    assert!(entry["last_used_at"].is_string(), "{entry}");
    assert!(entry.get("key").is_none() && !listed.body.to_string().contains(&sha));
    for field in [
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_reason",
        "expires_at",
    ] {
        assert!(entry.get(field).is_some(), "{field}: {entry}");
    }

    // Revoke (the runbook's call, without a Content-Type): the key stops at once.
    let got = app
        .call(bearer(
            raw(
                Method::POST,
                &format!("{base}/{id}/revoke"),
                r#"{"reason": "Security incident - suspected compromise"}"#,
            ),
            &admin,
        ))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["status"], "revoked");
    assert_eq!(
        got.body["revoked_reason"],
        "Security incident - suspected compromise"
    );
    assert!(got.body["revoked_at"].is_string());
    let got = app
        .call(
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", key.as_str())),
        )
        .await;
    assert_error(
        &got,
        401,
        "unauthorized",
        "invalid, expired or revoked service key",
    );
    let got = app
        .call(bearer(
            TestRequest::post().uri(&format!("{base}/{id}/rotate")),
            &admin,
        ))
        .await;
    assert_error(&got, 409, "conflict", "revoked");

    // Rotate with the default grace (0s): the new key works, the old stops at once.
    let second = app
        .call(bearer(post(base, json!({"name": "worker"})), &admin))
        .await;
    let second_id = second.body["id"].as_str().unwrap().to_string();
    let old_key = second.body["key"].as_str().unwrap().to_string();
    let rotated = app
        .call(bearer(
            TestRequest::post().uri(&format!("{base}/{second_id}/rotate")),
            &admin,
        ))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_key = rotated.body["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(rotated.body["id"], second_id.as_str());
    assert!(rotated.body["rotated_at"].is_string());
    let got = app
        .call(
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", new_key.as_str())),
        )
        .await;
    assert_error(&got, 503, "service_unavailable", "realtime");
    let got = app
        .call(
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", old_key.as_str())),
        )
        .await;
    assert_error(
        &got,
        401,
        "unauthorized",
        "invalid, expired or revoked service key",
    );

    // Delete: gone, and the key with it.
    let got = app
        .call(bearer(
            TestRequest::delete().uri(&format!("{base}/{second_id}")),
            &admin,
        ))
        .await;
    assert_eq!(got.status, 204, "{}", got.body);
    let got = app
        .call(
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", new_key.as_str())),
        )
        .await;
    assert_error(
        &got,
        401,
        "unauthorized",
        "invalid, expired or revoked service key",
    );
    let got = app
        .call(bearer(
            TestRequest::delete().uri(&format!("{base}/{second_id}")),
            &admin,
        ))
        .await;
    assert_error(&got, 404, "not_found", "no service key");
    let got = app
        .call(bearer(
            TestRequest::get().uri(&format!("{base}/not-a-uuid")),
            &admin,
        ))
        .await;
    assert_error(&got, 404, "not_found", "no service key");

    // Bad input.
    for (body, status, code, needle) in [
        ("{}", 400, "bad_request", "missing field `name`"),
        (
            r#"{"name": 5}"#,
            400,
            "bad_request",
            "field `name`: invalid type: integer",
        ),
        (r#"{"name": "  "}"#, 422, "validation_failed", "`name`"),
        (
            r#"{"name": "x", "scopes": []}"#,
            400,
            "bad_request",
            "unknown field `scopes`",
        ),
        (
            r#"{"name": "x", "expires_at": "infinity"}"#,
            422,
            "validation_failed",
            "`expires_at`",
        ),
        (
            r#"{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}"#,
            422,
            "validation_failed",
            "must be in the future",
        ),
        (
            r#"{"name": "x", "expires_at": "2030-13-45T00:00:00Z"}"#,
            422,
            "validation_failed",
            "`expires_at`",
        ),
        (
            r#"{"name": "x'); DROP TABLE auth.service_keys; --"}"#,
            201,
            "",
            "",
        ),
    ] {
        let got = app
            .call(bearer(raw(Method::POST, base, body), &admin))
            .await;
        if status == 201 {
            assert_eq!(got.status, 201, "{}", got.body);
            assert_eq!(got.body["name"], "x'); DROP TABLE auth.service_keys; --");
        } else {
            assert_error(&got, status, code, needle);
        }
    }
    let expiring = app
        .call(bearer(
            post(
                base,
                json!({"name": "temp", "expires_at": "2099-01-01T00:00:00Z"}),
            ),
            &admin,
        ))
        .await;
    assert_eq!(expiring.status, 201, "{}", expiring.body);
    assert_eq!(expiring.body["expires_at"], "2099-01-01T00:00:00.000000Z");

    // The audit trail.
    let client = app.db().client().await;
    let actions: Vec<String> = client
        .query("SELECT action FROM auth.audit_log_entries WHERE action LIKE 'service_key_%' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for expected in [
        "service_key_created",
        "service_key_revoked",
        "service_key_rotated",
        "service_key_deleted",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
    let payloads: Vec<String> = client
        .query("SELECT payload::text FROM auth.audit_log_entries", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for p in &payloads {
        for secret in [&key, &old_key, &new_key] {
            assert!(!p.contains(&secret[11..]), "audit payload leaks a key: {p}");
        }
    }
}

#[actix_web::test]
async fn rotated_service_key_keeps_working_for_the_grace_period() {
    let app = TestApp::with(|c| {
        c.auth.service_key_rotation_grace = fluxbase_api::config::Dur::secs(3600);
    })
    .await;
    let admin = token(json!({"role": "service_role"}));
    let probe = "/api/v1/admin/realtime/restart";
    let created = app
        .call(bearer(
            post("/api/v1/admin/service-keys", json!({"name": "graceful"})),
            &admin,
        ))
        .await;
    let id = created.body["id"].as_str().unwrap();
    let old_key = created.body["key"].as_str().unwrap().to_string();
    let rotated = app
        .call(bearer(
            TestRequest::post().uri(&format!("/api/v1/admin/service-keys/{id}/rotate")),
            &admin,
        ))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert!(rotated.body["previous_key_expires_at"].is_string());
    let new_key = rotated.body["key"].as_str().unwrap().to_string();
    for key in [&old_key, &new_key] {
        let got = app
            .call(
                TestRequest::post()
                    .uri(probe)
                    .insert_header(("X-Service-Key", key.as_str())),
            )
            .await;
        assert_error(&got, 503, "service_unavailable", "realtime");
    }
    // Revoking ends the grace too.
    app.call(bearer(
        TestRequest::post().uri(&format!("/api/v1/admin/service-keys/{id}/revoke")),
        &admin,
    ))
    .await;
    for key in [&old_key, &new_key] {
        let got = app
            .call(
                TestRequest::post()
                    .uri(probe)
                    .insert_header(("X-Service-Key", key.as_str())),
            )
            .await;
        assert_error(&got, 401, "unauthorized", "revoked service key");
    }
}
