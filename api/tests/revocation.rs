//! Credentials checked for validity and revocation everywhere (issue 11 items 1–4): a
//! token not valid yet, a signed-out app user's token, a logged-out admin's token, and a
//! service key trying to create an admin. Each was accepted on main.

use actix_web::test::TestRequest;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};

use crate::support::{
    TestApp, Ws, WsEvent, assert_error, bearer, keys, now, post, realtime_server, token,
};

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "SecurePassword123!";

/// The claims of `access` with `changes` applied, signed again with the server's secret.
fn resigned(access: &str, changes: Value) -> String {
    let mut claims = keys().verify(access).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        claims.insert(k.clone(), v.clone());
    }
    keys().sign(&claims)
}

/// The first admin and a logged-in session of theirs: (access token, user id).
async fn admin_session(app: &TestApp) -> String {
    let created = app
        .post(
            "/dashboard/auth/signup",
            json!({"email": ADMIN, "password": PASSWORD}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let login = app
        .post(
            "/dashboard/auth/login",
            json!({"email": ADMIN, "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    login.str("access_token")
}

/// Item 1: `nbf` in the future is refused (beyond `auth.jwt_leeway`) by the user routes
/// and the admin routes; within the leeway it is accepted.
#[actix_web::test]
async fn tokens_not_valid_yet_are_refused_on_every_route() {
    let app = TestApp::new().await;
    let access = app
        .sign_up("early@example.com", "early bird password")
        .await
        .str("access_token");
    let early = resigned(&access, json!({"nbf": now() + 3600}));
    for req in [
        TestRequest::get().uri("/api/v1/auth/user"),
        TestRequest::post().uri("/api/v1/auth/signout?scope=global"),
    ] {
        let got = app.call(bearer(req, &early)).await;
        assert_error(&got, 401, "invalid_token", "not valid yet");
    }
    let service = token(json!({"role": "service_role", "nbf": now() + 3600}));
    for req in [
        TestRequest::get().uri("/api/v1/admin/service-keys"),
        post("/api/v1/admin/service-keys", json!({"name": "early"})),
        TestRequest::post().uri("/api/v1/admin/realtime/restart"),
    ] {
        let got = app.call(bearer(req, &service)).await;
        assert_error(&got, 401, "invalid_token", "not valid yet");
    }
    // Clock skew within auth.jwt_leeway (5s) passes; the session was never touched.
    let skewed = resigned(&access, json!({"nbf": now() + 2}));
    let got = app
        .call(bearer(TestRequest::get().uri("/api/v1/auth/user"), &skewed))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
}

/// Item 1 on the socket path: `/realtime` refuses a token not valid yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_refuses_a_token_not_valid_yet() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let early = token(json!({
        "sub": "6f1c2a3e-1111-4222-8333-944455556666",
        "role": "authenticated",
        "nbf": now() + 3600,
    }));
    let mut ws = Ws::connect(&server.addr, Some(&early)).await;
    ws.send(json!({"type": "heartbeat"})).await;
    let frame = ws.frame().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "invalid_token", "{frame}");
    assert!(
        frame["message"].as_str().unwrap().contains("not valid yet"),
        "{frame}"
    );
    match ws.next_event().await {
        WsEvent::Closed(Some((code, _))) => assert_eq!(code, 4001),
        other => panic!("{other:?}"),
    }
}

