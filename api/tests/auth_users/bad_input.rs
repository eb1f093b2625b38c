//! Malformed, hostile and forged input on the app-user endpoints.

use super::*;

#[actix_web::test]
async fn bad_input_is_refused_naming_the_field() {
    use actix_web::http::Method;
    let app = TestApp::with(|c| c.auth.password_min_length = 10).await;
    let signup = "/api/v1/auth/signup";

    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (signup, "{\"email\": ".into(), 400, "bad_request", "invalid JSON body"),
        (signup, "not json".into(), 400, "bad_request", "invalid JSON body"),
        (signup, "".into(), 400, "bad_request", "empty"),
        (signup, "[]".into(), 400, "bad_request", "expected a JSON object"),
        (signup, r#""a@example.com""#.into(), 400, "bad_request", "expected a JSON object"),
        (signup, r#"{"email":"a@example.com"}"#.into(), 400, "bad_request", "missing field `password`"),
        (signup, r#"{"password":"long enough password"}"#.into(), 400, "bad_request", "missing field `email`"),
        (signup, r#"{"email":42,"password":"long enough password"}"#.into(), 400, "bad_request", "field `email`: invalid type: integer, expected a string"),
        (signup, r#"{"email":"a@example.com","password":true}"#.into(), 400, "bad_request", "field `password`: invalid type: boolean"),
        (signup, r#"{"email":"a@example.com","password":"long enough password","role":"service_role"}"#.into(), 400, "bad_request", "unknown field `role`"),
        (signup, r#"{"email":"a@example.com","password":"long enough password","data":[1]}"#.into(), 422, "validation_failed", "`data`"),
        (signup, r#"{"email":"a@example.com","password":"short"}"#.into(), 422, "weak_password", "at least 10 characters"),
        (signup, json!({"email": "a@example.com", "password": "p".repeat(5000)}).to_string(), 422, "validation_failed", "`password`: must be at most 256 characters"),
        (signup, r#"{"email":"not-an-email","password":"long enough password"}"#.into(), 422, "validation_failed", "`email`"),
        (signup, r#"{"email":"admin@example.com' OR '1'='1","password":"long enough password"}"#.into(), 422, "validation_failed", "`email`"),
        (signup, r#"{"email":"x'; DROP TABLE auth.users; --@example.com","password":"long enough password"}"#.into(), 422, "validation_failed", "`email`"),
        ("/api/v1/auth/signin", r#"{"email":"a@example.com"}"#.into(), 400, "bad_request", "missing field `password`"),
        ("/api/v1/auth/signin", r#"{"email":"a@example.com","password":"x","data":{}}"#.into(), 400, "bad_request", "unknown field `data`"),
        ("/api/v1/auth/refresh", "{}".into(), 400, "bad_request", "missing field `refresh_token`"),
        ("/api/v1/auth/refresh", r#"{"refresh_token":7}"#.into(), 400, "bad_request", "field `refresh_token`"),
        ("/api/v1/auth/refresh", r#"{"refresh_token":"' OR 1=1 --"}"#.into(), 401, "invalid_refresh_token", "not found"),
        ("/api/v1/auth/refresh", json!({"refresh_token": "A".repeat(43)}).to_string(), 401, "invalid_refresh_token", "not found"),
    ];
    for (uri, body, status, code, needle) in cases {
        let got = app.call(raw(Method::POST, uri, &body)).await;
        assert_error(&got, status, code, needle);
        let text = got.body.to_string();
        assert!(
            !text.contains("SELECT") && !text.contains("INSERT"),
            "{text}"
        );
    }

    // Values are never echoed back (a password sent with the wrong type).
    let got = app
        .call(raw(
            Method::POST,
            signup,
            r#"{"email":"a@example.com","password":["hunter2-secret"]}"#,
        ))
        .await;
    assert!(!got.body.to_string().contains("hunter2"), "{}", got.body);

    // A huge body is refused before it is read, by Content-Length or by streaming.
    let huge = json!({"email": "a@example.com", "password": "x".repeat(200_000)}).to_string();
    let got = app.call(raw(Method::POST, signup, &huge)).await;
    assert_error(&got, 413, "payload_too_large", "larger than");

    // A legal address that looks like SQL is stored literally, and the table survives.
    let odd = "o'brien--@example.com";
    let got = app
        .call(post(signup, creds(odd, "long enough password")))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["user"]["email"], odd);
    let client = app.db().client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM auth.users WHERE email = $1", &[&odd])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let access = got.body["access_token"].as_str().unwrap().to_string();

    // PATCH: nothing to do, a weak password, unknown fields.
    for (body, status, code, needle) in [
        ("{}", 422, "validation_failed", "nothing to update"),
        (
            r#"{"password":"short"}"#,
            422,
            "weak_password",
            "`password`",
        ),
        (
            r#"{"role":"service_role"}"#,
            400,
            "bad_request",
            "unknown field `role`",
        ),
        (
            r#"{"email":"bad email@example.com"}"#,
            422,
            "validation_failed",
            "`email`",
        ),
        (r#"{"data":"x"}"#, 422, "validation_failed", "`data`"),
    ] {
        let got = app
            .call(bearer(
                raw(Method::PATCH, "/api/v1/auth/user", body),
                &access,
            ))
            .await;
        assert_error(&got, status, code, needle);
    }
    let got = app
        .call(bearer(
            TestRequest::post().uri("/api/v1/auth/signout?scope=everything"),
            &access,
        ))
        .await;
    assert_error(&got, 400, "bad_request", "`scope`");

    // Wrong methods.
    let got = app.call(TestRequest::get().uri(signup)).await;
    assert_error(&got, 405, "method_not_allowed", "GET is not allowed");
    let got = app
        .call(TestRequest::delete().uri("/api/v1/auth/user"))
        .await;
    assert_error(&got, 405, "method_not_allowed", "DELETE");
}

#[actix_web::test]
async fn only_app_user_access_tokens_open_the_user_endpoints() {
    let app = TestApp::new().await;
    let signup = app
        .call(post(
            "/api/v1/auth/signup",
            creds("eve@example.com", "eve's password"),
        ))
        .await;
    let real = keys()
        .verify(signup.body["access_token"].as_str().unwrap())
        .unwrap();
    let now = fluxbase_auth::tokens::now_secs();
    let with = |changes: Value| {
        let mut claims = real.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.remove(k);
            } else {
                claims.insert(k.clone(), v.clone());
            }
        }
        claims
    };

    let expired = keys().sign(&with(json!({"exp": now - 10, "iat": now - 3610})));
    let forged = JwtKeys::hs256(b"an-attacker-secret-an-attacker-secret-0123").sign(&real);
    // {"alg":"none","typ":"JWT"} over the real token's claims, without a signature.
    let none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        signup.body["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
    );
    let admin = keys().sign(&with(
        json!({"role": "dashboard_admin", "aud": "fluxbase-dashboard"}),
    ));
    let admin_role_only = keys().sign(&with(json!({"role": "dashboard_admin"})));
    let no_aud = keys().sign(&with(json!({"aud": null})));
    let bad_sub = keys().sign(&with(json!({"sub": "' OR 1=1 --"})));
    let anon_key = fluxbase_auth::tokens::api_key(&keys(), "anon", now);
    let service_key = fluxbase_auth::tokens::api_key(&keys(), "service_role", now);

    for (name, token, code, needle) in [
        ("expired", expired.as_str(), "token_expired", "expired"),
        ("forged", &forged, "invalid_token", "bad signature"),
        ("alg none", &none, "invalid_token", "invalid token"),
        ("garbage", "not.a.token", "invalid_token", "invalid token"),
        (
            // Shaped like an admin token: its (app) session is no dashboard session.
            "admin audience",
            &admin,
            "session_not_found",
            "session has ended",
        ),
        (
            "admin role",
            &admin_role_only,
            "unauthorized",
            "not an application user",
        ),
        (
            "no audience",
            &no_aud,
            "unauthorized",
            "not an application user",
        ),
        (
            "sub not a uuid",
            &bad_sub,
            "unauthorized",
            "not an application user",
        ),
        (
            "anon api key",
            &anon_key,
            "unauthorized",
            "not an application user",
        ),
        (
            "service_role api key",
            &service_key,
            "unauthorized",
            "not an application user",
        ),
    ] {
        for req in [
            TestRequest::get().uri("/api/v1/auth/user"),
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"data":{"x":1}}"#,
            ),
            TestRequest::post().uri("/api/v1/auth/signout"),
        ] {
            let got = app.call(bearer(req, token)).await;
            assert_eq!(got.status, 401, "{name}: {}", got.body);
            assert_eq!(got.body["error"]["code"], code, "{name}: {}", got.body);
            assert!(
                got.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(needle),
                "{name}: {}",
                got.body
            );
        }
    }
    let got = app.call(TestRequest::get().uri("/api/v1/auth/user")).await;
    assert_error(&got, 401, "unauthorized", "no access token");
    let got = app
        .call(
            TestRequest::get()
                .uri("/api/v1/auth/user")
                .insert_header(("X-Service-Key", "sk_x")),
        )
        .await;
    assert_error(
        &got,
        401,
        "unauthorized",
        "service keys do not act as a user",
    );

    // Nothing above changed the user.
    let me = app
        .call(bearer(
            TestRequest::get().uri("/api/v1/auth/user"),
            signup.body["access_token"].as_str().unwrap(),
        ))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["user_metadata"], json!({}));
}

#[actix_web::test]
async fn unknown_email_costs_a_password_check_like_a_wrong_password() {
    let app = TestApp::new().await;
    app.call(post(
        "/api/v1/auth/signup",
        creds("timing@example.com", "timing password"),
    ))
    .await;
    // Best of three each: scheduling noise only ever adds time.
    let mut best = [Duration::MAX; 2];
    for _ in 0..3 {
        for (slot, email) in ["timing@example.com", "nobody-here@example.com"]
            .into_iter()
            .enumerate()
        {
            let started = Instant::now();
            let got = app
                .call(post(
                    "/api/v1/auth/signin",
                    creds(email, "not the password"),
                ))
                .await;
            assert_error(
                &got,
                401,
                "invalid_credentials",
                "invalid email or password",
            );
            best[slot] = best[slot].min(started.elapsed());
        }
    }
    let [wrong, unknown] = best;
    // Without the dummy verification an unknown email answers after one indexed lookup,
    // orders of magnitude faster than an argon2 verification.
    assert!(
        unknown * 3 >= wrong,
        "unknown email {unknown:?} vs wrong password {wrong:?}"
    );
    assert!(
        wrong * 3 >= unknown,
        "unknown email {unknown:?} vs wrong password {wrong:?}"
    );
}
