//! Dashboard administrators (`/dashboard/auth/*`) in-process over a real database: first
//! admin signup, login, refresh rotation, logout, TOTP 2FA with replay protection and
//! backup codes, lockout, the activity log, the admin-token boundary, and bad input.

use actix_web::test::TestRequest;
use fluxbase_auth::JwtKeys;
use fluxbase_auth::totp;
use serde_json::json;

use crate::support::{Reply, TEST_SECRET, TestApp, assert_error, now, post, token};

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "SecurePassword123!";

fn with_token(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("authorization", format!("Bearer {token}")))
}

fn me(token: &str) -> TestRequest {
    with_token(TestRequest::get().uri("/dashboard/auth/me"), token)
}

fn post_raw(uri: &str, raw: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(raw.to_string())
}

/// The (action, success, reason) of every activity-log row, oldest first.
async fn activity(app: &TestApp) -> Vec<(String, bool, String)> {
    let client = app.db().client().await;
    client
        .query(
            "SELECT action, success, coalesce(details->>'reason', '') FROM dashboard.activity_log ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn count(log: &[(String, bool, String)], action: &str, reason: &str) -> usize {
    log.iter()
        .filter(|(a, _, r)| a == action && r == reason)
        .count()
}

/// A signed-in application user's access token (a live session: refused as an admin, not
/// as a dead session).
async fn app_user_token(app: &TestApp) -> String {
    app.sign_up("app-user@example.com", "an app user's password")
        .await
        .str("access_token")
}

/// A 6-digit string that is not the code of any step near now.
fn wrong_code(secret: &[u8]) -> String {
    let t = now();
    let valid: Vec<String> = (0..5)
        .map(|i| totp::code_at(secret, t - 60 + i * 30).unwrap())
        .collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[actix_web::test]
async fn first_admin_signs_up_freely_then_only_admins_create_admins() {
    let app = TestApp::new().await;

    // The runbook's call.
    let Reply { status, body, .. } = app
        .call(post(
            "/dashboard/auth/signup",
            json!({"email": "Admin@Example.com", "password": PASSWORD, "full_name": "Admin User"}),
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    let user = &body["user"];
    assert_eq!(user["email"], ADMIN);
    assert_eq!(user["full_name"], "Admin User");
    assert_eq!(user["role"], "dashboard_admin");
    assert_eq!(user["totp_enabled"], false);
    for secret in [
        "encrypted_password",
        "password",
        "totp_secret",
        "backup_codes",
    ] {
        assert!(user.get(secret).is_none(), "{secret} in {user}");
    }

    // A second signup without a token, or with an application user's token, is refused.
    let second = json!({"email": "second@example.com", "password": PASSWORD});
    let got = app
        .call(post("/dashboard/auth/signup", second.clone()))
        .await;
    assert_error(&got, 401, "unauthorized", "admin");
    let got = app
        .call(with_token(
            post("/dashboard/auth/signup", second.clone()),
            &app_user_token(&app).await,
        ))
        .await;
    assert_error(&got, 403, "forbidden", "admin");

    // An admin creates it.
    let Reply {
        status,
        body: login,
        ..
    } = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD}),
        ))
        .await;
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap();
    let Reply { status, body, .. } = app
        .call(with_token(
            post("/dashboard/auth/signup", second.clone()),
            access,
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "second@example.com");

    // The same email in another case is taken.
    let got = app
        .call(with_token(
            post(
                "/dashboard/auth/signup",
                json!({"email": "SECOND@example.com", "password": PASSWORD}),
            ),
            access,
        ))
        .await;
    assert_error(&got, 409, "user_already_exists", "email");

    // Only an admin session creates admins: not a service_role token (issue 11).
    let service = token(json!({"role": "service_role"}));
    let got = app
        .call(with_token(
            post(
                "/dashboard/auth/signup",
                json!({"email": "bot@example.com", "password": PASSWORD}),
            ),
            &service,
        ))
        .await;
    assert_error(&got, 403, "forbidden", "dashboard admin's session");

    let log = activity(&app).await;
    assert_eq!(
        log.iter().filter(|(a, s, _)| a == "signup" && *s).count(),
        2,
        "{log:?}"
    );
    let client = app.db().client().await;
    let first: bool = client
        .query_one(
            "SELECT (details->>'first_admin')::bool FROM dashboard.activity_log
             WHERE action = 'signup' ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(first);
    // Passwords are stored as argon2id, never in clear.
    let stored: String = client
        .query_one(
            "SELECT encrypted_password FROM dashboard.users WHERE email = $1",
            &[&ADMIN],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

#[actix_web::test]
async fn login_me_refresh_rotation_and_logout() {
    let app = TestApp::new().await;
    let Reply { status, .. } = app
        .call(post(
            "/dashboard/auth/signup",
            json!({"email": ADMIN, "password": PASSWORD}),
        ))
        .await;
    assert_eq!(status, 201);

    // Wrong password and unknown email: one answer.
    let wrong = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": "not-the-password"}),
        ))
        .await;
    assert_error(
        &wrong,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    let unknown = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(unknown, wrong);

    let Reply {
        status,
        body: login,
        ..
    } = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD}),
        ))
        .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["token_type"], "bearer");
    assert_eq!(login["expires_in"], 900);
    assert_eq!(login["user"]["email"], ADMIN);
    assert!(login["user"]["last_login_at"].is_string(), "{login}");
    let access = login["access_token"].as_str().unwrap().to_string();
    let claims = JwtKeys::hs256(TEST_SECRET.as_bytes())
        .verify(&access)
        .unwrap();
    assert_eq!(claims["aud"], "fluxbase-dashboard");
    assert_eq!(claims["role"], "dashboard_admin");
    assert_eq!(claims["sub"], login["user"]["id"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );

    let Reply { status, body, .. } = app.call(me(&access)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], ADMIN);

    // Refresh rotates: a new token each time; the spent one, presented again, revokes the
    // whole session (its child stops working too).
    let first = login["refresh_token"].as_str().unwrap().to_string();
    let Reply {
        status,
        body: refreshed,
        ..
    } = app
        .call(post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": first}),
        ))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let Reply { status, .. } = app
        .call(me(refreshed["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    let got = app
        .call(post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": first}),
        ))
        .await;
    assert_error(&got, 401, "invalid_refresh_token", "already used");
    let got = app
        .call(post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": second}),
        ))
        .await;
    assert_error(&got, 401, "invalid_refresh_token", "not found or revoked");
    // The revoked session's access token no longer opens the dashboard routes.
    let got = app.call(me(&access)).await;
    assert_error(&got, 401, "session_not_found", "sign in again");

    // Logout ends the session at once.
    let Reply { body: login, .. } = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD}),
        ))
        .await;
    let access = login["access_token"].as_str().unwrap();
    let Reply { status, body, .. } = app
        .call(with_token(
            TestRequest::post().uri("/dashboard/auth/logout"),
            access,
        ))
        .await;
    assert_eq!(status, 204, "{body}");
    let got = app.call(me(access)).await;
    assert_error(&got, 401, "session_not_found", "sign in again");
    let got = app
        .call(post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": login["refresh_token"]}),
        ))
        .await;
    assert_error(&got, 401, "invalid_refresh_token", "");
    let got = app
        .call(TestRequest::post().uri("/dashboard/auth/logout"))
        .await;
    assert_error(&got, 401, "unauthorized", "");

    let log = activity(&app).await;
    assert_eq!(count(&log, "login_failed", "wrong_password"), 1, "{log:?}");
    assert_eq!(count(&log, "login_failed", "unknown_email"), 1, "{log:?}");
    assert_eq!(count(&log, "login", ""), 2, "{log:?}");
    assert_eq!(
        count(&log, "token_reuse_detected", "refresh_token_reused"),
        1,
        "{log:?}"
    );
    assert_eq!(count(&log, "logout", ""), 1, "{log:?}");
    // Refresh tokens are stored only hashed.
    let client = app.db().client().await;
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM dashboard.refresh_tokens WHERE token_hash IN ($1, $2)",
            &[&first, &second],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // A password reset by SQL with pgcrypto's bcrypt logs in, and is upgraded to argon2id.
    client
        .execute(
            "UPDATE dashboard.users SET encrypted_password = crypt('Reset-by-SQL-2024', gen_salt('bf'))",
            &[],
        )
        .await
        .unwrap();
    let Reply { status, body, .. } = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": "Reset-by-SQL-2024"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let stored: String = client
        .query_one("SELECT encrypted_password FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

#[actix_web::test]
async fn two_factor_setup_enable_verify_replay_backup_codes_and_disable() {
    let app = TestApp::new().await;
    app.call(post(
        "/dashboard/auth/signup",
        json!({"email": ADMIN, "password": PASSWORD}),
    ))
    .await;
    let login_body = json!({"email": ADMIN, "password": PASSWORD});
    let Reply { body: login, .. } = app
        .call(post("/dashboard/auth/login", login_body.clone()))
        .await;
    let access = login["access_token"].as_str().unwrap().to_string();
    let client = app.db().client().await;

    // Not enabled yet: nothing to disable, nothing to enable before setup.
    let got = app
        .call(with_token(
            post("/dashboard/auth/2fa/enable", json!({"code": "123456"})),
            &access,
        ))
        .await;
    assert_error(&got, 409, "invalid_2fa_state", "setup");
    let got = app
        .call(with_token(
            post("/dashboard/auth/2fa/disable", json!({"password": PASSWORD})),
            &access,
        ))
        .await;
    assert_error(&got, 409, "invalid_2fa_state", "not enabled");

    let Reply {
        status,
        body: setup,
        ..
    } = app
        .call(with_token(
            TestRequest::post().uri("/dashboard/auth/2fa/setup"),
            &access,
        ))
        .await;
    assert_eq!(status, 200, "{setup}");
    let b32 = setup["secret"].as_str().unwrap();
    let url = setup["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Fluxbase:admin%40example.com?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={b32}")), "{url}");
    let secret = totp::secret_from_base32(b32).unwrap();
    // Sealed at rest.
    let stored: String = client
        .query_one("SELECT totp_secret FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        stored.starts_with("v1:") && !stored.contains(b32),
        "{stored}"
    );
    // Still off until confirmed: login gives tokens at once.
    let Reply { body, .. } = app
        .call(post("/dashboard/auth/login", login_body.clone()))
        .await;
    assert!(body["access_token"].is_string(), "{body}");

    // Enable: a malformed code, a wrong code, then the right one.
    let got = app
        .call(with_token(
            post("/dashboard/auth/2fa/enable", json!({"code": "12ab"})),
            &access,
        ))
        .await;
    assert_error(&got, 422, "validation_failed", "`code`");
    let got = app
        .call(with_token(
            post(
                "/dashboard/auth/2fa/enable",
                json!({"code": wrong_code(&secret)}),
            ),
            &access,
        ))
        .await;
    assert_error(&got, 401, "invalid_2fa_code", "`code`");
    let t = now();
    let code_now = totp::code_at(&secret, t).unwrap();
    let Reply {
        status,
        body: enabled,
        ..
    } = app
        .call(with_token(
            post("/dashboard/auth/2fa/enable", json!({"code": code_now})),
            &access,
        ))
        .await;
    assert_eq!(status, 200, "{enabled}");
    let backup: Vec<String> = enabled["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(backup.len(), 10);
    let stored: Vec<String> = client
        .query_one("SELECT backup_codes FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.len(), 10);
    assert!(
        backup
            .iter()
            .all(|c| !stored.iter().any(|s| s.contains(&c.replace('-', ""))))
    );
    let got = app
        .call(with_token(
            TestRequest::post().uri("/dashboard/auth/2fa/setup"),
            &access,
        ))
        .await;
    assert_error(&got, 409, "invalid_2fa_state", "already enabled");
    let Reply { body, .. } = app.call(me(&access)).await;
    assert_eq!(body["user"]["totp_enabled"], true);
    assert_eq!(body["user"]["backup_codes_remaining"], 10);

    // Login now stops at the second step; the mfa_token opens nothing else.
    let Reply {
        status,
        body: challenge,
        ..
    } = app
        .call(post("/dashboard/auth/login", login_body.clone()))
        .await;
    assert_eq!(status, 200, "{challenge}");
    assert_eq!(challenge["requires_2fa"], true);
    assert!(challenge.get("access_token").is_none(), "{challenge}");
    let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
    let got = app.call(me(&mfa)).await;
    assert_error(&got, 403, "forbidden", "admin");
    let Reply { status, .. } = app
        .call(with_token(
            TestRequest::post().uri("/api/v1/admin/realtime/restart"),
            &mfa,
        ))
        .await;
    assert_eq!(status, 403);

    let verify = |code: &str, mfa: &str| {
        post(
            "/dashboard/auth/2fa/verify",
            json!({"mfa_token": mfa, "code": code}),
        )
    };
    // The code used to enable cannot be replayed in its step.
    let got = app.call(verify(&code_now, &mfa)).await;
    assert_error(&got, 401, "invalid_2fa_code", "already used");
    // The next step's code works (within the skew), once.
    let code_next = totp::code_at(&secret, t + 30).unwrap();
    let Reply {
        status,
        body: tokens,
        ..
    } = app.call(verify(&code_next, &mfa)).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string());
    let Reply {
        body: challenge, ..
    } = app
        .call(post("/dashboard/auth/login", login_body.clone()))
        .await;
    let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
    let got = app.call(verify(&code_next, &mfa)).await;
    assert_error(&got, 401, "invalid_2fa_code", "already used");
    let got = app.call(verify("12345", &mfa)).await;
    assert_error(&got, 422, "validation_failed", "`code`");
    let got = app
        .call(post(
            "/dashboard/auth/2fa/verify",
            json!({"mfa_token": mfa, "code": 123456}),
        ))
        .await;
    assert_error(&got, 400, "bad_request", "`code`");
    // Another token in place of the mfa_token is refused.
    let got = app.call(verify(&code_next, &access)).await;
    assert_error(&got, 401, "unauthorized", "mfa_token");
    let got = app.call(verify(&code_next, "not.a.token")).await;
    assert_error(&got, 401, "unauthorized", "mfa_token");

    // A backup code (any case, with or without the dash) works once.
    let Reply { status, body, .. } = app.call(verify(&backup[0].to_uppercase(), &mfa)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["backup_codes_remaining"], 9);
    let Reply {
        body: challenge, ..
    } = app
        .call(post("/dashboard/auth/login", login_body.clone()))
        .await;
    let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
    let got = app.call(verify(&backup[0].replace('-', ""), &mfa)).await;
    assert_error(&got, 401, "invalid_2fa_code", "already used");

    // Disable: a proof is required and must be right.
    let got = app
        .call(with_token(
            post("/dashboard/auth/2fa/disable", json!({})),
            &access,
        ))
        .await;
    assert_error(&got, 422, "validation_failed", "`password` or `code`");
    let got = app
        .call(with_token(
            post(
                "/dashboard/auth/2fa/disable",
                json!({"password": "wrong-password!"}),
            ),
            &access,
        ))
        .await;
    assert_error(&got, 401, "invalid_credentials", "password");
    let got = app
        .call(with_token(
            post("/dashboard/auth/2fa/disable", json!({"code": backup[0]})),
            &access,
        ))
        .await;
    assert_error(&got, 401, "invalid_2fa_code", "code");
    let Reply { status, body, .. } = app
        .call(with_token(
            post("/dashboard/auth/2fa/disable", json!({"code": backup[1]})),
            &access,
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false);
    let row = client
        .query_one(
            "SELECT totp_enabled, totp_secret, cardinality(backup_codes) FROM dashboard.users",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, i32>(2), 0);
    let Reply { body, .. } = app
        .call(post("/dashboard/auth/login", login_body.clone()))
        .await;
    assert!(body["access_token"].is_string(), "{body}");

    let log = activity(&app).await;
    for (action, reason, n) in [
        ("2fa_setup", "", 1),
        ("2fa_enabled", "", 1),
        ("2fa_disabled", "", 1),
        ("login_2fa_required", "", 3),
        ("2fa_failed", "wrong_code", 1),
        ("2fa_failed", "replayed_code", 2),
        ("2fa_failed", "wrong_backup_code", 2),
        ("2fa_failed", "wrong_password", 1),
    ] {
        assert_eq!(count(&log, action, reason), n, "{action} {reason}: {log:?}");
    }
    let client = app.db().client().await;
    let methods: Vec<String> = client
        .query(
            "SELECT details->>'method' FROM dashboard.activity_log WHERE action = 'login' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        methods,
        ["password", "password", "totp", "backup_code", "password"]
    );
}

#[actix_web::test]
async fn lockout_after_max_failures_refuses_even_the_right_password_until_it_passes() {
    let app = TestApp::with(|c| {
        c.dashboard.lockout_duration = fluxbase_api::config::Dur::secs(60);
    })
    .await;
    app.post(
        "/dashboard/auth/signup",
        json!({"email": ADMIN, "password": PASSWORD}),
    )
    .await;
    let wrong = json!({"email": ADMIN, "password": "wrong-password-123"});
    let right = json!({"email": ADMIN, "password": PASSWORD});

    for _ in 0..4 {
        let got = app.post("/dashboard/auth/login", wrong.clone()).await;
        assert_error(&got, 401, "invalid_credentials", "");
    }
    // The fifth failure locks, for dashboard.lockout_duration.
    let got = app.post("/dashboard/auth/login", wrong.clone()).await;
    assert_error(&got, 423, "account_locked", "try again in");
    let retry: u64 = got
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Locked: the right password is refused too.
    let got = app.post("/dashboard/auth/login", right.clone()).await;
    assert_error(&got, 423, "account_locked", "try again in");

    // The lock is a timestamp: move it into the past instead of waiting it out.
    let client = app.db().client().await;
    let moved = client
        .execute(
            "UPDATE dashboard.users SET locked_until = now() - interval '1 second' \
             WHERE locked_until > now()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1, "the account was locked");
    let got = app.post("/dashboard/auth/login", right.clone()).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let failures: i32 = client
        .query_one("SELECT failed_login_attempts FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 0);

    let log = activity(&app).await;
    assert_eq!(count(&log, "login_failed", "wrong_password"), 5, "{log:?}");
    assert_eq!(
        count(&log, "account_locked", "too_many_failures"),
        1,
        "{log:?}"
    );
    assert_eq!(count(&log, "login_failed", "account_locked"), 1, "{log:?}");
    assert_eq!(count(&log, "login", ""), 1, "{log:?}");

    let text = app.metrics().await;
    for series in [
        r#"fluxbase_auth_attempts_total{result="failure",reason="account_locked"}"#,
        r#"fluxbase_auth_attempts_total{result="failure",reason="wrong_password"}"#,
        r#"fluxbase_auth_attempts_total{result="success",reason="password"}"#,
    ] {
        assert!(text.contains(series), "missing {series}");
    }
}

#[actix_web::test]
async fn admin_routes_take_dashboard_tokens_and_never_app_user_tokens() {
    let app = TestApp::new().await;
    app.call(post(
        "/dashboard/auth/signup",
        json!({"email": ADMIN, "password": PASSWORD}),
    ))
    .await;
    let Reply { body: login, .. } = app
        .call(post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD}),
        ))
        .await;
    let access = login["access_token"].as_str().unwrap().to_string();
    let sub = login["user"]["id"].as_str().unwrap().to_string();
    let restart = || TestRequest::post().uri("/api/v1/admin/realtime/restart");

    // A dashboard token opens the admin API (503: realtime is off in this in-process state).
    let Reply { status, body, .. } = app.call(with_token(restart(), &access)).await;
    assert!(status != 401 && status != 403, "{status} {body}");
    let service = token(json!({"role": "service_role"}));
    let Reply { status, .. } = app.call(with_token(restart(), &service)).await;
    assert!(status != 401 && status != 403, "{status}");
    // service_role has no dashboard account.
    let got = app.call(me(&service)).await;
    assert_error(&got, 403, "forbidden", "dashboard admin");

    // Application users' tokens, and look-alikes without the dashboard audience, never pass.
    let look_alikes = [
        app_user_token(&app).await,
        token(
            json!({"sub": sub, "role": "dashboard_admin", "aud": "authenticated", "session_id": sub}),
        ),
        token(json!({"sub": sub, "role": "dashboard_admin"})),
        token(json!({"sub": sub, "role": "authenticated", "aud": "fluxbase-dashboard"})),
    ];
    for t in &look_alikes {
        let got = app.call(with_token(restart(), t)).await;
        assert_error(&got, 403, "forbidden", "admin");
        let got = app.call(me(t)).await;
        assert_error(&got, 403, "forbidden", "admin");
    }
    // And a dashboard token is not an application user's token.
    let Reply { status, .. } = app
        .call(with_token(
            TestRequest::get().uri("/api/v1/auth/user"),
            &access,
        ))
        .await;
    assert!(status == 401 || status == 403, "{status}");

    // Expired, forged (another secret), alg none, garbage.
    let claims = JwtKeys::hs256(TEST_SECRET.as_bytes())
        .verify(&access)
        .unwrap();
    let mut expired = claims.clone();
    expired.insert("exp".into(), json!(now() - 10));
    let expired = JwtKeys::hs256(TEST_SECRET.as_bytes()).sign(&expired);
    let forged = JwtKeys::hs256(b"another-secret-another-secret-another-secret").sign(&claims);
    let payload = {
        use std::fmt::Write;
        // base64url of the claims, by hand: an unsigned token claiming to be an admin.
        let json = serde_json::to_vec(&claims).unwrap();
        let mut out = String::new();
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for chunk in json.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                let _ = out.write_char(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let got = app.call(me(&expired)).await;
    assert_error(&got, 401, "token_expired", "expired");
    for t in [forged.as_str(), alg_none.as_str(), "garbage", "a.b.c"] {
        let got = app.call(me(t)).await;
        assert_error(&got, 401, "invalid_token", "invalid token");
        let got = app.call(with_token(restart(), t)).await;
        assert_error(&got, 401, "invalid_token", "invalid token");
    }
    // No token at all.
    let got = app.call(TestRequest::get().uri("/dashboard/auth/me")).await;
    assert_error(&got, 401, "unauthorized", "");
}

#[actix_web::test]
async fn bad_input_answers_json_errors_naming_the_field() {
    let app = TestApp::new().await;
    let signup = "/dashboard/auth/signup";
    let login = "/dashboard/auth/login";

    let got = app.call(post_raw(login, r#"{"email":"#)).await;
    assert_error(&got, 400, "bad_request", "invalid JSON body");
    let got = app.call(post_raw(login, "")).await;
    assert_error(&got, 400, "bad_request", "empty");
    let got = app
        .call(post(login, json!({"email": 5, "password": "x"})))
        .await;
    assert_error(&got, 400, "bad_request", "`email`");
    let got = app
        .call(post(
            login,
            json!({"email": ADMIN, "password": ["hunter2"]}),
        ))
        .await;
    assert_error(&got, 400, "bad_request", "`password`");
    assert!(!got.body.to_string().contains("hunter2"));
    let got = app.call(post(login, json!({"email": ADMIN}))).await;
    assert_error(&got, 400, "bad_request", "missing field `password`");
    let got = app
        .call(post(
            signup,
            json!({"email": ADMIN, "password": PASSWORD, "role": "superuser"}),
        ))
        .await;
    assert_error(&got, 400, "bad_request", "unknown field `role`");

    // Rules on well-formed input name the field.
    let got = app
        .call(post(
            signup,
            json!({"email": "' OR '1'='1", "password": PASSWORD}),
        ))
        .await;
    assert_error(&got, 422, "validation_failed", "`email`");
    let got = app
        .post(
            signup,
            json!({"email": "x'); DROP TABLE dashboard.users;--@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 422, "validation_failed", "`email`");
    let got = app
        .call(post(signup, json!({"email": ADMIN, "password": "short"})))
        .await;
    assert_error(
        &got,
        422,
        "weak_password",
        "`password`: must be at least 12 characters",
    );
    let got = app
        .call(post(
            signup,
            json!({"email": ADMIN, "password": "x".repeat(300)}),
        ))
        .await;
    assert_error(
        &got,
        422,
        "validation_failed",
        "`password`: must be at most 256 characters",
    );
    let got = app
        .call(post(
            signup,
            json!({"email": ADMIN, "password": PASSWORD, "full_name": "n".repeat(201)}),
        ))
        .await;
    assert_error(&got, 422, "validation_failed", "`full_name`");
    let got = app
        .call(post(
            login,
            json!({"email": "' OR 1=1 --", "password": PASSWORD}),
        ))
        .await;
    assert_error(&got, 422, "validation_failed", "`email`");

    // A quote in a valid address is only data.
    let odd = "robert'--@example.com";
    let Reply { status, body, .. } = app
        .call(post(signup, json!({"email": odd, "password": PASSWORD})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], odd);
    let got = app
        .call(post(
            login,
            json!({"email": "x'OR'1'='1'--@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_error(&got, 401, "invalid_credentials", "");
    let Reply { status, .. } = app
        .call(post(login, json!({"email": odd, "password": PASSWORD})))
        .await;
    assert_eq!(status, 200);
    let client = app.db().client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // Refresh and 2FA inputs.
    let got = app
        .call(post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": "' OR 1=1 --"}),
        ))
        .await;
    assert_error(
        &got,
        401,
        "invalid_refresh_token",
        "refresh token not found",
    );
    let got = app
        .call(post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": "A".repeat(43)}),
        ))
        .await;
    assert_error(
        &got,
        401,
        "invalid_refresh_token",
        "refresh token not found",
    );
    let got = app
        .call(post("/dashboard/auth/refresh", json!({"refresh_token": 7})))
        .await;
    assert_error(&got, 400, "bad_request", "`refresh_token`");
    let got = app
        .call(post(
            "/dashboard/auth/2fa/verify",
            json!({"mfa_token": "x", "code": "123456"}),
        ))
        .await;
    assert_error(&got, 401, "unauthorized", "mfa_token");
    let got = app
        .call(post(
            "/dashboard/auth/2fa/verify",
            json!({"code": "123456"}),
        ))
        .await;
    assert_error(&got, 400, "bad_request", "missing field `mfa_token`");

    // Wrong methods and unknown paths answer JSON too.
    let got = app.call(TestRequest::get().uri(login)).await;
    assert_error(&got, 405, "method_not_allowed", "");
    let got = app
        .call(TestRequest::get().uri("/dashboard/auth/nope"))
        .await;
    assert_error(&got, 404, "not_found", "");
}
