//! Sign-up to sign-out, refresh rotation, the runbook's SQL procedures, token lifetimes.

use super::*;

#[actix_web::test]
async fn signup_signin_user_refresh_rotation_and_signout() {
    let app = TestApp::new().await;

    // Signup: a session at once, the email lower-cased, metadata kept, no hash anywhere.
    let signup = app.call(post(
            "/api/v1/auth/signup",
            json!({"email": " Ada@Example.COM ", "password": "correct horse", "data": {"name": "Ada"}}),
        ),
    )
    .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    let s = &signup.body;
    assert_eq!(s["token_type"], "bearer");
    assert_eq!(s["expires_in"], 3600);
    assert_eq!(s["refresh_token"].as_str().unwrap().len(), 43);
    let user = &s["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["user_metadata"], json!({"name": "Ada"}));
    assert_eq!(user["app_metadata"]["provider"], "email");
    for field in ["id", "created_at", "updated_at", "last_sign_in_at"] {
        assert!(user[field].is_string(), "{field}: {user}");
    }
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let text = s.to_string();
    assert!(
        !text.contains("encrypted_password") && !text.contains("argon2"),
        "{text}"
    );
    let user_id: Uuid = user["id"].as_str().unwrap().parse().unwrap();

    // The access token's claims.
    let claims = keys().verify(s["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["user_metadata"], json!({"name": "Ada"}));
    assert_eq!(claims["app_metadata"]["provider"], "email");
    assert!(
        claims["session_id"]
            .as_str()
            .unwrap()
            .parse::<Uuid>()
            .is_ok()
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    // The same email in another case is taken.
    let again = app
        .call(post(
            "/api/v1/auth/signup",
            creds("ADA@example.com", "another password"),
        ))
        .await;
    assert_error(&again, 409, "user_already_exists", "`email`");

    // Wrong password and unknown email: one answer.
    let wrong = app
        .call(post(
            "/api/v1/auth/signin",
            creds("ada@example.com", "wrong password"),
        ))
        .await;
    let unknown = app
        .call(post(
            "/api/v1/auth/signin",
            creds("nobody@example.com", "wrong password"),
        ))
        .await;
    assert_error(
        &wrong,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    assert_eq!(wrong, unknown);

    // Signin (any case), then the user.
    let signin = app
        .call(post(
            "/api/v1/auth/signin",
            creds("ADA@example.com", "correct horse"),
        ))
        .await;
    assert_eq!(signin.status, 200, "{}", signin.body);
    assert_eq!(signin.body["user"]["id"], user["id"]);
    let access = signin.body["access_token"].as_str().unwrap().to_string();
    let me = app
        .call(bearer(TestRequest::get().uri("/api/v1/auth/user"), &access))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["email"], "ada@example.com");
    assert!(!me.body.to_string().contains("encrypted_password"));

    // PATCH: metadata merges, email changes (and is lower-cased).
    let patched = app
        .call(bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"data":{"theme":"dark"}}"#,
            ),
            &access,
        ))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        patched.body["user_metadata"],
        json!({"name": "Ada", "theme": "dark"})
    );
    let patched = app
        .call(bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"email":"Ada.Lovelace@example.com"}"#,
            ),
            &access,
        ))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["email"], "ada.lovelace@example.com");

    // Another user cannot take that email by PATCH.
    let bob = app
        .call(post(
            "/api/v1/auth/signup",
            creds("bob@example.com", "bob's password"),
        ))
        .await;
    let bob_access = bob.body["access_token"].as_str().unwrap().to_string();
    let taken = app
        .call(bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"email":"ADA.LOVELACE@example.com"}"#,
            ),
            &bob_access,
        ))
        .await;
    assert_error(&taken, 409, "user_already_exists", "`email`");

    // A new password: the old one stops, the new one signs in, other sessions end.
    let signup_refresh = s["refresh_token"].as_str().unwrap().to_string();
    let patched = app
        .call(bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"password":"new battery staple"}"#,
            ),
            &access,
        ))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let old = app
        .call(post(
            "/api/v1/auth/signin",
            creds("ada.lovelace@example.com", "correct horse"),
        ))
        .await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    let other = app
        .call(post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": signup_refresh}),
        ))
        .await;
    assert_error(&other, 401, "invalid_refresh_token", "not found");
    let fresh = app
        .call(post(
            "/api/v1/auth/signin",
            creds("ada.lovelace@example.com", "new battery staple"),
        ))
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);

    // Refresh rotates: R1 → R2; R1 again is a replay that revokes the family, so R2 fails.
    let r1 = fresh.body["refresh_token"].as_str().unwrap().to_string();
    let fresh_access = fresh.body["access_token"].as_str().unwrap().to_string();
    let rotated = app
        .call(post("/api/v1/auth/refresh", json!({"refresh_token": r1})))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let r2 = rotated.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(rotated.body["user"]["email"], "ada.lovelace@example.com");
    let rotated_claims = keys()
        .verify(rotated.body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        rotated_claims["session_id"],
        keys().verify(&fresh_access).unwrap()["session_id"]
    );
    let replay = app
        .call(post("/api/v1/auth/refresh", json!({"refresh_token": r1})))
        .await;
    assert_error(&replay, 401, "invalid_refresh_token", "already used");
    let after = app
        .call(post("/api/v1/auth/refresh", json!({"refresh_token": r2})))
        .await;
    assert_error(&after, 401, "invalid_refresh_token", "not found or revoked");
    // The revoked session's access token no longer reads the user.
    let gone = app
        .call(bearer(
            TestRequest::get().uri("/api/v1/auth/user"),
            &fresh_access,
        ))
        .await;
    assert_error(&gone, 401, "session_not_found", "sign in again");

    // Signout ends the session: its refresh token and its access token stop.
    let last = app
        .call(post(
            "/api/v1/auth/signin",
            creds("ada.lovelace@example.com", "new battery staple"),
        ))
        .await;
    let last_access = last.body["access_token"].as_str().unwrap().to_string();
    let last_refresh = last.body["refresh_token"].as_str().unwrap().to_string();
    let out = app
        .call(bearer(
            TestRequest::post().uri("/api/v1/auth/signout"),
            &last_access,
        ))
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    let refused = app
        .call(post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": last_refresh}),
        ))
        .await;
    assert_error(
        &refused,
        401,
        "invalid_refresh_token",
        "not found or revoked",
    );
    let gone = app
        .call(bearer(
            TestRequest::get().uri("/api/v1/auth/user"),
            &last_access,
        ))
        .await;
    assert_error(&gone, 401, "session_not_found", "sign in again");

    // The audit trail, in order, with the reasons; never a password or token.
    let actions = audit_actions(&app, user_id).await;
    for expected in [
        "user_signedup",
        "login_failed",
        "login",
        "user_modified",
        "token_refreshed",
        "token_reuse_detected",
        "logout",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing: {actions:?}"
        );
    }
    let client = app.db().client().await;
    let rows = client
        .query(
            "SELECT action, payload::text, host(ip) FROM auth.audit_log_entries",
            &[],
        )
        .await
        .unwrap();
    let mut saw_unknown = false;
    for row in &rows {
        let (action, payload, ip): (String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        assert!(ip.is_some(), "{action}: no ip");
        for secret in [
            "correct horse",
            "new battery staple",
            "wrong password",
            &r1,
            &r2,
            &access,
        ] {
            assert!(
                !payload.contains(secret),
                "{action} leaks a secret: {payload}"
            );
        }
        if action == "login_failed" && payload.contains("unknown_email") {
            saw_unknown = true;
        }
    }
    assert!(
        saw_unknown,
        "the unknown-email failure is audited with its reason"
    );
    let wrong_row = client
        .query_one(
            "SELECT payload->>'reason' FROM auth.audit_log_entries WHERE actor_id = $1 AND action = 'login_failed' ORDER BY id LIMIT 1",
            &[&user_id],
        )
        .await
        .unwrap();
    assert_eq!(wrong_row.get::<_, String>(0), "wrong_password");

    // And the counter.
    let metrics = app.metrics().await;
    for (result, reason) in [
        ("success", "signup"),
        ("success", "password"),
        ("success", "refresh_token"),
        ("failure", "wrong_password"),
        ("failure", "unknown_email"),
        ("failure", "refresh_token_reused"),
        ("failure", "invalid_refresh_token"),
    ] {
        assert!(
            has_attempt(&metrics, result, reason),
            "{result}/{reason} missing:\n{metrics}"
        );
    }
}

