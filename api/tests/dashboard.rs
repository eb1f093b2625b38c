//! Dashboard administrators (`/dashboard/auth/*`) in-process over a real database: first
//! admin signup, login, refresh rotation, logout, TOTP 2FA with replay protection and
//! backup codes, lockout, the activity log, the admin-token boundary, and bad input.

use std::time::Duration;

use actix_web::test::{TestRequest, call_service, init_service, read_body};
use fluxbase_api::config::{Config, Dur};
use fluxbase_api::http::{AppState, build_app};
use fluxbase_auth::JwtKeys;
use fluxbase_auth::totp;
use fluxbase_migrations::Db;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};

use crate::support::{TEST_SECRET, token};

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "SecurePassword123!";

/// App state with a JWT secret and without the per-IP/login rate limits (the lockout is
/// what these tests exercise, not the limiter in front of it).
fn state(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut config = Config::default();
    config.database.url = Some(db.url());
    config.database.connect_timeout = Dur::secs(2);
    config.auth.jwt_secret = Some(TEST_SECRET.into());
    config.security.rate_limit.enabled = false;
    tweak(&mut config);
    let pool = Db::new(
        fluxbase_migrations::pool::parse_url(&db.url()).unwrap(),
        config.database.pool_settings(),
    );
    AppState::new(config, pool)
}

/// Sends a request and returns (status, JSON body or Null when empty).
macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = call_service(&$app, $req.to_request()).await;
        let status = res.status().as_u16();
        let bytes = read_body(res).await;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, body)
    }};
}

fn post(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

fn post_raw(uri: &str, raw: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(raw.to_string())
}

fn with_token(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("authorization", format!("Bearer {token}")))
}

fn me(token: &str) -> TestRequest {
    with_token(TestRequest::get().uri("/dashboard/auth/me"), token)
}

