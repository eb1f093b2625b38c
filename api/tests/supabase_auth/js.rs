//! The real `@supabase/supabase-js` (auth-js) under Node against the binary, with the
//! emails going to the test's SMTP server: sign-up to sign-out, refresh rotation, errors,
//! recovery and passwordless sign-in by email, the admin client, and the events of
//! `onAuthStateChange`.

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};

use super::smtp_sink::{Mail, SmtpSink};
use super::{anon_key, service_key};
use crate::support::{js, plain_server};

/// An error as the script reports it: `{name, code, status, api}`.
#[track_caller]
fn assert_api_error(got: &Value, code: &str, status: u16) {
    assert_eq!(got["name"], "AuthApiError", "{got}");
    assert_eq!(got["api"], true, "{got}");
    assert_eq!(got["code"], code, "{got}");
    assert_eq!(got["status"], status, "{got}");
}

/// The next email to `to` among the next two.
fn pick(mails: &[Mail], to: &str) -> Mail {
    mails
        .iter()
        .find(|m| m.to == [to])
        .unwrap_or_else(|| panic!("no email to {to}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_js_auth_works_unchanged() {
    let db = TestDb::new().await;
    let mut sink = SmtpSink::start(false).await;
    let port = sink.port.to_string();
    let (server, _dir) = plain_server(
        &db,
        &[
            ("FLUXBASE_AUTH_SMTP_HOST", "127.0.0.1"),
            ("FLUXBASE_AUTH_SMTP_PORT", &port),
            ("FLUXBASE_AUTH_SMTP_TLS", "none"),
            ("FLUXBASE_AUTH_SMTP_FROM", "noreply@fluxbase.test"),
            ("FLUXBASE_SERVER_BASE_URL", "http://localhost:9"),
            ("FLUXBASE_AUTH_REDIRECT_URLS", "http://localhost:3000/*"),
            ("FLUXBASE_SECURITY_RATE_LIMIT_LOGIN_ATTEMPTS", "100"),
        ],
    )
    .await;
    let url = format!("http://{}", server.addr);
    let (anon, service) = (anon_key(), service_key());
    let env = [
        ("FLUXBASE_URL", url.as_str()),
        ("ANON_KEY", anon.as_str()),
        ("SERVICE_KEY", service.as_str()),
        ("EMAIL", "ada@example.com"),
        ("OTP_EMAIL", "otp@example.com"),
    ];

    let got = js::run("auth.mjs", &[env.as_slice(), &[("PHASE", "main")]].concat()).await;
    assert_eq!(
        got["signUp"],
        json!({"error": null, "session": true, "email": "ada@example.com", "name": "Ada", "confirmed": true, "identities": 1}),
        "{got}"
    );
    assert_api_error(&got["duplicate"], "user_already_exists", 422);
    assert_api_error(&got["wrongPassword"], "invalid_credentials", 400);
    assert_eq!(got["wrongPassword"]["message"], "Invalid login credentials");
    assert_api_error(&got["unknownUser"], "invalid_credentials", 400);
    assert_eq!(
        got["weakPassword"]["name"], "AuthWeakPasswordError",
        "{got}"
    );
    assert_eq!(got["weakPassword"]["code"], "weak_password");
    assert_eq!(got["weakPassword"]["status"], 422);
    assert_eq!(got["weakPassword"]["reasons"], json!(["length"]));
    assert_eq!(
        got["signIn"],
        json!({"error": null, "email": "ada@example.com", "tokenType": "bearer", "expiresIn": 3600, "expiresAt": "number"})
    );
    assert_eq!(
        got["getUser"],
        json!({"error": null, "email": "ada@example.com", "name": "Ada"})
    );
    assert_eq!(
        got["updateUser"],
        json!({"error": null, "city": "Paris", "name": "Ada"})
    );
    assert_eq!(
        got["refresh"],
        json!({"error": null, "rotated": true, "sameUser": true})
    );
    assert_eq!(got["deviceRefresh"], Value::Null, "{got}");
    assert_api_error(&got["replay"], "refresh_token_already_used", 400);
    assert_api_error(&got["afterReplay"], "refresh_token_not_found", 400);
    assert_eq!(
        got["deviceGetUser"]["name"], "AuthSessionMissingError",
        "{got}"
    );
    assert_eq!(got["deviceSession"], Value::Null, "{got}");
    assert_eq!(
        got["deviceEvents"],
        json!([
            "INITIAL_SESSION",
            "SIGNED_IN",
            "TOKEN_REFRESHED",
            "SIGNED_OUT"
        ]),
        "{got}"
    );
    assert_eq!(got["signOut"], json!({"error": null, "session": null}));
    assert_api_error(&got["afterSignOut"], "refresh_token_not_found", 400);
    assert_eq!(
        got["events"],
        json!([
            "INITIAL_SESSION",
            "SIGNED_IN",
            "SIGNED_IN",
            "USER_UPDATED",
            "TOKEN_REFRESHED",
            "SIGNED_OUT"
        ]),
        "{got}"
    );
    assert_eq!(
        got["createUser"],
        json!({"error": null, "email": "made@example.com", "confirmed": true, "by": "admin"})
    );
    assert_eq!(got["madeSignsIn"], Value::Null, "{got}");
    assert_eq!(got["listUsers"]["error"], Value::Null, "{got}");
    assert_eq!(got["listUsers"]["count"], 1);
    assert_eq!(got["listUsers"]["aud"], "authenticated");
    // ada, made, and weak@ was refused: two accounts, one per page.
    assert_eq!(got["listUsers"]["total"], 2);
    assert_eq!(got["listUsers"]["nextPage"], 2);
    assert_eq!(got["listUsers"]["lastPage"], 2);
    assert_eq!(
        got["getUserById"],
        json!({"error": null, "email": "made@example.com"})
    );
    assert_eq!(got["deleteUser"], Value::Null, "{got}");
    assert_api_error(&got["afterDelete"], "user_not_found", 404);
    assert_api_error(&got["adminWithAnonKey"], "not_admin", 403);
    assert_eq!(got["resetPassword"], json!({"error": null, "data": {}}));
    assert_eq!(
        got["signInWithOtp"],
        json!({"error": null, "user": null, "session": null})
    );

    // The two emails, over SMTP.
    let mails = [sink.next().await, sink.next().await];
    let recovery = pick(&mails, "ada@example.com");
    assert_eq!(recovery.header("Subject").unwrap(), "Reset your password");
    assert_eq!(
        recovery.link_param("redirect_to"),
        "http://localhost:3000/reset"
    );
    assert!(
        recovery
            .link()
            .starts_with("http://localhost:9/auth/v1/verify?token=")
    );
    let otp = pick(&mails, "otp@example.com");
    assert_eq!(otp.header("Subject").unwrap(), "Confirm your signup");

    let token_hash = recovery.link_param("token");
    let code = otp.code();
    let got = js::run(
        "auth.mjs",
        &[
            env.as_slice(),
            &[
                ("PHASE", "verify"),
                ("RECOVERY_TOKEN_HASH", token_hash.as_str()),
                ("OTP_CODE", code.as_str()),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(
        got["recovery"],
        json!({"error": null, "email": "ada@example.com", "session": true}),
        "{got}"
    );
    assert_eq!(got["newPassword"], Value::Null, "{got}");
    assert_eq!(got["signInNew"], Value::Null, "{got}");
    assert_api_error(&got["signInOld"], "invalid_credentials", 400);
    assert_api_error(&got["recoveryAgain"], "otp_expired", 403);
    assert_eq!(
        got["recoveryEvents"],
        json!(["INITIAL_SESSION", "PASSWORD_RECOVERY", "USER_UPDATED"]),
        "{got}"
    );
    assert_eq!(
        got["otp"],
        json!({"error": null, "email": "otp@example.com", "via": "otp", "confirmed": true}),
        "{got}"
    );
    assert_eq!(
        got["otpUser"],
        json!({"error": null, "email": "otp@example.com"})
    );
    assert_eq!(
        got["otpEvents"],
        json!(["INITIAL_SESSION", "SIGNED_IN"]),
        "{got}"
    );
}
