//! Sign-up, password and refresh grants, the user, sign-out scopes, settings and health in
//! GoTrue's shapes; its error codes and statuses in both API versions; the token's claims
//! as RLS policies written for Supabase read them.

use super::*;

use crate::support::keys;

#[actix_web::test]
async fn signup_grants_user_and_logout_in_gotrue_shapes() {
    let app = TestApp::new().await;

    // Sign-up as auth-js sends it (extra fields included): a session, the user in full.
    let got = app
        .call(gotrue(
            Method::POST,
            "/auth/v1/signup",
            Some(json!({
                "email": "Ada@Example.com", "password": "correct horse", "data": {"name": "Ada"},
                "gotrue_meta_security": {"captcha_token": null},
                "code_challenge": null, "code_challenge_method": null,
            })),
        ))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let s = &got.body;
    assert_eq!(s["token_type"], "bearer");
    assert_eq!(s["expires_in"], 3600);
    let expires_at = s["expires_at"].as_u64().unwrap();
    assert!(expires_at > crate::support::now() + 3500, "{s}");
    assert_eq!(s["refresh_token"].as_str().unwrap().len(), 43);
    let user = &s["user"];
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["phone"], "");
    assert_eq!(user["is_anonymous"], false);
    assert_eq!(user["user_metadata"], json!({"name": "Ada"}));
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"]})
    );
    // Confirmation is off by default: confirmed at once (GoTrue's autoconfirm).
    for field in [
        "email_confirmed_at",
        "confirmed_at",
        "created_at",
        "updated_at",
        "last_sign_in_at",
    ] {
        assert!(
            user[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{field}: {user}"
        );
    }
    let identities = user["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1, "{user}");
    assert_eq!(identities[0]["provider"], "email");
    assert_eq!(identities[0]["user_id"], user["id"]);
    assert_eq!(identities[0]["identity_data"]["email"], "ada@example.com");
    assert!(!s.to_string().contains("argon2"), "{s}");

    // The access token is the JWT the rest of Fluxbase checks, with Supabase's claims.
    let access = s["access_token"].as_str().unwrap();
    let claims = keys().verify(access).unwrap();
    for (k, v) in [
        ("sub", user["id"].clone()),
        ("role", json!("authenticated")),
        ("aud", json!("authenticated")),
        ("email", json!("ada@example.com")),
        ("app_metadata", user["app_metadata"].clone()),
        ("user_metadata", json!({"name": "Ada"})),
        ("aal", json!("aal1")),
        ("is_anonymous", json!(false)),
        ("exp", json!(expires_at)),
    ] {
        assert_eq!(claims[k], v, "{k}: {claims:?}");
    }
    assert!(
        claims["session_id"]
            .as_str()
            .unwrap()
            .parse::<Uuid>()
            .is_ok()
    );

    // Policies written for Supabase read those claims.
    let db = app.db().client().await;
    db.batch_execute(
        "CREATE TABLE public.notes (id serial PRIMARY KEY, owner uuid, body text);
         ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
         CREATE POLICY own ON public.notes FOR SELECT TO authenticated
           USING (owner = auth.uid() AND auth.jwt() -> 'app_metadata' ->> 'provider' = 'email'
                  AND (auth.jwt() ->> 'is_anonymous')::boolean IS FALSE);
         GRANT SELECT ON public.notes TO authenticated;",
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO public.notes (owner, body) VALUES ($1, 'mine'), (gen_random_uuid(), 'other')",
        &[&user_id(s)],
    )
    .await
    .unwrap();
    let claims_text = serde_json::Value::Object(claims.clone()).to_string();
    let mut db = db;
    let tx = db.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL ROLE authenticated")
        .await
        .unwrap();
    tx.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        &[&claims_text],
    )
    .await
    .unwrap();
    let visible: Vec<String> = tx
        .query("SELECT body FROM public.notes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(visible, ["mine"]);
    drop(tx);

    // The same address again (any case): 422 user_already_exists.
    let again = app
        .call(gotrue(
            Method::POST,
            "/auth/v1/signup",
            Some(json!({"email": "ADA@example.com", "password": "another password"})),
        ))
        .await;
    assert_gotrue(&again, 422, "user_already_exists");

    // Wrong password and unknown address: one answer, 400 invalid_credentials.
    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", "whatever1"),
    ] {
        let wrong = password_grant(&app, email, password).await;
        assert_gotrue(&wrong, 400, "invalid_credentials");
        assert_eq!(wrong.body["message"], "Invalid login credentials");
    }

    // The password grant: a second session.
    let signed_in = password_grant(&app, "ada@example.com", "correct horse").await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let token2 = signed_in.str("access_token");
    assert_eq!(signed_in.body["user"]["identities"][0]["provider"], "email");

    // GET /user.
    let me = app
        .call(with_bearer(
            gotrue(Method::GET, "/auth/v1/user", None),
            &token2,
        ))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["id"], user["id"]);
    assert_eq!(me.body["email"], "ada@example.com");

    // PUT /user: `data` merged key by key, a null removes its key.
    let put = app
        .call(with_bearer(
            gotrue(
                Method::PUT,
                "/auth/v1/user",
                Some(json!({"data": {"name": null, "city": "Paris"}, "code_challenge": null})),
            ),
            &token2,
        ))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["user_metadata"], json!({"city": "Paris"}));
    // app_metadata is the server's.
    let forbidden = app
        .call(with_bearer(
            gotrue(
                Method::PUT,
                "/auth/v1/user",
                Some(json!({"app_metadata": {"role": "admin"}})),
            ),
            &token2,
        ))
        .await;
    assert_gotrue(&forbidden, 403, "not_admin");

    // Logout scopes: `others` ends the first session only; an unknown scope is refused.
    let bad_scope = app
        .call(with_bearer(
            gotrue(Method::POST, "/auth/v1/logout?scope=everyone", None),
            &token2,
        ))
        .await;
    assert_gotrue(&bad_scope, 400, "validation_failed");
    let others = app
        .call(with_bearer(
            gotrue(Method::POST, "/auth/v1/logout?scope=others", None),
            &token2,
        ))
        .await;
    assert_eq!(others.status, 204, "{}", others.body);
    let first_refresh = refresh_grant(&app, s["refresh_token"].as_str().unwrap()).await;
    assert_gotrue(&first_refresh, 400, "refresh_token_not_found");
    let old_access = app
        .call(with_bearer(
            gotrue(Method::GET, "/auth/v1/user", None),
            access,
        ))
        .await;
    assert_gotrue(&old_access, 403, "session_not_found");
    // The default scope is global.
    let out = app
        .call(with_bearer(
            gotrue(Method::POST, "/auth/v1/logout", None),
            &token2,
        ))
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    let after = app
        .call(with_bearer(
            gotrue(Method::GET, "/auth/v1/user", None),
            &token2,
        ))
        .await;
    assert_gotrue(&after, 403, "session_not_found");
    let sessions: i64 = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM auth.sessions WHERE user_id = $1",
            &[&user_id(s)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0);
}

