//! The email flow at the service: a token is checked against the account's current address
//! when spent, wrong codes void only their own address's tokens, and emails of one purpose
//! are `min_interval` apart.

use std::time::Duration;

use fluxbase_auth::{AdminAttributes, AuthError, LinkKind, Links, Proof, SignUp, VerifyType};

use crate::support::{client, service};

fn links() -> Links {
    Links {
        verify_url: "http://api.test/auth/v1/verify".into(),
        redirect_to: None,
    }
}

async fn account(service: &fluxbase_auth::AuthService, email: &str) -> uuid::Uuid {
    let grant = service
        .sign_up(
            SignUp {
                email: email.into(),
                password: "long enough password".into(),
                data: None,
            },
            &client(),
        )
        .await
        .unwrap()
        .session()
        .unwrap();
    grant.user["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_token_sent_before_an_email_change_stops_working() {
    let (service, db) = service(|_| {}).await;
    let id = account(&service, "before@example.com").await;
    let link = service
        .generate_link(
            LinkKind::Recovery,
            "before@example.com",
            None,
            None,
            &links(),
            &client(),
        )
        .await
        .unwrap();
    service
        .admin_update_user(
            id,
            AdminAttributes {
                email: Some("after@example.com".into()),
                ..AdminAttributes::default()
            },
            &client(),
        )
        .await
        .unwrap()
        .unwrap();
    let err = service
        .verify(
            VerifyType::Recovery,
            Proof::Link {
                token: &link.hashed_token,
            },
            &client(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::OtpInvalid), "{err}");
    let reason: String = db
        .client()
        .await
        .query_one(
            "SELECT payload ->> 'reason' FROM auth.audit_log_entries \
             WHERE actor_id = $1 AND action = 'otp_failed'",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "address_changed");
}

#[tokio::test]
async fn wrong_codes_void_only_the_tokens_of_their_address() {
    let (service, _db) = service(|_| {}).await;
    account(&service, "a@example.com").await;
    account(&service, "b@example.com").await;
    let mut codes = Vec::new();
    for email in ["a@example.com", "b@example.com"] {
        let link = service
            .generate_link(LinkKind::MagicLink, email, None, None, &links(), &client())
            .await
            .unwrap();
        codes.push(link.email_otp);
    }
    let wrong = if codes[0] == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..fluxbase_auth::one_time::MAX_CODE_ATTEMPTS {
        let err = service
            .verify(
                VerifyType::MagicLink,
                Proof::Code {
                    email: "a@example.com",
                    code: wrong,
                },
                &client(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::OtpInvalid));
    }
    let voided = service
        .verify(
            VerifyType::MagicLink,
            Proof::Code {
                email: "a@example.com",
                code: &codes[0],
            },
            &client(),
        )
        .await;
    assert!(matches!(voided, Err(AuthError::OtpInvalid)));
    let other = service
        .verify(
            VerifyType::MagicLink,
            Proof::Code {
                email: "b@example.com",
                code: &codes[1],
            },
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(other.user["email"], "b@example.com");
}

#[tokio::test]
async fn emails_of_one_purpose_are_min_interval_apart() {
    let (service, _db) = service(|s| s.email.min_interval = Duration::from_secs(60)).await;
    account(&service, "often@example.com").await;
    service
        .request_recovery("often@example.com", &links(), &client())
        .await
        .unwrap();
    match service
        .request_recovery("often@example.com", &links(), &client())
        .await
    {
        Err(AuthError::EmailRateLimited { retry_after }) => {
            assert!(
                retry_after <= Duration::from_secs(60) && retry_after > Duration::from_secs(50)
            );
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    // Another purpose has its own interval; an unknown address is not limited (nothing sent).
    service
        .request_magic_link("often@example.com", false, None, &links(), &client())
        .await
        .unwrap();
    for _ in 0..2 {
        service
            .request_recovery("nobody@example.com", &links(), &client())
            .await
            .unwrap();
    }

    let (service, _db) = service_without_interval().await;
    account(&service, "often@example.com").await;
    for _ in 0..2 {
        service
            .request_recovery("often@example.com", &links(), &client())
            .await
            .unwrap();
    }
}

async fn service_without_interval() -> (
    fluxbase_auth::AuthService,
    fluxbase_migrations::test_utils::TestDb,
) {
    service(|s| s.email.min_interval = Duration::ZERO).await
}
