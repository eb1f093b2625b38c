//! Application-user auth (`/api/v1/auth/*`) and service keys (`/api/v1/admin/service-keys`)
//! in-process over a real database, the runbook's two SQL procedures, every bad input of
//! issue 6, and `fluxbase keys` as a user runs it.

use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use fluxbase_api::config::{Config, Dur};
use fluxbase_api::db::Db;
use fluxbase_api::http::{AppState, build_app};
use fluxbase_auth::JwtKeys;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TEST_SECRET, TempDir, fluxbase, token};

/// State with the test secret and the login limiter off (these tests sign in often), then
/// `tweak`.
fn auth_state(url: &str, tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut config = Config::default();
    config.database.url = Some(url.to_string());
    config.database.connect_timeout = Dur::secs(2);
    config.auth.jwt_secret = Some(TEST_SECRET.to_string());
    config.security.rate_limit.enabled = false;
    tweak(&mut config);
    let db = Db::new(Db::parse_url(url).unwrap(), config.database.clone());
    AppState::new(config, db)
}

fn keys() -> JwtKeys {
    JwtKeys::hs256(TEST_SECRET.as_bytes())
}

async fn body_of<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = read_body(res).await;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value)
}

/// Sends `req` and returns status and JSON body.
async fn send<S, B>(app: &S, req: TestRequest) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    body_of(call_service(app, req.to_request()).await).await
}

fn post(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_payload(body.to_string())
}

fn raw(method: actix_web::http::Method, uri: &str, body: &str) -> TestRequest {
    TestRequest::default()
        .method(method)
        .uri(uri)
        .set_payload(body.to_string())
}

fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {token}")))
}

/// Asserts an error: status, code, and that the message mentions `needle`.
#[track_caller]
fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, needle: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    let message = got.1["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {}", got.1));
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert_eq!(got.1.as_object().unwrap().len(), 1, "{}", got.1);
    assert_eq!(got.1["error"].as_object().unwrap().len(), 2, "{}", got.1);
}

fn creds(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

async fn audit_actions(db: &TestDb, actor: Uuid) -> Vec<String> {
    let client = db.client().await;
    client
        .query(
            "SELECT action FROM auth.audit_log_entries WHERE actor_id = $1 ORDER BY id",
            &[&actor],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn metrics_text<S, B>(app: &S) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = call_service(app, TestRequest::get().uri("/metrics").to_request()).await;
    String::from_utf8(read_body(res).await.to_vec()).unwrap()
}

fn has_attempt(metrics: &str, result: &str, reason: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("fluxbase_auth_attempts_total{")
            && l.contains(&format!("result=\"{result}\""))
            && l.contains(&format!("reason=\"{reason}\""))
    })
}