/// Asserts an error response: status, code, and a message containing `needle`.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "message {message:?} lacks {needle:?}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The (action, success, reason) of every activity-log row, oldest first.
async fn activity(db: &TestDb) -> Vec<(String, bool, String)> {
    let client = db.client().await;
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

/// An application user's access token, as the app-user auth issues them.
fn app_user_token() -> String {
    token(json!({
        "sub": "6f1c2a3e-1111-4222-8333-944455556666",
        "role": "authenticated",
        "aud": "authenticated",
        "session_id": "6f1c2a3e-2222-4222-8333-944455556666",
    }))
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
    let db = TestDb::new().await;
    let app = init_service(build_app(state(&db, |_| {}))).await;

    // The runbook's call.
    let (status, body) = call!(
        app,
        post(
            "/dashboard/auth/signup",
            json!({"email": "Admin@Example.com", "password": PASSWORD, "full_name": "Admin User"})
        )
    );
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
    let got = call!(app, post("/dashboard/auth/signup", second.clone()));
    assert_error(&got, 401, "unauthorized", "admin");
    let got = call!(
        app,
        with_token(
            post("/dashboard/auth/signup", second.clone()),
            &app_user_token()
        )
    );
    assert_error(&got, 403, "forbidden", "admin");

    // An admin creates it.
    let (status, login) = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    assert_eq!(status, 200, "{login}");
    let access = login["access_token"].as_str().unwrap();
    let (status, body) = call!(
        app,
        with_token(post("/dashboard/auth/signup", second.clone()), access)
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "second@example.com");

    // The same email in another case is taken.
    let got = call!(
        app,
        with_token(
            post(
                "/dashboard/auth/signup",
                json!({"email": "SECOND@example.com", "password": PASSWORD})
            ),
            access
        )
    );
    assert_error(&got, 409, "user_already_exists", "email");

    // service_role (automation) may create admins too.
    let service = token(json!({"role": "service_role"}));
    let (status, _) = call!(
        app,
        with_token(
            post(
                "/dashboard/auth/signup",
                json!({"email": "bot@example.com", "password": PASSWORD})
            ),
            &service
        )
    );
    assert_eq!(status, 201);

    let log = activity(&db).await;
    assert_eq!(
        log.iter().filter(|(a, s, _)| a == "signup" && *s).count(),
        3,
        "{log:?}"
    );
    let client = db.client().await;
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
    let db = TestDb::new().await;
    let app = init_service(build_app(state(&db, |_| {}))).await;
    let (status, _) = call!(
        app,
        post(
            "/dashboard/auth/signup",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    assert_eq!(status, 201);

    // Wrong password and unknown email: one answer.
    let wrong = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": "not-the-password"})
        )
    );
    assert_error(
        &wrong,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    let unknown = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": "nobody@example.com", "password": PASSWORD})
        )
    );
    assert_eq!(unknown, wrong);

    let (status, login) = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
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

    let (status, body) = call!(app, me(&access));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], ADMIN);

    // Refresh rotates: a new token each time; the spent one, presented again, revokes the
    // whole session (its child stops working too).
    let first = login["refresh_token"].as_str().unwrap().to_string();
    let (status, refreshed) = call!(
        app,
        post("/dashboard/auth/refresh", json!({"refresh_token": first}))
    );
    assert_eq!(status, 200, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let (status, _) = call!(app, me(refreshed["access_token"].as_str().unwrap()));
    assert_eq!(status, 200);
    let got = call!(
        app,
        post("/dashboard/auth/refresh", json!({"refresh_token": first}))
    );
    assert_error(&got, 401, "invalid_refresh_token", "already used");
    let got = call!(
        app,
        post("/dashboard/auth/refresh", json!({"refresh_token": second}))
    );
    assert_error(&got, 401, "invalid_refresh_token", "session has ended");
    // The revoked session's access token no longer opens the dashboard routes.
    let got = call!(app, me(&access));
    assert_error(&got, 401, "session_not_found", "log in again");

    // Logout ends the session at once.
    let (_, login) = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    let access = login["access_token"].as_str().unwrap();
    let (status, body) = call!(
        app,
        with_token(TestRequest::post().uri("/dashboard/auth/logout"), access)
    );
    assert_eq!(status, 204, "{body}");
    let got = call!(app, me(access));
    assert_error(&got, 401, "session_not_found", "log in again");
    let got = call!(
        app,
        post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": login["refresh_token"]})
        )
    );
    assert_error(&got, 401, "invalid_refresh_token", "");
    let got = call!(app, TestRequest::post().uri("/dashboard/auth/logout"));
    assert_error(&got, 401, "unauthorized", "");

    let log = activity(&db).await;
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
    let client = db.client().await;
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
    let (status, body) = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": "Reset-by-SQL-2024"})
        )
    );
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
    let db = TestDb::new().await;
    let app = init_service(build_app(state(&db, |_| {}))).await;
    call!(
        app,
        post(
            "/dashboard/auth/signup",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    let login_body = json!({"email": ADMIN, "password": PASSWORD});
    let (_, login) = call!(app, post("/dashboard/auth/login", login_body.clone()));
    let access = login["access_token"].as_str().unwrap().to_string();
    let client = db.client().await;

    // Not enabled yet: nothing to disable, nothing to enable before setup.
    let got = call!(
        app,
        with_token(
            post("/dashboard/auth/2fa/enable", json!({"code": "123456"})),
            &access
        )
    );
    assert_error(&got, 409, "invalid_2fa_state", "setup");
    let got = call!(
        app,
        with_token(
            post("/dashboard/auth/2fa/disable", json!({"password": PASSWORD})),
            &access
        )
    );
    assert_error(&got, 409, "invalid_2fa_state", "not enabled");

    let (status, setup) = call!(
        app,
        with_token(
            TestRequest::post().uri("/dashboard/auth/2fa/setup"),
            &access
        )
    );
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
    let (_, body) = call!(app, post("/dashboard/auth/login", login_body.clone()));
    assert!(body["access_token"].is_string(), "{body}");

    // Enable: a malformed code, a wrong code, then the right one.
    let got = call!(
        app,
        with_token(
            post("/dashboard/auth/2fa/enable", json!({"code": "12ab"})),
            &access
        )
    );
    assert_error(&got, 422, "validation_failed", "code:");
    let got = call!(
        app,
        with_token(
            post(
                "/dashboard/auth/2fa/enable",
                json!({"code": wrong_code(&secret)})
            ),
            &access
        )
    );
    assert_error(&got, 401, "invalid_2fa_code", "code:");
    let t = now();
    let code_now = totp::code_at(&secret, t).unwrap();
    let (status, enabled) = call!(
        app,
        with_token(
            post("/dashboard/auth/2fa/enable", json!({"code": code_now})),
            &access
        )
    );
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
    let got = call!(
        app,
        with_token(
            TestRequest::post().uri("/dashboard/auth/2fa/setup"),
            &access
        )
    );
    assert_error(&got, 409, "invalid_2fa_state", "already enabled");
    let (_, body) = call!(app, me(&access));
    assert_eq!(body["user"]["totp_enabled"], true);
    assert_eq!(body["user"]["backup_codes_remaining"], 10);

    // Login now stops at the second step; the mfa_token opens nothing else.
    let (status, challenge) = call!(app, post("/dashboard/auth/login", login_body.clone()));
    assert_eq!(status, 200, "{challenge}");
    assert_eq!(challenge["requires_2fa"], true);
    assert!(challenge.get("access_token").is_none(), "{challenge}");
    let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
    let got = call!(app, me(&mfa));
    assert_error(&got, 403, "forbidden", "admin");
    let (status, _) = call!(
        app,
        with_token(
            TestRequest::post().uri("/api/v1/admin/realtime/restart"),
            &mfa
        )
    );
    assert_eq!(status, 403);

    let verify = |code: &str, mfa: &str| {
        post(
            "/dashboard/auth/2fa/verify",
            json!({"mfa_token": mfa, "code": code}),
        )
    };
    // The code used to enable cannot be replayed in its step.
    let got = call!(app, verify(&code_now, &mfa));
    assert_error(&got, 401, "invalid_2fa_code", "already used");
    // The next step's code works (within the skew), once.
    let code_next = totp::code_at(&secret, t + 30).unwrap();
    let (status, tokens) = call!(app, verify(&code_next, &mfa));
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string());
    let (_, challenge) = call!(app, post("/dashboard/auth/login", login_body.clone()));
    let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
    let got = call!(app, verify(&code_next, &mfa));
    assert_error(&got, 401, "invalid_2fa_code", "already used");
    let got = call!(app, verify("12345", &mfa));
    assert_error(&got, 422, "validation_failed", "code:");
    let got = call!(
        app,
        post(
            "/dashboard/auth/2fa/verify",
            json!({"mfa_token": mfa, "code": 123456})
        )
    );
    assert_error(&got, 400, "bad_request", "`code`");
    // Another token in place of the mfa_token is refused.
    let got = call!(app, verify(&code_next, &access));
    assert_error(&got, 401, "unauthorized", "mfa_token");
    let got = call!(app, verify(&code_next, "not.a.token"));
    assert_error(&got, 401, "unauthorized", "mfa_token");

    // A backup code (any case, with or without the dash) works once.
    let (status, body) = call!(app, verify(&backup[0].to_uppercase(), &mfa));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["backup_codes_remaining"], 9);
    let (_, challenge) = call!(app, post("/dashboard/auth/login", login_body.clone()));
    let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
    let got = call!(app, verify(&backup[0].replace('-', ""), &mfa));
    assert_error(&got, 401, "invalid_2fa_code", "already used");

    // Disable: a proof is required and must be right.
    let got = call!(
        app,
        with_token(post("/dashboard/auth/2fa/disable", json!({})), &access)
    );
    assert_error(&got, 422, "validation_failed", "password or code");
    let got = call!(
        app,
        with_token(
            post(
                "/dashboard/auth/2fa/disable",
                json!({"password": "wrong-password!"})
            ),
            &access
        )
    );
    assert_error(&got, 401, "invalid_credentials", "password");
    let got = call!(
        app,
        with_token(
            post("/dashboard/auth/2fa/disable", json!({"code": backup[0]})),
            &access
        )
    );
    assert_error(&got, 401, "invalid_2fa_code", "code");
    let (status, body) = call!(
        app,
        with_token(
            post("/dashboard/auth/2fa/disable", json!({"code": backup[1]})),
            &access
        )
    );
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
    let (_, body) = call!(app, post("/dashboard/auth/login", login_body.clone()));
    assert!(body["access_token"].is_string(), "{body}");

    let log = activity(&db).await;
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
    let client = db.client().await;
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
    let db = TestDb::new().await;
    let app = init_service(build_app(state(&db, |c| {
        c.dashboard.lockout_duration = Dur(Duration::from_secs(2));
    })))
    .await;
    call!(
        app,
        post(
            "/dashboard/auth/signup",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    let wrong = json!({"email": ADMIN, "password": "wrong-password-123"});
    let right = json!({"email": ADMIN, "password": PASSWORD});

    for _ in 0..4 {
        let got = call!(app, post("/dashboard/auth/login", wrong.clone()));
        assert_error(&got, 401, "invalid_credentials", "");
    }
    // The fifth failure locks.
    let res = call_service(
        &app,
        post("/dashboard/auth/login", wrong.clone()).to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 423);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = serde_json::from_slice(&read_body(res).await).unwrap();
    assert_error(&(423, body), 423, "account_locked", "try again in");
    // Locked: the right password is refused too.
    let got = call!(app, post("/dashboard/auth/login", right.clone()));
    assert_error(&got, 423, "account_locked", "try again in");

    // The lock is a timestamp: wait for it (2 s, a timer, not a synchronisation guess).
    let client = db.client().await;
    let left: f64 = client
        .query_one(
            "SELECT greatest(extract(epoch FROM locked_until - now())::float8, 0) FROM dashboard.users",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(left <= 2.0, "{left}");
    tokio::time::sleep(Duration::from_secs_f64(left + 0.05)).await;
    let (status, body) = call!(app, post("/dashboard/auth/login", right.clone()));
    assert_eq!(status, 200, "{body}");
    let failures: i32 = client
        .query_one("SELECT failed_login_attempts FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 0);

    let log = activity(&db).await;
    assert_eq!(count(&log, "login_failed", "wrong_password"), 5, "{log:?}");
    assert_eq!(
        count(&log, "account_locked", "too_many_failures"),
        1,
        "{log:?}"
    );
    assert_eq!(count(&log, "login_failed", "account_locked"), 1, "{log:?}");
    assert_eq!(count(&log, "login", ""), 1, "{log:?}");

    let (_, _) = call!(app, TestRequest::get().uri("/health"));
    let res = call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(read_body(res).await.to_vec()).unwrap();
    for series in [
        r#"fluxbase_auth_attempts_total{result="failure",reason="account_locked"}"#,
        r#"fluxbase_auth_attempts_total{result="failure",reason="invalid_credentials"}"#,
        r#"fluxbase_auth_attempts_total{result="success",reason="password"}"#,
    ] {
        assert!(text.contains(series), "missing {series}");
    }
}

#[actix_web::test]
async fn admin_routes_take_dashboard_tokens_and_never_app_user_tokens() {
    let db = TestDb::new().await;
    let app = init_service(build_app(state(&db, |_| {}))).await;
    call!(
        app,
        post(
            "/dashboard/auth/signup",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    let (_, login) = call!(
        app,
        post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD})
        )
    );
    let access = login["access_token"].as_str().unwrap().to_string();
    let sub = login["user"]["id"].as_str().unwrap().to_string();
    let restart = || TestRequest::post().uri("/api/v1/admin/realtime/restart");

    // A dashboard token opens the admin API (503: realtime is off in this in-process state).
    let (status, body) = call!(app, with_token(restart(), &access));
    assert!(status != 401 && status != 403, "{status} {body}");
    let service = token(json!({"role": "service_role"}));
    let (status, _) = call!(app, with_token(restart(), &service));
    assert!(status != 401 && status != 403, "{status}");
    // service_role has no dashboard account.
    let got = call!(app, me(&service));
    assert_error(&got, 403, "forbidden", "dashboard admin");

    // Application users' tokens, and look-alikes without the dashboard audience, never pass.
    let look_alikes = [
        app_user_token(),
        token(
            json!({"sub": sub, "role": "dashboard_admin", "aud": "authenticated", "session_id": sub}),
        ),
        token(json!({"sub": sub, "role": "dashboard_admin"})),
        token(json!({"sub": sub, "role": "authenticated", "aud": "fluxbase-dashboard"})),
    ];
    for t in &look_alikes {
        let got = call!(app, with_token(restart(), t));
        assert_error(&got, 403, "forbidden", "admin");
        let got = call!(app, me(t));
        assert_error(&got, 403, "forbidden", "admin");
    }
    // And a dashboard token is not an application user's token.
    let (status, _) = call!(
        app,
        with_token(TestRequest::get().uri("/api/v1/auth/user"), &access)
    );
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
    let got = call!(app, me(&expired));
    assert_error(&got, 401, "token_expired", "expired");
    for t in [forged.as_str(), alg_none.as_str(), "garbage", "a.b.c"] {
        let got = call!(app, me(t));
        assert_error(&got, 401, "invalid_token", "invalid token");
        let got = call!(app, with_token(restart(), t));
        assert_error(&got, 401, "invalid_token", "invalid token");
    }
    // No token at all.
    let got = call!(app, TestRequest::get().uri("/dashboard/auth/me"));
    assert_error(&got, 401, "unauthorized", "");
}

#[actix_web::test]
async fn bad_input_answers_json_errors_naming_the_field() {
    let db = TestDb::new().await;
    let app = init_service(build_app(state(&db, |_| {}))).await;
    let signup = "/dashboard/auth/signup";
    let login = "/dashboard/auth/login";

    let got = call!(app, post_raw(login, r#"{"email":"#));
    assert_error(&got, 400, "bad_request", "invalid JSON body");
    let got = call!(app, post_raw(login, ""));
    assert_error(&got, 400, "bad_request", "empty");
    let got = call!(app, post(login, json!({"email": 5, "password": "x"})));
    assert_error(&got, 400, "bad_request", "`email`");
    let got = call!(
        app,
        post(login, json!({"email": ADMIN, "password": ["hunter2"]}))
    );
    assert_error(&got, 400, "bad_request", "`password`");
    assert!(!got.1.to_string().contains("hunter2"));
    let got = call!(app, post(login, json!({"email": ADMIN})));
    assert_error(&got, 400, "bad_request", "missing field `password`");
    let got = call!(
        app,
        post(
            signup,
            json!({"email": ADMIN, "password": PASSWORD, "role": "superuser"})
        )
    );
    assert_error(&got, 400, "bad_request", "unknown field `role`");

    // Rules on well-formed input name the field.
    let got = call!(
        app,
        post(
            signup,
            json!({"email": "' OR '1'='1", "password": PASSWORD})
        )
    );
    assert_error(&got, 422, "validation_failed", "email:");
    let got = call!(
        app,
        post(
            signup,
            json!({"email": "x'); DROP TABLE dashboard.users;--@example.com", "password": PASSWORD})
        )
    );
    assert_error(&got, 422, "validation_failed", "email:");
    let got = call!(
        app,
        post(signup, json!({"email": ADMIN, "password": "short"}))
    );
    assert_error(&got, 422, "weak_password", "password: must be at least 12");
    let got = call!(
        app,
        post(signup, json!({"email": ADMIN, "password": "x".repeat(300)}))
    );
    assert_error(&got, 422, "weak_password", "password: must be at most 256");
    let got = call!(
        app,
        post(
            signup,
            json!({"email": ADMIN, "password": PASSWORD, "full_name": "n".repeat(201)})
        )
    );
    assert_error(&got, 422, "validation_failed", "full_name:");
    let got = call!(
        app,
        post(login, json!({"email": "' OR 1=1 --", "password": PASSWORD}))
    );
    assert_error(&got, 422, "validation_failed", "email:");

    // A quote in a valid address is only data.
    let odd = "robert'--@example.com";
    let (status, body) = call!(
        app,
        post(signup, json!({"email": odd, "password": PASSWORD}))
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], odd);
    let got = call!(
        app,
        post(
            login,
            json!({"email": "x'OR'1'='1'--@example.com", "password": PASSWORD})
        )
    );
    assert_error(&got, 401, "invalid_credentials", "");
    let (status, _) = call!(
        app,
        post(login, json!({"email": odd, "password": PASSWORD}))
    );
    assert_eq!(status, 200);
    let client = db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // Refresh and 2FA inputs.
    let got = call!(
        app,
        post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": "' OR 1=1 --"})
        )
    );
    assert_error(&got, 401, "invalid_refresh_token", "refresh_token");
    let got = call!(
        app,
        post(
            "/dashboard/auth/refresh",
            json!({"refresh_token": "A".repeat(43)})
        )
    );
    assert_error(&got, 401, "invalid_refresh_token", "refresh_token");
    let got = call!(
        app,
        post("/dashboard/auth/refresh", json!({"refresh_token": 7}))
    );
    assert_error(&got, 400, "bad_request", "`refresh_token`");
    let got = call!(
        app,
        post(
            "/dashboard/auth/2fa/verify",
            json!({"mfa_token": "x", "code": "123456"})
        )
    );
    assert_error(&got, 401, "unauthorized", "mfa_token");
    let got = call!(
        app,
        post("/dashboard/auth/2fa/verify", json!({"code": "123456"}))
    );
    assert_error(&got, 400, "bad_request", "missing field `mfa_token`");

    // Wrong methods and unknown paths answer JSON too.
    let got = call!(app, TestRequest::get().uri(login));
    assert_error(&got, 405, "method_not_allowed", "");
    let got = call!(app, TestRequest::get().uri("/dashboard/auth/nope"));
    assert_error(&got, 404, "not_found", "");
}
