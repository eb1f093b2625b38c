//! The service role's `/auth/v1/admin/*`: who may call it, user CRUD in GoTrue's shapes
//! (pagination headers, metadata merges, imported bcrypt hashes), generated links and
//! invitations.

use super::*;

use crate::support::keys;

/// An admin request with the service-role key as bearer and `apikey`.
fn admin(method: Method, uri: &str, body: Option<Value>) -> TestRequest {
    let key = service_key();
    with_bearer(gotrue(method, uri, body), &key).insert_header(("apikey", key))
}

#[actix_web::test]
async fn only_the_service_role_manages_users() {
    let app = TestApp::new().await;
    let s = sign_up(&app, "plain@example.com", "plain password").await;
    let user_token = s["access_token"].as_str().unwrap();

    let anon = app
        .call(gotrue(Method::GET, "/auth/v1/admin/users", None))
        .await;
    assert_gotrue(&anon, 403, "not_admin");
    let as_user = app
        .call(with_bearer(
            gotrue(Method::GET, "/auth/v1/admin/users", None),
            user_token,
        ))
        .await;
    assert_gotrue(&as_user, 403, "not_admin");
    let nothing = app
        .call(
            TestRequest::get()
                .uri("/auth/v1/admin/users")
                .insert_header(VERSION),
        )
        .await;
    assert_gotrue(&nothing, 401, "no_authorization");
    let forged = app
        .call(with_bearer(
            gotrue(Method::GET, "/auth/v1/admin/users", None),
            &fluxbase_auth::JwtKeys::hs256(b"another-secret-that-is-long-enough-0123456789").sign(
                json!({"role": "service_role", "exp": crate::support::now() + 60})
                    .as_object()
                    .unwrap(),
            ),
        ))
        .await;
    assert_gotrue(&forged, 403, "bad_jwt");
    let ok = app
        .call(admin(Method::GET, "/auth/v1/admin/users", None))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[actix_web::test]
async fn users_are_created_listed_changed_and_deleted() {
    let app = TestApp::new().await;

    // Create: confirmed, with metadata; app_metadata keeps the server's provider keys.
    let created = app
        .call(admin(
            Method::POST,
            "/auth/v1/admin/users",
            Some(json!({
                "email": "Made@Example.com", "password": "made password", "email_confirm": true,
                "user_metadata": {"name": "Made"}, "app_metadata": {"plan": "pro", "provider": "forged"},
            })),
        ))
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let made = &created.body;
    assert_eq!(made["email"], "made@example.com");
    assert!(made["email_confirmed_at"].is_string());
    assert!(made["last_sign_in_at"].is_null());
    assert_eq!(
        made["app_metadata"],
        json!({"plan": "pro", "provider": "email", "providers": ["email"]})
    );
    assert_eq!(made["identities"].as_array().unwrap().len(), 1);
    let id = made["id"].as_str().unwrap().to_string();

    // It signs in, and its token carries app_metadata for RLS.
    let signed_in = password_grant(&app, "made@example.com", "made password").await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let claims = keys().verify(&signed_in.str("access_token")).unwrap();
    assert_eq!(claims["app_metadata"]["plan"], "pro");

    // An imported bcrypt hash (as crypt(…, gen_salt('bf')) writes) signs in too, and a
    // chosen id is kept.
    let hash: String = app
        .db()
        .client()
        .await
        .query_one("SELECT crypt('imported password', gen_salt('bf'))", &[])
        .await
        .unwrap()
        .get(0);
    let chosen = Uuid::new_v4();
    let imported = app
        .call(admin(
            Method::POST,
            "/auth/v1/admin/users",
            Some(json!({"email": "imported@example.com", "password_hash": hash, "id": chosen})),
        ))
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert_eq!(imported.body["id"], chosen.to_string());
    assert!(imported.body["email_confirmed_at"].is_null());
    assert_eq!(
        password_grant(&app, "imported@example.com", "imported password")
            .await
            .status,
        200
    );
    let third = app
        .call(admin(
            Method::POST,
            "/auth/v1/admin/users",
            Some(json!({"email": "third@example.com"})),
        ))
        .await;
    assert_eq!(third.status, 200, "{}", third.body);

    // Refusals, each naming what is wrong.
    for (body, status, code) in [
        (
            json!({"email": "made@example.com", "password": "another one"}),
            422,
            "email_exists",
        ),
        (
            json!({"email": "x@example.com", "password": "short"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "x@example.com", "role": "service_role"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "ban_duration": "24h"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "password_hash": "md5:abc"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "id": "not-a-uuid"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "id": chosen}),
            409,
            "conflict",
        ),
        (
            json!({"email": "x@example.com", "user_metadata": [1]}),
            400,
            "validation_failed",
        ),
        (
            json!({"phone": "+15555550100"}),
            422,
            "phone_provider_disabled",
        ),
        (json!({}), 400, "validation_failed"),
    ] {
        let got = app
            .call(admin(
                Method::POST,
                "/auth/v1/admin/users",
                Some(body.clone()),
            ))
            .await;
        assert_gotrue(&got, status, code);
    }

    // List, oldest first, paginated as auth-js reads it.
    let page = app
        .call(admin(
            Method::GET,
            "/auth/v1/admin/users?page=1&per_page=2",
            None,
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["aud"], "authenticated");
    let users = page.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "made@example.com");
    assert_eq!(page.headers.get("x-total-count").unwrap(), "3");
    let link = page.headers.get("link").unwrap().to_str().unwrap();
    assert!(link.contains("page=2&per_page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=2&per_page=2>; rel=\"last\""), "{link}");
    let last = app
        .call(admin(
            Method::GET,
            "/auth/v1/admin/users?page=2&per_page=2",
            None,
        ))
        .await;
    assert_eq!(last.body["users"].as_array().unwrap().len(), 1);
    assert!(
        !last
            .headers
            .get("link")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("next")
    );
    let filtered = app
        .call(admin(
            Method::GET,
            "/auth/v1/admin/users?filter=IMPORT",
            None,
        ))
        .await;
    assert_eq!(filtered.body["users"].as_array().unwrap().len(), 1);
    let literal = app
        .call(admin(Method::GET, "/auth/v1/admin/users?filter=%25", None))
        .await;
    assert_eq!(literal.body["users"].as_array().unwrap().len(), 0);
    let bad_page = app
        .call(admin(Method::GET, "/auth/v1/admin/users?page=0", None))
        .await;
    assert_gotrue(&bad_page, 400, "validation_failed");

    // Get one.
    let one = app
        .call(admin(
            Method::GET,
            &format!("/auth/v1/admin/users/{id}"),
            None,
        ))
        .await;
    assert_eq!(
        (one.status, &one.body["email"]),
        (200, &json!("made@example.com"))
    );
    let bad_id = app
        .call(admin(Method::GET, "/auth/v1/admin/users/42", None))
        .await;
    assert_gotrue(&bad_id, 404, "validation_failed");
    let unknown = app
        .call(admin(
            Method::GET,
            &format!("/auth/v1/admin/users/{}", Uuid::new_v4()),
            None,
        ))
        .await;
    assert_gotrue(&unknown, 404, "user_not_found");

    // Update: metadata merged (null removes), a new password ends every session.
    let refresh = signed_in.str("refresh_token");
    let updated = app
        .call(admin(
            Method::PUT,
            &format!("/auth/v1/admin/users/{id}"),
            Some(json!({
                "user_metadata": {"name": null, "team": "core"},
                "app_metadata": {"plan": null, "tier": 2},
                "password": "changed password",
            })),
        ))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["user_metadata"], json!({"team": "core"}));
    assert_eq!(
        updated.body["app_metadata"],
        json!({"tier": 2, "provider": "email", "providers": ["email"]})
    );
    assert_gotrue(
        &refresh_grant(&app, &refresh).await,
        400,
        "refresh_token_not_found",
    );
    assert_eq!(
        password_grant(&app, "made@example.com", "changed password")
            .await
            .status,
        200
    );
    let taken = app
        .call(admin(
            Method::PUT,
            &format!("/auth/v1/admin/users/{id}"),
            Some(json!({"email": "third@example.com"})),
        ))
        .await;
    assert_gotrue(&taken, 422, "email_exists");
    let moved = app
        .call(admin(
            Method::PUT,
            &format!("/auth/v1/admin/users/{id}"),
            Some(json!({"email": "renamed@example.com", "email_confirm": false})),
        ))
        .await;
    assert_eq!(moved.body["email"], "renamed@example.com");
    assert!(moved.body["email_confirmed_at"].is_null());
    assert_eq!(moved.body["identities"][0]["email"], "renamed@example.com");
    let missing = app
        .call(admin(
            Method::PUT,
            &format!("/auth/v1/admin/users/{}", Uuid::new_v4()),
            Some(json!({"user_metadata": {"a": 1}})),
        ))
        .await;
    assert_gotrue(&missing, 404, "user_not_found");

    // Delete: the account and its sessions go; a second delete is 404.
    let soft = app
        .call(admin(
            Method::DELETE,
            &format!("/auth/v1/admin/users/{id}"),
            Some(json!({"should_soft_delete": true})),
        ))
        .await;
    assert_gotrue(&soft, 400, "validation_failed");
    let deleted = app
        .call(admin(
            Method::DELETE,
            &format!("/auth/v1/admin/users/{id}"),
            Some(json!({"should_soft_delete": false})),
        ))
        .await;
    assert_eq!(
        (deleted.status, &deleted.body),
        (200, &json!({})),
        "{}",
        deleted.body
    );
    let left: i64 = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM auth.users WHERE id = $1) + \
                    (SELECT count(*) FROM auth.sessions WHERE user_id = $1)",
            &[&Uuid::parse_str(&id).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let again = app
        .call(admin(
            Method::DELETE,
            &format!("/auth/v1/admin/users/{id}"),
            None,
        ))
        .await;
    assert_gotrue(&again, 404, "user_not_found");
}