#[actix_web::test]
async fn runbook_password_reset_by_crypt_signs_in_and_upgrades_to_argon2id() {
    let app = TestApp::new().await;
    let signup = app
        .call(post(
            "/api/v1/auth/signup",
            creds("reset@example.com", "original password"),
        ))
        .await;
    let user_id: Uuid = signup.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let client = app.db().client().await;

    // The operational runbook, verbatim but for the id.
    client
        .execute(
            "UPDATE auth.users SET encrypted_password = crypt('temporary-password', gen_salt('bf')) WHERE id = $1",
            &[&user_id],
        )
        .await
        .unwrap();
    let stored: String = client
        .query_one(
            "SELECT encrypted_password FROM auth.users WHERE id = $1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$2a$"), "{stored}");

    let old = app
        .call(post(
            "/api/v1/auth/signin",
            creds("reset@example.com", "original password"),
        ))
        .await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    let signin = app
        .call(post(
            "/api/v1/auth/signin",
            creds("reset@example.com", "temporary-password"),
        ))
        .await;
    assert_eq!(signin.status, 200, "{}", signin.body);

    let upgraded: String = client
        .query_one(
            "SELECT encrypted_password FROM auth.users WHERE id = $1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    let again = app
        .call(post(
            "/api/v1/auth/signin",
            creds("reset@example.com", "temporary-password"),
        ))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(has_attempt(
        &app.metrics().await,
        "success",
        "password_rehashed"
    ));
    let methods = client
        .query(
            "SELECT payload->>'method' FROM auth.audit_log_entries WHERE actor_id = $1 AND action = 'login' ORDER BY id",
            &[&user_id],
        )
        .await
        .unwrap();
    let methods: Vec<String> = methods.iter().map(|r| r.get(0)).collect();
    assert_eq!(methods, ["password_rehashed", "password"]);
}