/// Item 2: a signed-out (or SQL-revoked) access token no longer acts — not even to sign
/// out the user's other sessions.
#[actix_web::test]
async fn a_signed_out_token_can_no_longer_act() {
    let app = TestApp::new().await;
    let first = app.sign_up("victim@example.com", "victim password").await;
    let second = app
        .post(
            "/api/v1/auth/signin",
            json!({"email": "victim@example.com", "password": "victim password"}),
        )
        .await;
    let (dead, live) = (first.str("access_token"), second.str("access_token"));
    let out = app
        .call(bearer(
            TestRequest::post().uri("/api/v1/auth/signout"),
            &dead,
        ))
        .await;
    assert_eq!(out.status, 204, "{}", out.body);

    for req in [
        TestRequest::post().uri("/api/v1/auth/signout?scope=global"),
        TestRequest::post().uri("/api/v1/auth/signout?scope=others"),
        crate::support::raw(
            actix_web::http::Method::PATCH,
            "/api/v1/auth/user",
            r#"{"data":{"pwned":true}}"#,
        ),
        TestRequest::get().uri("/api/v1/auth/user"),
    ] {
        let got = app.call(bearer(req, &dead)).await;
        assert_error(&got, 401, "session_not_found", "sign in again");
    }
    // The other session was not signed out, nor the user changed.
    let me = app
        .call(bearer(TestRequest::get().uri("/api/v1/auth/user"), &live))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user_metadata"], json!({}));

    // The runbook's DELETE ends the live one the same way.
    let user_id: uuid::Uuid = me.body["id"].as_str().unwrap().parse().unwrap();
    app.db()
        .client()
        .await
        .execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&user_id])
        .await
        .unwrap();
    let got = app
        .call(bearer(
            TestRequest::post().uri("/api/v1/auth/signout?scope=global"),
            &live,
        ))
        .await;
    assert_error(&got, 401, "session_not_found", "sign in again");
}

/// Item 3: after logout, the admin's access token opens no admin route: not the service
/// keys, not admin creation, not the realtime restart.
#[actix_web::test]
async fn a_logged_out_admin_token_opens_no_admin_route() {
    let app = TestApp::new().await;
    let access = admin_session(&app).await;
    // Live, it manages keys.
    let listed = app
        .call(bearer(
            TestRequest::get().uri("/api/v1/admin/service-keys"),
            &access,
        ))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let out = app
        .call(bearer(
            TestRequest::post().uri("/dashboard/auth/logout"),
            &access,
        ))
        .await;
    assert_eq!(out.status, 204, "{}", out.body);

    for req in [
        TestRequest::get().uri("/api/v1/admin/service-keys"),
        post(
            "/api/v1/admin/service-keys",
            json!({"name": "after logout"}),
        ),
        post(
            "/dashboard/auth/signup",
            json!({"email": "backdoor@example.com", "password": PASSWORD}),
        ),
        TestRequest::post().uri("/api/v1/admin/realtime/restart"),
        TestRequest::get().uri("/dashboard/auth/me"),
        TestRequest::post().uri("/dashboard/auth/2fa/setup"),
    ] {
        let got = app.call(bearer(req, &access)).await;
        assert_error(&got, 401, "session_not_found", "sign in again");
    }
    let client = app.db().client().await;
    let keys: i64 = client
        .query_one("SELECT count(*) FROM auth.service_keys", &[])
        .await
        .unwrap()
        .get(0);
    let admins: i64 = client
        .query_one("SELECT count(*) FROM dashboard.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((keys, admins), (0, 1));
}

/// Item 4: a service key cannot create a dashboard admin (who would outlive the key's
/// revocation and mint new keys); an admin session can.
#[actix_web::test]
async fn a_service_key_cannot_create_a_dashboard_admin() {
    let app = TestApp::new().await;
    let access = admin_session(&app).await;
    let created = app
        .call(bearer(
            post("/api/v1/admin/service-keys", json!({"name": "automation"})),
            &access,
        ))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.str("key");
    let attempt = json!({"email": "minted@example.com", "password": PASSWORD});
    for (header, value) in [
        ("X-Service-Key", key.clone()),
        ("Authorization", format!("Bearer {key}")),
        ("apikey", key.clone()),
    ] {
        let got = app
            .call(post("/dashboard/auth/signup", attempt.clone()).insert_header((header, value)))
            .await;
        assert_error(&got, 403, "forbidden", "dashboard admin's session");
    }
    let got = app
        .call(bearer(
            post("/dashboard/auth/signup", attempt.clone()),
            &access,
        ))
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
}