#[actix_web::test]
async fn refresh_rotates_and_a_replay_revokes_the_family() {
    let app = TestApp::new().await;
    let s = sign_up(&app, "rot@example.com", "rotation password").await;
    let r0 = s["refresh_token"].as_str().unwrap();

    let first = refresh_grant(&app, r0).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let r1 = first.str("refresh_token");
    assert_ne!(r1, r0);
    assert_eq!(first.body["user"]["email"], "rot@example.com");
    assert!(
        first.body["user"]["identities"].is_array(),
        "{}",
        first.body
    );
    let a1 = first.str("access_token");
    let claims = keys().verify(&a1).unwrap();
    assert_eq!(
        claims["session_id"],
        keys().verify(s["access_token"].as_str().unwrap()).unwrap()["session_id"]
    );

    // The spent token again: 400 refresh_token_already_used, and the session is gone.
    let replay = refresh_grant(&app, r0).await;
    assert_gotrue(&replay, 400, "refresh_token_already_used");
    let child = refresh_grant(&app, &r1).await;
    assert_gotrue(&child, 400, "refresh_token_not_found");
    let me = app
        .call(with_bearer(gotrue(Method::GET, "/auth/v1/user", None), &a1))
        .await;
    assert_gotrue(&me, 403, "session_not_found");

    // Garbage and an empty token.
    let garbage = refresh_grant(&app, "not-a-token").await;
    assert_gotrue(&garbage, 400, "refresh_token_not_found");
    let empty = refresh_grant(&app, "").await;
    assert_gotrue(&empty, 400, "validation_failed");
}