#[actix_web::test]
async fn signup_signin_user_refresh_rotation_and_signout() {
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |_| {}))).await;

    // Signup: a session at once, the email lower-cased, metadata kept, no hash anywhere.
    let signup = send(
        &app,
        post(
            "/api/v1/auth/signup",
            json!({"email": " Ada@Example.COM ", "password": "correct horse", "data": {"name": "Ada"}}),
        ),
    )
    .await;
    assert_eq!(signup.0, StatusCode::OK, "{}", signup.1);
    let s = &signup.1;
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
    let again = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("ADA@example.com", "another password"),
        ),
    )
    .await;
    assert_error(&again, 409, "user_already_exists", "`email`");

    // Wrong password and unknown email: one answer.
    let wrong = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("ada@example.com", "wrong password"),
        ),
    )
    .await;
    let unknown = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("nobody@example.com", "wrong password"),
        ),
    )
    .await;
    assert_error(
        &wrong,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    assert_eq!(wrong, unknown);

    // Signin (any case), then the user.
    let signin = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("ADA@example.com", "correct horse"),
        ),
    )
    .await;
    assert_eq!(signin.0, StatusCode::OK, "{}", signin.1);
    assert_eq!(signin.1["user"]["id"], user["id"]);
    let access = signin.1["access_token"].as_str().unwrap().to_string();
    let me = send(
        &app,
        bearer(TestRequest::get().uri("/api/v1/auth/user"), &access),
    )
    .await;
    assert_eq!(me.0, StatusCode::OK, "{}", me.1);
    assert_eq!(me.1["email"], "ada@example.com");
    assert!(!me.1.to_string().contains("encrypted_password"));

    // PATCH: metadata merges, email changes (and is lower-cased).
    let patched = send(
        &app,
        bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"data":{"theme":"dark"}}"#,
            ),
            &access,
        ),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    assert_eq!(
        patched.1["user_metadata"],
        json!({"name": "Ada", "theme": "dark"})
    );
    let patched = send(
        &app,
        bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"email":"Ada.Lovelace@example.com"}"#,
            ),
            &access,
        ),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    assert_eq!(patched.1["email"], "ada.lovelace@example.com");

    // Another user cannot take that email by PATCH.
    let bob = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("bob@example.com", "bob's password"),
        ),
    )
    .await;
    let bob_access = bob.1["access_token"].as_str().unwrap().to_string();
    let taken = send(
        &app,
        bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"email":"ADA.LOVELACE@example.com"}"#,
            ),
            &bob_access,
        ),
    )
    .await;
    assert_error(&taken, 409, "user_already_exists", "`email`");

    // A new password: the old one stops, the new one signs in, other sessions end.
    let signup_refresh = s["refresh_token"].as_str().unwrap().to_string();
    let patched = send(
        &app,
        bearer(
            raw(
                actix_web::http::Method::PATCH,
                "/api/v1/auth/user",
                r#"{"password":"new battery staple"}"#,
            ),
            &access,
        ),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    let old = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("ada.lovelace@example.com", "correct horse"),
        ),
    )
    .await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    let other = send(
        &app,
        post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": signup_refresh}),
        ),
    )
    .await;
    assert_error(&other, 401, "invalid_refresh_token", "not found");
    let fresh = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("ada.lovelace@example.com", "new battery staple"),
        ),
    )
    .await;
    assert_eq!(fresh.0, StatusCode::OK, "{}", fresh.1);

    // Refresh rotates: R1 → R2; R1 again is a replay that revokes the family, so R2 fails.
    let r1 = fresh.1["refresh_token"].as_str().unwrap().to_string();
    let fresh_access = fresh.1["access_token"].as_str().unwrap().to_string();
    let rotated = send(
        &app,
        post("/api/v1/auth/refresh", json!({"refresh_token": r1})),
    )
    .await;
    assert_eq!(rotated.0, StatusCode::OK, "{}", rotated.1);
    let r2 = rotated.1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(rotated.1["user"]["email"], "ada.lovelace@example.com");
    let rotated_claims = keys()
        .verify(rotated.1["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        rotated_claims["session_id"],
        keys().verify(&fresh_access).unwrap()["session_id"]
    );
    let replay = send(
        &app,
        post("/api/v1/auth/refresh", json!({"refresh_token": r1})),
    )
    .await;
    assert_error(&replay, 401, "invalid_refresh_token", "already used");
    let after = send(
        &app,
        post("/api/v1/auth/refresh", json!({"refresh_token": r2})),
    )
    .await;
    assert_error(&after, 401, "invalid_refresh_token", "not found or revoked");
    // The revoked session's access token no longer reads the user.
    let gone = send(
        &app,
        bearer(TestRequest::get().uri("/api/v1/auth/user"), &fresh_access),
    )
    .await;
    assert_error(&gone, 401, "session_not_found", "sign in again");

    // Signout ends the session: its refresh token and its access token stop.
    let last = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("ada.lovelace@example.com", "new battery staple"),
        ),
    )
    .await;
    let last_access = last.1["access_token"].as_str().unwrap().to_string();
    let last_refresh = last.1["refresh_token"].as_str().unwrap().to_string();
    let out = send(
        &app,
        bearer(
            TestRequest::post().uri("/api/v1/auth/signout"),
            &last_access,
        ),
    )
    .await;
    assert_eq!(out.0, StatusCode::NO_CONTENT, "{}", out.1);
    let refused = send(
        &app,
        post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": last_refresh}),
        ),
    )
    .await;
    assert_error(
        &refused,
        401,
        "invalid_refresh_token",
        "not found or revoked",
    );
    let gone = send(
        &app,
        bearer(TestRequest::get().uri("/api/v1/auth/user"), &last_access),
    )
    .await;
    assert_error(&gone, 401, "session_not_found", "sign in again");

    // The audit trail, in order, with the reasons; never a password or token.
    let actions = audit_actions(&db, user_id).await;
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
    let client = db.client().await;
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
    let metrics = metrics_text(&app).await;
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
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |_| {}))).await;
    let signup = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("reset@example.com", "original password"),
        ),
    )
    .await;
    let user_id: Uuid = signup.1["user"]["id"].as_str().unwrap().parse().unwrap();
    let client = db.client().await;

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

    let old = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("reset@example.com", "original password"),
        ),
    )
    .await;
    assert_error(
        &old,
        401,
        "invalid_credentials",
        "invalid email or password",
    );
    let signin = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("reset@example.com", "temporary-password"),
        ),
    )
    .await;
    assert_eq!(signin.0, StatusCode::OK, "{}", signin.1);

    let upgraded: String = client
        .query_one(
            "SELECT encrypted_password FROM auth.users WHERE id = $1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    let again = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("reset@example.com", "temporary-password"),
        ),
    )
    .await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);
    assert!(has_attempt(
        &metrics_text(&app).await,
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
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |_| {}))).await;
    let a = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("victim@example.com", "victim password"),
        ),
    )
    .await;
    let b = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("victim@example.com", "victim password"),
        ),
    )
    .await;
    let other = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("bystander@example.com", "bystander password"),
        ),
    )
    .await;
    let user_id: Uuid = a.1["user"]["id"].as_str().unwrap().parse().unwrap();
    let client = db.client().await;

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

    for session in [&a.1, &b.1] {
        let refused = send(
            &app,
            post(
                "/api/v1/auth/refresh",
                json!({"refresh_token": session["refresh_token"]}),
            ),
        )
        .await;
        assert_error(
            &refused,
            401,
            "invalid_refresh_token",
            "not found or revoked",
        );
        let me = send(
            &app,
            bearer(
                TestRequest::get().uri("/api/v1/auth/user"),
                session["access_token"].as_str().unwrap(),
            ),
        )
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
    let fine = send(
        &app,
        post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": other.1["refresh_token"]}),
        ),
    )
    .await;
    assert_eq!(fine.0, StatusCode::OK, "{}", fine.1);
    // Signing in again works.
    let back = send(
        &app,
        post(
            "/api/v1/auth/signin",
            creds("victim@example.com", "victim password"),
        ),
    )
    .await;
    assert_eq!(back.0, StatusCode::OK, "{}", back.1);
}