#[actix_web::test]
async fn generated_links_and_invitations() {
    let mut sink = SmtpSink::start(false).await;
    let app = TestApp::with(|c| smtp_to(c, &sink)).await;
    sign_up(&app, "known@example.com", "known password").await;

    // A recovery link for an existing account: nothing is sent, the secrets are answered.
    let got = app
        .call(admin(
            Method::POST,
            "/auth/v1/admin/generate_link",
            Some(json!({"type": "recovery", "email": "known@example.com", "redirect_to": "http://app.test/reset"})),
        ))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["email"], "known@example.com");
    assert_eq!(got.body["verification_type"], "recovery");
    assert_eq!(got.body["redirect_to"], "http://app.test/reset");
    let action = got.str("action_link");
    assert!(
        action.starts_with("http://api.test/auth/v1/verify?token="),
        "{action}"
    );
    assert!(action.contains(&got.str("hashed_token")));
    assert_eq!(got.str("email_otp").len(), 6);
    let verified = app
        .call(gotrue(
            Method::POST,
            "/auth/v1/verify",
            Some(json!({"type": "recovery", "token_hash": got.str("hashed_token")})),
        ))
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);

    // A signup link creates the account unconfirmed; a magic link needs an account.
    let signup = app
        .call(admin(
            Method::POST,
            "/auth/v1/admin/generate_link",
            Some(json!({"type": "signup", "email": "fresh@example.com", "password": "fresh password", "data": {"a": 1}})),
        ))
        .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    assert!(signup.body["email_confirmed_at"].is_null());
    assert_eq!(signup.body["user_metadata"], json!({"a": 1}));
    assert_eq!(signup.body["verification_type"], "signup");
    let confirmed = app
        .call(gotrue(
            Method::POST,
            "/auth/v1/verify",
            Some(json!({"type": "signup", "email": "fresh@example.com", "token": signup.str("email_otp")})),
        ))
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    for (body, status, code) in [
        (
            json!({"type": "magiclink", "email": "nobody@example.com"}),
            404,
            "user_not_found",
        ),
        (
            json!({"type": "signup", "email": "known@example.com", "password": "known password"}),
            422,
            "email_exists",
        ),
        (
            json!({"type": "signup", "email": "nopass@example.com"}),
            400,
            "validation_failed",
        ),
        (
            json!({"type": "email_change_new", "email": "known@example.com"}),
            400,
            "validation_failed",
        ),
    ] {
        let got = app
            .call(admin(
                Method::POST,
                "/auth/v1/admin/generate_link",
                Some(body),
            ))
            .await;
        assert_gotrue(&got, status, code);
    }

    // An invitation: a passwordless account and an email; accepting it signs in.
    let invited = app
        .call(admin(
            Method::POST,
            "/auth/v1/invite",
            Some(json!({"email": "guest@example.com", "data": {"team": "ops"}})),
        ))
        .await;
    assert_eq!(invited.status, 200, "{}", invited.body);
    assert_eq!(invited.body["user_metadata"], json!({"team": "ops"}));
    let mail = sink.next().await;
    assert_eq!(mail.header("Subject").unwrap(), "You have been invited");
    assert_eq!(mail.link_param("type"), "invite");
    let accepted = app
        .call(gotrue(
            Method::POST,
            "/auth/v1/verify",
            Some(json!({"type": "invite", "token_hash": mail.link_param("token")})),
        ))
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert!(accepted.body["user"]["email_confirmed_at"].is_string());
    let again = app
        .call(admin(
            Method::POST,
            "/auth/v1/invite",
            Some(json!({"email": "guest@example.com"})),
        ))
        .await;
    assert_gotrue(&again, 422, "email_exists");
}