#[actix_web::test]
async fn runbook_session_delete_revokes_refresh_tokens_at_once() {
    let app = TestApp::new().await;
    let a = app
        .call(post(
            "/api/v1/auth/signup",
            creds("victim@example.com", "victim password"),
        ))
        .await;
    let b = app
        .call(post(
            "/api/v1/auth/signin",
            creds("victim@example.com", "victim password"),
        ))
        .await;
    let other = app
        .call(post(
            "/api/v1/auth/signup",
            creds("bystander@example.com", "bystander password"),
        ))
        .await;
    let user_id: Uuid = a.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let client = app.db().client().await;

    // Sessions keep REPLICA IDENTITY FULL: the realtime engine reads user_id from the DELETE.
    let identity: i8 = client
        .query_one(
            "SELECT relreplident::\"char\" FROM pg_class WHERE oid = 'auth.sessions'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(identity as u8, b'f');
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM auth.refresh_tokens t JOIN auth.sessions s ON s.id = t.session_id WHERE s.user_id = $1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2);

    // The operational runbook's "revoke all sessions".
    client
        .execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&user_id])
        .await
        .unwrap();

    for session in [&a.body, &b.body] {
        let refused = app
            .call(post(
                "/api/v1/auth/refresh",
                json!({"refresh_token": session["refresh_token"]}),
            ))
            .await;
        assert_error(
            &refused,
            401,
            "invalid_refresh_token",
            "not found or revoked",
        );
        let me = app
            .call(bearer(
                TestRequest::get().uri("/api/v1/auth/user"),
                session["access_token"].as_str().unwrap(),
            ))
            .await;
        assert_error(&me, 401, "session_not_found", "sign in again");
    }
    let left: i64 = client
        .query_one("SELECT count(*) FROM auth.refresh_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1, "only the bystander's token is left");
    // Another user's session is untouched.
    let fine = app
        .call(post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": other.body["refresh_token"]}),
        ))
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    // Signing in again works.
    let back = app
        .call(post(
            "/api/v1/auth/signin",
            creds("victim@example.com", "victim password"),
        ))
        .await;
    assert_eq!(back.status, 200, "{}", back.body);
}

#[actix_web::test]
async fn token_lifetimes_follow_the_configuration() {
    let app = TestApp::with(|c| {
        c.auth.access_token_ttl = fluxbase_api::config::Dur::secs(120);
        // Every refresh token is already too old: the expiry path.
        c.auth.refresh_token_ttl = fluxbase_api::config::Dur::secs(0);
    })
    .await;
    let signup = app
        .call(post(
            "/api/v1/auth/signup",
            creds("ttl@example.com", "ttl password"),
        ))
        .await;
    assert_eq!(signup.body["expires_in"], 120);
    let claims = keys()
        .verify(signup.body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    let got = app
        .call(post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": signup.body["refresh_token"]}),
        ))
        .await;
    assert_error(&got, 401, "invalid_refresh_token", "expired");
    // The expired session is gone with it.
    let me = app
        .call(bearer(
            TestRequest::get().uri("/api/v1/auth/user"),
            signup.body["access_token"].as_str().unwrap(),
        ))
        .await;
    assert_error(&me, 401, "session_not_found", "sign in again");
    assert!(has_attempt(
        &app.metrics().await,
        "failure",
        "refresh_token_expired"
    ));
}
