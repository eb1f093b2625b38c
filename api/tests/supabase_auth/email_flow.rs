//! The email flow against a real SMTP server (the sink of [`super::smtp_sink`]): recovery
//! over STARTTLS with credentials, magic links and codes, confirmation required, email
//! change; tokens stored hashed, single use, expiring, rate-limited per account, voided by
//! wrong codes; and the links of `GET /verify`.

use super::*;

use fluxbase_api::config::Dur;

use super::smtp_sink::fixtures;

/// POSTs a JSON body as auth-js does.
async fn post(app: &TestApp, uri: &str, body: Value) -> Reply {
    app.call(gotrue(Method::POST, uri, Some(body))).await
}

#[actix_web::test]
async fn recovery_over_starttls_verifies_once_and_is_rate_limited() {
    let mut sink = SmtpSink::start(true).await;
    let port = sink.port;
    let app = TestApp::with(|c| {
        c.server.base_url = Some("https://api.example.test/".into());
        c.auth.site_url = Some("http://app.test".into());
        c.auth.redirect_urls = vec!["http://localhost:3000/*".into()];
        c.auth.smtp.host = Some("localhost".into());
        c.auth.smtp.port = port;
        c.auth.smtp.tls = SmtpTlsMode::Starttls;
        c.auth.smtp.ca_file = Some(fixtures().join("ca.pem").display().to_string());
        c.auth.smtp.user = Some("mailer".into());
        c.auth.smtp.password = Some("mailer secret".into());
        c.auth.smtp.from = Some("noreply@fluxbase.test".into());
        c.auth.otp_ttl = Dur::secs(600);
    })
    .await;
    let s = sign_up(&app, "reset@example.com", "old password!").await;

    let got = post(
        &app,
        "/auth/v1/recover?redirect_to=http%3A%2F%2Flocalhost%3A3000%2Freset",
        json!({"email": "Reset@Example.com", "code_challenge": null, "gotrue_meta_security": {}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body, json!({}));

    let mail = sink.next().await;
    assert!(mail.tls, "STARTTLS was used");
    assert_eq!(mail.auth, Some(("mailer".into(), "mailer secret".into())));
    assert_eq!(mail.from, "noreply@fluxbase.test");
    assert_eq!(mail.to, ["reset@example.com"]);
    assert_eq!(mail.header("Subject").unwrap(), "Reset your password");
    let link = mail.link();
    assert!(
        link.starts_with("https://api.example.test/auth/v1/verify?token="),
        "{link}"
    );
    assert_eq!(mail.link_param("type"), "recovery");
    assert_eq!(
        mail.link_param("redirect_to"),
        "http://localhost:3000/reset"
    );
    let token = mail.link_param("token");
    let code = mail.code();
    assert!(mail.text().contains("10 minutes"), "{}", mail.text());

    // Stored: hashes only, the purpose, the address, the expiry of auth.otp_ttl.
    let db = app.db().client().await;
    let row = db
        .query_one(
            "SELECT token_type, relates_to, t::text, \
                    extract(epoch FROM expires_at - created_at)::int, used_at IS NULL \
             FROM auth.one_time_tokens t WHERE user_id = $1",
            &[&user_id(&s)],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "recovery");
    assert_eq!(row.get::<_, &str>(1), "reset@example.com");
    let text: &str = row.get(2);
    assert!(!text.contains(&token) && !text.contains(&code), "{text}");
    assert_eq!(row.get::<_, i32>(3), 600);
    assert!(row.get::<_, bool>(4));

    // Again within auth.email_min_interval: 429 over_email_send_rate_limit.
    let again = post(
        &app,
        "/auth/v1/recover",
        json!({"email": "reset@example.com"}),
    )
    .await;
    assert_gotrue(&again, 429, "over_email_send_rate_limit");
    assert!(again.headers.get("retry-after").is_some());

    // The link's token verifies once: a session (auth-js fires PASSWORD_RECOVERY)…
    let verified = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "recovery", "token_hash": token}),
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["user"]["email"], "reset@example.com");
    let access = verified.str("access_token");
    // …in which the new password is set.
    let put = app
        .call(with_bearer(
            gotrue(
                Method::PUT,
                "/auth/v1/user",
                Some(json!({"password": "new password!"})),
            ),
            &access,
        ))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(
        password_grant(&app, "reset@example.com", "new password!")
            .await
            .status,
        200
    );
    assert_gotrue(
        &password_grant(&app, "reset@example.com", "old password!").await,
        400,
        "invalid_credentials",
    );
    // Spent: the link and the code of that email are refused.
    let replay = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "recovery", "token_hash": token}),
    )
    .await;
    assert_gotrue(&replay, 403, "otp_expired");
    assert_eq!(
        replay.body["message"],
        "Email link is invalid or has expired"
    );
    let by_code = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "recovery", "email": "reset@example.com", "token": code}),
    )
    .await;
    assert_gotrue(&by_code, 403, "otp_expired");
    assert_eq!(by_code.body["message"], "Token has expired or is invalid");
}