#[actix_web::test]
async fn errors_take_gotrue_codes_statuses_and_both_shapes() {
    let app = TestApp::new().await;
    sign_up(&app, "err@example.com", "long enough").await;

    // Without the version header: the legacy body, no header echoed.
    let legacy = app
        .call(
            actix_web::test::TestRequest::post()
                .uri("/auth/v1/token?grant_type=password")
                .set_payload(
                    json!({"email": "err@example.com", "password": "nope nope"}).to_string(),
                ),
        )
        .await;
    assert_legacy(&legacy, 400, "invalid_credentials");
    assert_eq!(legacy.body["msg"], "Invalid login credentials");

    let post = |uri: &str, body: Value| gotrue(Method::POST, uri, Some(body));
    let cases: Vec<(TestRequest, u16, &str)> = vec![
        // The guard: no token, a bad one, the anon key.
        (
            TestRequest::get()
                .uri("/auth/v1/user")
                .insert_header(VERSION),
            401,
            "no_authorization",
        ),
        (
            with_bearer(gotrue(Method::GET, "/auth/v1/user", None), "not.a.jwt"),
            403,
            "bad_jwt",
        ),
        (
            gotrue(Method::GET, "/auth/v1/user", None),
            401,
            "no_authorization",
        ),
        // Bodies: syntax, types, NUL.
        (
            gotrue(Method::POST, "/auth/v1/signup", None).set_payload("{\"email\":"),
            400,
            "bad_json",
        ),
        (
            post("/auth/v1/signup", json!({"email": 5, "password": "x"})),
            400,
            "bad_json",
        ),
        (
            post(
                "/auth/v1/signup",
                json!({"email": "a\u{0}@b.co", "password": "long enough"}),
            ),
            400,
            "bad_json",
        ),
        // Rules.
        (
            post(
                "/auth/v1/signup",
                json!({"email": "new@example.com", "password": "short"}),
            ),
            422,
            "weak_password",
        ),
        (
            post(
                "/auth/v1/signup",
                json!({"email": "not-an-email", "password": "long enough"}),
            ),
            400,
            "validation_failed",
        ),
        (
            post("/auth/v1/signup", json!({})),
            422,
            "anonymous_provider_disabled",
        ),
        (
            post(
                "/auth/v1/signup",
                json!({"phone": "+15555550100", "password": "long enough"}),
            ),
            422,
            "phone_provider_disabled",
        ),
        (
            post(
                "/auth/v1/signup",
                json!({"email": "p@example.com", "password": "long enough", "code_challenge": "abc", "code_challenge_method": "s256"}),
            ),
            400,
            "validation_failed",
        ),
        (
            post("/auth/v1/token", json!({})),
            400,
            "invalid_credentials",
        ),
        (
            post("/auth/v1/token?grant_type=client_credentials", json!({})),
            400,
            "invalid_credentials",
        ),
        (
            post(
                "/auth/v1/token?grant_type=pkce",
                json!({"auth_code": "x", "code_verifier": "y"}),
            ),
            400,
            "validation_failed",
        ),
        (
            post(
                "/auth/v1/token?grant_type=password",
                json!({"password": "x"}),
            ),
            400,
            "validation_failed",
        ),
        // Routing.
        (
            gotrue(Method::GET, "/auth/v1/nothing-here", None),
            404,
            "not_found",
        ),
        (
            gotrue(Method::DELETE, "/auth/v1/signup", None),
            405,
            "method_not_allowed",
        ),
    ];
    for (req, status, code) in cases {
        let got = app.call(req).await;
        assert_gotrue(&got, status, code);
    }
    // weak_password carries its reasons (auth-js's AuthWeakPasswordError reads them).
    let weak = app
        .call(post(
            "/auth/v1/signup",
            json!({"email": "w@example.com", "password": "short"}),
        ))
        .await;
    assert_eq!(weak.body["weak_password"]["reasons"], json!(["length"]));
    assert!(
        weak.body["message"]
            .as_str()
            .unwrap()
            .contains("auth.password_min_length")
    );

    // Other paths keep their own shape.
    let native = app
        .call(crate::support::post(
            "/api/v1/auth/signin",
            json!({"email": "err@example.com", "password": "nope nope"}),
        ))
        .await;
    crate::support::assert_error(
        &native,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
}

#[actix_web::test]
async fn rate_limits_answer_over_request_rate_limit() {
    let app = TestApp::with(|c| {
        c.security.rate_limit.enabled = true;
        c.security.rate_limit.login_attempts = 2;
        c.security.rate_limit.requests_per_minute = 1000;
    })
    .await;
    sign_up(&app, "limited@example.com", "limited password").await;
    for _ in 0..2 {
        let got = password_grant(&app, "limited@example.com", "wrong password").await;
        assert_gotrue(&got, 400, "invalid_credentials");
    }
    let limited = password_grant(&app, "limited@example.com", "limited password").await;
    assert_gotrue(&limited, 429, "over_request_rate_limit");
    assert!(limited.headers.get("retry-after").is_some());

    // The per-address limit of the middleware, in the same shape.
    let app = TestApp::with(|c| {
        c.security.rate_limit.enabled = true;
        c.security.rate_limit.requests_per_minute = 2;
    })
    .await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            app.call(gotrue(Method::GET, "/auth/v1/settings", None))
                .await,
        );
    }
    let last = last.unwrap();
    assert_gotrue(&last, 429, "over_request_rate_limit");
    assert!(last.headers.get("retry-after").is_some());
}

#[actix_web::test]
async fn settings_and_health() {
    let app = TestApp::new().await;
    let settings = app
        .call(gotrue(Method::GET, "/auth/v1/settings", None))
        .await;
    assert_eq!(settings.status, 200);
    assert_eq!(settings.body["external"]["email"], true);
    assert_eq!(settings.body["external"]["phone"], false);
    assert_eq!(settings.body["disable_signup"], false);
    assert_eq!(settings.body["mailer_autoconfirm"], true);
    let health = app.call(gotrue(Method::GET, "/auth/v1/health", None)).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["name"], "GoTrue");
    assert!(health.body["version"].is_string());

    let confirming = TestApp::with(|c| c.auth.email_confirmation = true).await;
    let settings = confirming
        .call(gotrue(Method::GET, "/auth/v1/settings", None))
        .await;
    assert_eq!(settings.body["mailer_autoconfirm"], false);
}