#[actix_web::test]
async fn bad_input_is_refused_naming_the_field() {
    use actix_web::http::Method;
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |c| {
        c.auth.password_min_length = 10
    })))
    .await;
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
        (signup, json!({"email": "a@example.com", "password": "p".repeat(5000)}).to_string(), 422, "validation_failed", "`password`: must be at most 1024 bytes"),
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
        let got = send(&app, raw(Method::POST, uri, &body)).await;
        assert_error(&got, status, code, needle);
        let text = got.1.to_string();
        assert!(
            !text.contains("SELECT") && !text.contains("INSERT"),
            "{text}"
        );
    }

    // Values are never echoed back (a password sent with the wrong type).
    let got = send(
        &app,
        raw(
            Method::POST,
            signup,
            r#"{"email":"a@example.com","password":["hunter2-secret"]}"#,
        ),
    )
    .await;
    assert!(!got.1.to_string().contains("hunter2"), "{}", got.1);

    // A huge body is refused before it is read, by Content-Length or by streaming.
    let huge = json!({"email": "a@example.com", "password": "x".repeat(200_000)}).to_string();
    let got = send(&app, raw(Method::POST, signup, &huge)).await;
    assert_error(&got, 413, "payload_too_large", "larger than");

    // A legal address that looks like SQL is stored literally, and the table survives.
    let odd = "o'brien--@example.com";
    let got = send(&app, post(signup, creds(odd, "long enough password"))).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["user"]["email"], odd);
    let client = db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM auth.users WHERE email = $1", &[&odd])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let access = got.1["access_token"].as_str().unwrap().to_string();

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
        let got = send(
            &app,
            bearer(raw(Method::PATCH, "/api/v1/auth/user", body), &access),
        )
        .await;
        assert_error(&got, status, code, needle);
    }
    let got = send(
        &app,
        bearer(
            TestRequest::post().uri("/api/v1/auth/signout?scope=everything"),
            &access,
        ),
    )
    .await;
    assert_error(&got, 400, "bad_request", "`scope`");

    // Wrong methods.
    let got = send(&app, TestRequest::get().uri(signup)).await;
    assert_error(&got, 405, "method_not_allowed", "GET is not allowed");
    let got = send(&app, TestRequest::delete().uri("/api/v1/auth/user")).await;
    assert_error(&got, 405, "method_not_allowed", "DELETE");
}