#[actix_web::test]
async fn magic_links_and_codes_create_confirm_and_sign_in() {
    let mut sink = SmtpSink::start(false).await;
    let app = TestApp::with(|c| smtp_to(c, &sink)).await;

    // A new address: the account is created with `data` and a confirmation is sent.
    let got = post(
        &app,
        "/auth/v1/otp",
        json!({"email": "magic@example.com", "data": {"plan": "free"}, "create_user": true,
               "gotrue_meta_security": {}, "code_challenge": null}),
    )
    .await;
    assert_eq!((got.status, &got.body), (200, &json!({})), "{}", got.body);
    let mail = sink.next().await;
    assert_eq!(mail.header("Subject").unwrap(), "Confirm your signup");
    assert!(!mail.tls && mail.auth.is_none());
    assert_eq!(mail.link_param("type"), "signup");
    assert!(
        mail.link().starts_with("http://api.test/auth/v1/verify?"),
        "{}",
        mail.link()
    );

    // verifyOtp({email, token, type: 'email'}): confirmed and signed in.
    let verified = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "email", "email": "magic@example.com", "token": mail.code()}),
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let user = &verified.body["user"];
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    assert_eq!(user["user_metadata"], json!({"plan": "free"}));
    assert!(verified.body["refresh_token"].is_string());

    // A confirmed account gets a magic link; five wrong codes void it.
    post(&app, "/auth/v1/otp", json!({"email": "magic@example.com"})).await;
    let mail = sink.next().await;
    assert_eq!(mail.header("Subject").unwrap(), "Your sign-in link");
    assert_eq!(mail.link_param("type"), "magiclink");
    let code = mail.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let got = post(
            &app,
            "/auth/v1/verify",
            json!({"type": "magiclink", "email": "magic@example.com", "token": wrong}),
        )
        .await;
        assert_gotrue(&got, 403, "otp_expired");
    }
    let voided = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "magiclink", "email": "magic@example.com", "token": code}),
    )
    .await;
    assert_gotrue(&voided, 403, "otp_expired");
    // …and so is its link.
    let voided = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "magiclink", "token_hash": mail.link_param("token")}),
    )
    .await;
    assert_gotrue(&voided, 403, "otp_expired");

    // A fresh one works; a code is only good for its own address and type.
    post(&app, "/auth/v1/otp", json!({"email": "magic@example.com"})).await;
    let mail = sink.next().await;
    let other_type = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "recovery", "email": "magic@example.com", "token": mail.code()}),
    )
    .await;
    assert_gotrue(&other_type, 403, "otp_expired");
    let ok = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "magiclink", "email": "MAGIC@example.com", "token": mail.code()}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    // create_user false for an unknown address: 422 otp_disabled, nothing created.
    let refused = post(
        &app,
        "/auth/v1/otp",
        json!({"email": "stranger@example.com", "create_user": false}),
    )
    .await;
    assert_gotrue(&refused, 422, "otp_disabled");
    // Recovery of an unknown address: the same 200, and no email (the next email to
    // arrive is the one requested after it).
    let unknown = post(
        &app,
        "/auth/v1/recover",
        json!({"email": "ghost@example.com"}),
    )
    .await;
    assert_eq!((unknown.status, &unknown.body), (200, &json!({})));
    post(
        &app,
        "/auth/v1/recover",
        json!({"email": "magic@example.com"}),
    )
    .await;
    let next = sink.next().await;
    assert_eq!(next.to, ["magic@example.com"]);
    assert!(sink.try_next().is_none());
    let count: i64 = app
        .db()
        .client()
        .await
        .query_one("SELECT count(*) FROM auth.users WHERE email IN ('stranger@example.com', 'ghost@example.com')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);

    // Bad verification requests.
    for (body, status, code) in [
        (
            json!({"email": "magic@example.com", "token": "123456"}),
            400,
            "validation_failed",
        ),
        (
            json!({"type": "bogus", "token_hash": "x"}),
            400,
            "validation_failed",
        ),
        (
            json!({"type": "sms", "phone": "+15555550100", "token": "123456"}),
            422,
            "phone_provider_disabled",
        ),
        (
            json!({"type": "email", "token": "123456"}),
            400,
            "validation_failed",
        ),
        (
            json!({"type": "email", "token": "1", "token_hash": "2", "email": "a@b.co"}),
            400,
            "validation_failed",
        ),
        (
            json!({"type": "email", "email": "magic@example.com", "token": "12ab56"}),
            403,
            "otp_expired",
        ),
    ] {
        let got = post(&app, "/auth/v1/verify", body).await;
        assert_gotrue(&got, status, code);
    }
}

#[actix_web::test]
async fn an_expired_token_is_refused() {
    let mut sink = SmtpSink::start(false).await;
    let app = TestApp::with(|c| smtp_to(c, &sink)).await;
    let s = sign_up(&app, "late@example.com", "late password").await;
    post(
        &app,
        "/auth/v1/recover",
        json!({"email": "late@example.com"}),
    )
    .await;
    let mail = sink.next().await;
    // Past its expiry (auth.otp_ttl), as if the time had passed.
    app.db()
        .client()
        .await
        .execute(
            "UPDATE auth.one_time_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1",
            &[&user_id(&s)],
        )
        .await
        .unwrap();
    let got = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "recovery", "token_hash": mail.link_param("token")}),
    )
    .await;
    assert_gotrue(&got, 403, "otp_expired");
    let got = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "recovery", "email": "late@example.com", "token": mail.code()}),
    )
    .await;
    assert_gotrue(&got, 403, "otp_expired");
}

#[actix_web::test]
async fn the_link_of_an_email_redirects_with_the_session_in_the_fragment() {
    let mut sink = SmtpSink::start(false).await;
    let app = TestApp::with(|c| {
        smtp_to(c, &sink);
        c.auth.redirect_urls = vec!["http://localhost:3000/*".into()];
    })
    .await;
    sign_up(&app, "link@example.com", "link password").await;

    // An allowed redirect_to is kept through the email.
    post(
        &app,
        "/auth/v1/otp?redirect_to=http%3A%2F%2Flocalhost%3A3000%2Fcb",
        json!({"email": "link@example.com"}),
    )
    .await;
    let mail = sink.next().await;
    let path = mail.link().replacen("http://api.test", "", 1);
    let got = app.call(TestRequest::get().uri(&path)).await;
    assert_eq!(got.status, 303, "{}", got.body);
    let location = got
        .headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let (target, fragment) = location.split_once('#').unwrap();
    assert_eq!(target, "http://localhost:3000/cb");
    let pairs: std::collections::HashMap<&str, String> = fragment
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k, smtp_sink::decode(v))
        })
        .collect();
    assert_eq!(pairs["token_type"], "bearer");
    assert_eq!(pairs["type"], "magiclink");
    assert_eq!(pairs["expires_in"], "3600");
    let claims = crate::support::keys()
        .verify(&pairs["access_token"])
        .unwrap();
    assert_eq!(claims["email"], "link@example.com");
    assert_eq!(
        refresh_grant(&app, &pairs["refresh_token"]).await.status,
        200
    );

    // Followed twice: the error, in the fragment.
    let again = app.call(TestRequest::get().uri(&path)).await;
    assert_eq!(again.status, 303);
    let location = again.headers.get("location").unwrap().to_str().unwrap();
    assert!(
        location.starts_with(
            "http://localhost:3000/cb#error=access_denied&error_code=otp_expired&error_description="
        ),
        "{location}"
    );

    // A redirect_to off the allow list lands on auth.site_url.
    post(
        &app,
        "/auth/v1/otp?redirect_to=https%3A%2F%2Fevil.example%2F",
        json!({"email": "link@example.com"}),
    )
    .await;
    let mail = sink.next().await;
    let path = mail.link().replacen("http://api.test", "", 1);
    let got = app
        .call(TestRequest::get().uri(&format!("{path}&redirect_to=https%3A%2F%2Fevil.example%2F")))
        .await;
    let location = got.headers.get("location").unwrap().to_str().unwrap();
    assert!(
        location.starts_with("http://app.test#access_token="),
        "{location}"
    );
}