#[actix_web::test]
async fn only_app_user_access_tokens_open_the_user_endpoints() {
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |_| {}))).await;
    let signup = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("eve@example.com", "eve's password"),
        ),
    )
    .await;
    let real = keys()
        .verify(signup.1["access_token"].as_str().unwrap())
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
        signup.1["access_token"]
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
        ("forged", &forged, "unauthorized", "bad signature"),
        ("alg none", &none, "unauthorized", "invalid token"),
        ("garbage", "not.a.token", "unauthorized", "invalid token"),
        (
            "admin audience",
            &admin,
            "unauthorized",
            "not an application user",
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
            let got = send(&app, bearer(req, token)).await;
            assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{name}: {}", got.1);
            assert_eq!(got.1["error"]["code"], code, "{name}: {}", got.1);
            assert!(
                got.1["error"]["message"].as_str().unwrap().contains(needle),
                "{name}: {}",
                got.1
            );
        }
    }
    let got = send(&app, TestRequest::get().uri("/api/v1/auth/user")).await;
    assert_error(&got, 401, "unauthorized", "no access token");
    let got = send(
        &app,
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
    let me = send(
        &app,
        bearer(
            TestRequest::get().uri("/api/v1/auth/user"),
            signup.1["access_token"].as_str().unwrap(),
        ),
    )
    .await;
    assert_eq!(me.0, StatusCode::OK);
    assert_eq!(me.1["user_metadata"], json!({}));
}