#[actix_web::test]
async fn with_confirmation_on_addresses_wait_for_their_link() {
    let mut sink = SmtpSink::start(false).await;
    let app = TestApp::with(|c| {
        smtp_to(c, &sink);
        c.auth.email_confirmation = true;
    })
    .await;

    // Sign-up: the user object itself, no session; a confirmation is sent.
    let got = post(
        &app,
        "/auth/v1/signup",
        json!({"email": "wait@example.com", "password": "waiting password", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.body.get("access_token").is_none(), "{}", got.body);
    assert_eq!(got.body["email"], "wait@example.com");
    assert!(got.body["email_confirmed_at"].is_null());
    let id = got.str("id");
    let mail = sink.next().await;
    assert_eq!(mail.header("Subject").unwrap(), "Confirm your signup");

    // Unconfirmed: the right password is refused with email_not_confirmed.
    let early = password_grant(&app, "wait@example.com", "waiting password").await;
    assert_gotrue(&early, 400, "email_not_confirmed");

    // Signing up again answers alike (a random id) and re-sends the confirmation.
    let again = post(
        &app,
        "/auth/v1/signup",
        json!({"email": "wait@example.com", "password": "other password"}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_ne!(again.str("id"), id);
    assert!(again.body.get("access_token").is_none());
    let resent = sink.next().await;
    assert_eq!(resent.header("Subject").unwrap(), "Confirm your signup");
    // The first link was replaced by the second.
    let old = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "signup", "token_hash": mail.link_param("token")}),
    )
    .await;
    assert_gotrue(&old, 403, "otp_expired");
    let confirmed = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "signup", "token_hash": resent.link_param("token")}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(confirmed.body["user"]["email_confirmed_at"].is_string());
    let signed_in = password_grant(&app, "wait@example.com", "waiting password").await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let access = signed_in.str("access_token");

    // The Fluxbase paths follow the same rule.
    let native = app
        .call(crate::support::post(
            "/api/v1/auth/signup",
            json!({"email": "native@example.com", "password": "native password"}),
        ))
        .await;
    assert_eq!(native.status, 200, "{}", native.body);
    assert!(native.body.get("access_token").is_none(), "{}", native.body);
    assert_eq!(native.body["user"]["email"], "native@example.com");
    assert_eq!(sink.next().await.to, ["native@example.com"]);

    // An email change waits for the new address: new_email, then the code sent there.
    let put = app
        .call(with_bearer(
            gotrue(
                Method::PUT,
                "/auth/v1/user",
                Some(json!({"email": "moved@example.com"})),
            ),
            &access,
        ))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["email"], "wait@example.com");
    assert_eq!(put.body["new_email"], "moved@example.com");
    let change = sink.next().await;
    assert_eq!(change.to, ["moved@example.com"]);
    assert_eq!(
        change.header("Subject").unwrap(),
        "Confirm your new email address"
    );
    let moved = post(
        &app,
        "/auth/v1/verify",
        json!({"type": "email_change", "email": "moved@example.com", "token": change.code()}),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["user"]["email"], "moved@example.com");
    assert!(moved.body["user"].get("new_email").is_none());
    assert_eq!(
        moved.body["user"]["identities"][0]["email"],
        "moved@example.com"
    );
    assert_eq!(
        password_grant(&app, "moved@example.com", "waiting password")
            .await
            .status,
        200
    );
    // A change to a taken address is refused at once.
    let taken = app
        .call(with_bearer(
            gotrue(
                Method::PUT,
                "/auth/v1/user",
                Some(json!({"email": "native@example.com"})),
            ),
            &moved.str("access_token"),
        ))
        .await;
    assert_gotrue(&taken, 422, "email_exists");

    // /resend of a signup confirmation.
    let resend = post(
        &app,
        "/auth/v1/resend",
        json!({"type": "signup", "email": "native@example.com"}),
    )
    .await;
    assert_eq!(resend.status, 200, "{}", resend.body);
    assert_eq!(sink.next().await.to, ["native@example.com"]);
    let bad = post(
        &app,
        "/auth/v1/resend",
        json!({"type": "sms", "email": "native@example.com"}),
    )
    .await;
    assert_gotrue(&bad, 400, "validation_failed");
}