#[actix_web::test]
async fn unknown_email_costs_a_password_check_like_a_wrong_password() {
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |_| {}))).await;
    send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("timing@example.com", "timing password"),
        ),
    )
    .await;
    // Best of three each: scheduling noise only ever adds time.
    let mut best = [Duration::MAX; 2];
    for _ in 0..3 {
        for (slot, email) in ["timing@example.com", "nobody-here@example.com"]
            .into_iter()
            .enumerate()
        {
            let started = Instant::now();
            let got = send(
                &app,
                post("/api/v1/auth/signin", creds(email, "not the password")),
            )
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

#[actix_web::test]
async fn service_keys_create_use_list_revoke_rotate_delete() {
    use actix_web::http::Method;
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |_| {}))).await;
    let admin = token(json!({"role": "service_role"}));
    let base = "/api/v1/admin/service-keys";
    // An AdminOnly route whose handler answers 503 here (no realtime engine): reaching the
    // 503 proves the credential passed.
    let probe = "/api/v1/admin/realtime/restart";

    // Only admins manage keys.
    let got = send(&app, post(base, json!({"name": "ci"}))).await;
    assert_error(&got, 401, "unauthorized", "admin authentication required");
    let user = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("user@example.com", "user password"),
        ),
    )
    .await;
    let user_token = user.1["access_token"].as_str().unwrap().to_string();
    let got = send(&app, bearer(post(base, json!({"name": "ci"})), &user_token)).await;
    assert_error(&got, 403, "forbidden", "admin role required");

    // Create: the key once, with its prefix.
    let created = send(
        &app,
        bearer(post(base, json!({"name": "ci deploys"})), &admin),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let key = created.1["key"].as_str().unwrap().to_string();
    let id = created.1["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk_") && key.len() == 46, "{key}");
    assert_eq!(created.1["prefix"], key[..11]);
    assert_eq!(created.1["status"], "active");
    assert_eq!(created.1["name"], "ci deploys");
    assert!(created.1["last_used_at"].is_null());

    // Stored hashed: no column holds the key or its random part.
    let client = db.client().await;
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
        let got = send(
            &app,
            TestRequest::post()
                .uri(probe)
                .insert_header((header, value)),
        )
        .await;
        assert_error(&got, 503, "service_unavailable", "realtime is disabled");
    }
    let got = send(
        &app,
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
    let got = send(
        &app,
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
    let got = send(
        &app,
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
    let listed = send(&app, bearer(TestRequest::get().uri(base), &admin)).await;
    assert_eq!(listed.0, StatusCode::OK, "{}", listed.1);
    let entry = &listed.1[0];
    assert_eq!(entry["id"], id.as_str());
    assert!(entry["last_used_at"].is_string(), "{entry}");
    assert!(entry.get("key").is_none() && !listed.1.to_string().contains(&sha));
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
    let got = send(
        &app,
        bearer(
            raw(
                Method::POST,
                &format!("{base}/{id}/revoke"),
                r#"{"reason": "Security incident - suspected compromise"}"#,
            ),
            &admin,
        ),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["status"], "revoked");
    assert_eq!(
        got.1["revoked_reason"],
        "Security incident - suspected compromise"
    );
    assert!(got.1["revoked_at"].is_string());
    let got = send(
        &app,
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
    let got = send(
        &app,
        bearer(
            TestRequest::post().uri(&format!("{base}/{id}/rotate")),
            &admin,
        ),
    )
    .await;
    assert_error(&got, 409, "conflict", "revoked");

    // Rotate with the default grace (0s): the new key works, the old stops at once.
    let second = send(&app, bearer(post(base, json!({"name": "worker"})), &admin)).await;
    let second_id = second.1["id"].as_str().unwrap().to_string();
    let old_key = second.1["key"].as_str().unwrap().to_string();
    let rotated = send(
        &app,
        bearer(
            TestRequest::post().uri(&format!("{base}/{second_id}/rotate")),
            &admin,
        ),
    )
    .await;
    assert_eq!(rotated.0, StatusCode::OK, "{}", rotated.1);
    let new_key = rotated.1["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(rotated.1["id"], second_id.as_str());
    assert!(rotated.1["rotated_at"].is_string());
    let got = send(
        &app,
        TestRequest::post()
            .uri(probe)
            .insert_header(("X-Service-Key", new_key.as_str())),
    )
    .await;
    assert_error(&got, 503, "service_unavailable", "realtime");
    let got = send(
        &app,
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
    let got = send(
        &app,
        bearer(
            TestRequest::delete().uri(&format!("{base}/{second_id}")),
            &admin,
        ),
    )
    .await;
    assert_eq!(got.0, StatusCode::NO_CONTENT, "{}", got.1);
    let got = send(
        &app,
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
    let got = send(
        &app,
        bearer(
            TestRequest::delete().uri(&format!("{base}/{second_id}")),
            &admin,
        ),
    )
    .await;
    assert_error(&got, 404, "not_found", "no service key");
    let got = send(
        &app,
        bearer(
            TestRequest::get().uri(&format!("{base}/not-a-uuid")),
            &admin,
        ),
    )
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
        let got = send(&app, bearer(raw(Method::POST, base, body), &admin)).await;
        if status == 201 {
            assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
            assert_eq!(got.1["name"], "x'); DROP TABLE auth.service_keys; --");
        } else {
            assert_error(&got, status, code, needle);
        }
    }
    let expiring = send(
        &app,
        bearer(
            post(
                base,
                json!({"name": "temp", "expires_at": "2099-01-01T00:00:00Z"}),
            ),
            &admin,
        ),
    )
    .await;
    assert_eq!(expiring.0, StatusCode::CREATED, "{}", expiring.1);
    assert_eq!(expiring.1["expires_at"], "2099-01-01T00:00:00.000000Z");

    // The audit trail.
    let client = db.client().await;
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
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |c| {
        c.auth.service_key_rotation_grace = Dur::secs(3600);
    })))
    .await;
    let admin = token(json!({"role": "service_role"}));
    let probe = "/api/v1/admin/realtime/restart";
    let created = send(
        &app,
        bearer(
            post("/api/v1/admin/service-keys", json!({"name": "graceful"})),
            &admin,
        ),
    )
    .await;
    let id = created.1["id"].as_str().unwrap();
    let old_key = created.1["key"].as_str().unwrap().to_string();
    let rotated = send(
        &app,
        bearer(
            TestRequest::post().uri(&format!("/api/v1/admin/service-keys/{id}/rotate")),
            &admin,
        ),
    )
    .await;
    assert_eq!(rotated.0, StatusCode::OK, "{}", rotated.1);
    assert!(rotated.1["previous_key_expires_at"].is_string());
    let new_key = rotated.1["key"].as_str().unwrap().to_string();
    for key in [&old_key, &new_key] {
        let got = send(
            &app,
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", key.as_str())),
        )
        .await;
        assert_error(&got, 503, "service_unavailable", "realtime");
    }
    // Revoking ends the grace too.
    send(
        &app,
        bearer(
            TestRequest::post().uri(&format!("/api/v1/admin/service-keys/{id}/revoke")),
            &admin,
        ),
    )
    .await;
    for key in [&old_key, &new_key] {
        let got = send(
            &app,
            TestRequest::post()
                .uri(probe)
                .insert_header(("X-Service-Key", key.as_str())),
        )
        .await;
        assert_error(&got, 401, "unauthorized", "revoked service key");
    }
}

/// `fluxbase keys` with a configured secret, and in embedded mode with the secret `serve`
/// would generate and use.
#[tokio::test]
async fn keys_command_prints_anon_and_service_role_jwts() {
    let dir = TempDir::new();
    let out = fluxbase(&dir.0)
        .arg("keys")
        .env("FLUXBASE_JWT_SECRET", TEST_SECRET)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let now = fluxbase_auth::tokens::now_secs();
    for (line, role) in lines.iter().zip(["anon", "service_role"]) {
        let token = line
            .strip_prefix(&format!("{role} key: "))
            .unwrap_or_else(|| panic!("{line}"));
        let claims = keys().verify(token).unwrap();
        assert_eq!(claims["role"], role);
        assert_eq!(claims["iss"], "fluxbase");
        assert!(claims["exp"].as_u64().unwrap() > now + 9 * 365 * 24 * 3600);
    }

    // Embedded mode: the development secret of .fluxbase/jwt-secret (created here).
    let out = fluxbase(&dir.0).arg("keys").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = std::fs::read_to_string(dir.0.join(".fluxbase/jwt-secret")).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let anon = stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("anon key: ")
        .unwrap();
    let claims = JwtKeys::hs256(secret.trim().as_bytes())
        .verify(anon)
        .unwrap();
    assert_eq!(claims["role"], "anon");
    assert!(String::from_utf8_lossy(&out.stderr).contains("development secret"));
    // The same secret again on the next run.
    let out = fluxbase(&dir.0).arg("keys").output().await.unwrap();
    let anon = String::from_utf8(out.stdout).unwrap();
    let anon = anon
        .lines()
        .next()
        .unwrap()
        .strip_prefix("anon key: ")
        .unwrap()
        .to_string();
    assert!(
        JwtKeys::hs256(secret.trim().as_bytes())
            .verify(&anon)
            .is_ok()
    );

    // A real database without a strong secret: refused, as serve refuses.
    let out = fluxbase(&dir.0)
        .arg("keys")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FLUXBASE_JWT_SECRET"));
}

/// One HTTP/1.1 POST with a JSON body over a fresh connection.
async fn post_over_tcp(addr: &str, path: &str, body: &Value) -> crate::support::Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(crate::support::EVENT_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    crate::support::Response {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        headers: head.to_string(),
        body: body.to_string(),
    }
}

/// The binary as deployed: audit log lines (`log_type=audit`, `success`, the reason, never
/// the password) and the login limiter in front of the password check.
#[tokio::test]
async fn audit_log_lines_and_login_limit_in_the_binary() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let mut cmd = fluxbase(&dir.0);
    cmd.env("DATABASE_URL", db.url())
        .env("FLUXBASE_JWT_SECRET", TEST_SECRET)
        .env("FLUXBASE_REALTIME_ENABLED", "false")
        .env("FLUXBASE_SECURITY_RATE_LIMIT_LOGIN_ATTEMPTS", "3");
    let server = crate::support::Server::start(cmd).await;

    let res = post_over_tcp(
        &server.addr,
        "/api/v1/auth/signup",
        &creds("logged@example.com", "s3cret-passw0rd"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    for _ in 0..3 {
        let res = post_over_tcp(
            &server.addr,
            "/api/v1/auth/signin",
            &creds("logged@example.com", "guess-passw0rd"),
        )
        .await;
        assert_eq!(res.status, 401, "{}", res.body);
    }
    // The fourth attempt within the window is refused before the password is checked.
    let res = post_over_tcp(
        &server.addr,
        "/api/v1/auth/signin",
        &creds("logged@example.com", "s3cret-passw0rd"),
    )
    .await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(
        res.headers.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        res.headers
    );
    assert_eq!(res.json()["error"]["code"], "rate_limited");
    // Another account from the same address is not affected.
    let res = post_over_tcp(
        &server.addr,
        "/api/v1/auth/signin",
        &creds("other@example.com", "whatever-passw0rd"),
    )
    .await;
    assert_eq!(res.status, 401, "{}", res.body);

    let (_, lines) = server.stop(libc::SIGTERM).await;
    let audit: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["log_type"] == "audit")
        .collect();
    let signup = audit
        .iter()
        .find(|v| v["action"] == "user_signedup")
        .expect("signup audit line");
    assert_eq!(signup["success"], true);
    let failures: Vec<&Value> = audit
        .iter()
        .filter(|v| v["action"] == "login_failed")
        .collect();
    assert_eq!(failures.len(), 4, "{audit:?}");
    for f in &failures {
        assert_eq!(f["success"], false);
        assert!(f["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"), "{f}");
    }
    assert!(
        failures
            .iter()
            .any(|f| f["payload"].as_str().unwrap().contains("wrong_password"))
    );
    assert!(
        failures
            .iter()
            .any(|f| f["payload"].as_str().unwrap().contains("unknown_email"))
    );
    for line in &lines {
        assert!(
            !line.contains("s3cret-passw0rd") && !line.contains("guess-passw0rd"),
            "password in log: {line}"
        );
    }
}

#[actix_web::test]
async fn token_lifetimes_follow_the_configuration() {
    let db = TestDb::new().await;
    let app = init_service(build_app(auth_state(&db.url(), |c| {
        c.auth.access_token_ttl = Dur::secs(120);
        // Every refresh token is already too old: the expiry path.
        c.auth.refresh_token_ttl = Dur::secs(0);
    })))
    .await;
    let signup = send(
        &app,
        post(
            "/api/v1/auth/signup",
            creds("ttl@example.com", "ttl password"),
        ),
    )
    .await;
    assert_eq!(signup.1["expires_in"], 120);
    let claims = keys()
        .verify(signup.1["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    let got = send(
        &app,
        post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": signup.1["refresh_token"]}),
        ),
    )
    .await;
    assert_error(&got, 401, "invalid_refresh_token", "expired");
    // The expired session is gone with it.
    let me = send(
        &app,
        bearer(
            TestRequest::get().uri("/api/v1/auth/user"),
            signup.1["access_token"].as_str().unwrap(),
        ),
    )
    .await;
    assert_error(&me, 401, "session_not_found", "sign in again");
    assert!(has_attempt(
        &metrics_text(&app).await,
        "failure",
        "refresh_token_expired"
    ));
}
