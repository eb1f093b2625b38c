//! Sessions: rotation, reuse detection and expiry end the session in both realms, and
//! `authenticate` refuses a token whose session is gone.

use std::time::Duration;

use fluxbase_auth::{
    AdminSignUp, AuthError, Caller, Credentials, LoginOutcome, Realm, RefreshRefusal, SignOutScope,
    SignUp,
};
use fluxbase_migrations::{Code, ErrorCode};
use uuid::Uuid;

use crate::support::{client, service};

const ADMIN_PASSWORD: &str = "SecurePassword123!";

async fn app_user(service: &fluxbase_auth::AuthService, email: &str) -> fluxbase_auth::Grant {
    service
        .sign_up(
            SignUp {
                email: email.into(),
                password: "correct horse".into(),
                data: None,
            },
            &client(),
        )
        .await
        .unwrap()
        .session()
        .expect("confirmation is off: signed in at once")
}

async fn admin(service: &fluxbase_auth::AuthService) -> fluxbase_auth::Grant {
    service
        .admin_sign_up(
            &Caller::Anon(fluxbase_auth::AuthContext::anon()),
            AdminSignUp {
                email: "admin@example.com".into(),
                password: ADMIN_PASSWORD.into(),
                full_name: None,
            },
            &client(),
        )
        .await
        .unwrap();
    match service
        .admin_login("admin@example.com", ADMIN_PASSWORD.into(), &client())
        .await
        .unwrap()
    {
        LoginOutcome::Granted(grant) => grant,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_ends_the_whole_session_in_both_realms_and_its_access_token_with_it() {
    let (service, _db) = service(|_| {}).await;
    for realm in [Realm::App, Realm::Dashboard] {
        let grant = match realm {
            Realm::App => app_user(&service, "ada@example.com").await,
            Realm::Dashboard => admin(&service).await,
        };
        let access = grant.access_token.clone();
        assert!(
            service.authenticate(Some(&access)).await.is_ok(),
            "{realm:?}"
        );

        let r1 = grant.refresh_token;
        let rotated = service.refresh(realm, &r1, &client()).await.unwrap();
        let r2 = rotated.refresh_token.clone();
        assert_ne!(r1, r2);
        // The replay of r1 revokes the family: r2 and every access token of the session die.
        let replay = service.refresh(realm, &r1, &client()).await.unwrap_err();
        assert!(
            matches!(replay, AuthError::Refresh(RefreshRefusal::Reused)),
            "{realm:?}: {replay}"
        );
        let after = service.refresh(realm, &r2, &client()).await.unwrap_err();
        assert!(
            matches!(after, AuthError::Refresh(RefreshRefusal::NotFound)),
            "{realm:?}: {after}"
        );
        for token in [&access, &rotated.access_token] {
            let err = service.authenticate(Some(token)).await.unwrap_err();
            assert_eq!(err.code(), Code::SessionNotFound, "{realm:?}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_refresh_token_ends_its_session_in_both_realms() {
    let (service, _db) = service(|s| {
        s.app.refresh_token_ttl = Duration::ZERO;
        s.dashboard.refresh_token_ttl = Duration::ZERO;
    })
    .await;
    for realm in [Realm::App, Realm::Dashboard] {
        let grant = match realm {
            Realm::App => app_user(&service, "ttl@example.com").await,
            Realm::Dashboard => admin(&service).await,
        };
        let err = service
            .refresh(realm, &grant.refresh_token, &client())
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::Refresh(RefreshRefusal::Expired)),
            "{err}"
        );
        let err = service
            .authenticate(Some(&grant.access_token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::SessionNotFound, "{realm:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbooks_delete_and_sign_out_are_seen_by_authenticate_at_once() {
    let (service, db) = service(|_| {}).await;
    let a = app_user(&service, "victim@example.com").await;
    let b = service
        .sign_in("victim@example.com", "correct horse".into(), &client())
        .await
        .unwrap();
    let other = app_user(&service, "bystander@example.com").await;
    let caller = |grant: &fluxbase_auth::Grant| Credentials {
        token: Some(grant.access_token.clone()),
        service_key: None,
    };
    let Caller::User(session_a) = service.identify(&caller(&a)).await.unwrap() else {
        panic!("not a user session");
    };
    // Global sign-out from session a ends b too.
    service
        .sign_out(&session_a, SignOutScope::Global, &client())
        .await
        .unwrap();
    for grant in [&a, &b] {
        let err = service.identify(&caller(grant)).await.unwrap_err();
        assert!(matches!(err, AuthError::SessionEnded), "{err}");
    }
    assert!(service.identify(&caller(&other)).await.is_ok());

    // The runbook's SQL, verbatim but for the id.
    let user_id: Uuid = other.user["id"].as_str().unwrap().parse().unwrap();
    db.client()
        .await
        .execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&user_id])
        .await
        .unwrap();
    let err = service
        .authenticate(Some(&other.access_token))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::SessionEnded), "{err}");
    let err = service
        .refresh(Realm::App, &other.refresh_token, &client())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::Refresh(RefreshRefusal::NotFound)),
        "{err}"
    );
    // Tokens that name no session (API keys) are checked for signature and window only.
    let keys = service.keys().unwrap();
    let api_key =
        fluxbase_auth::tokens::api_key(keys, "service_role", fluxbase_auth::tokens::now_secs());
    let ctx = service.authenticate(Some(&api_key)).await.unwrap();
    assert!(ctx.bypasses_rls());
    assert_eq!(
        service.authenticate(None).await.unwrap().role().as_str(),
        "anon"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_first_admin_only_an_admin_session_creates_admins() {
    let (service, _db) = service(|_| {}).await;
    let grant = admin(&service).await;
    let new = |email: &str| AdminSignUp {
        email: email.into(),
        password: ADMIN_PASSWORD.into(),
        full_name: None,
    };
    let keys = service.keys().unwrap();
    let service_role = fluxbase_auth::AuthContext::from_claims(
        keys.verify(&fluxbase_auth::tokens::api_key(
            keys,
            "service_role",
            fluxbase_auth::tokens::now_secs(),
        ))
        .unwrap(),
    );
    for (caller, code) in [
        (
            Caller::Anon(fluxbase_auth::AuthContext::anon()),
            Code::Unauthorized,
        ),
        (Caller::Token(service_role), Code::Forbidden),
    ] {
        let err = service
            .admin_sign_up(&caller, new("second@example.com"), &client())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let caller = service
        .identify(&Credentials {
            token: Some(grant.access_token.clone()),
            service_key: None,
        })
        .await
        .unwrap();
    assert!(matches!(caller, Caller::Admin(_)));
    service
        .admin_sign_up(&caller, new("second@example.com"), &client())
        .await
        .unwrap();
    // After logout the same token is refused before it can act.
    let Caller::Admin(session) = &caller else {
        unreachable!()
    };
    service.admin_logout(session, &client()).await.unwrap();
    let err = service
        .identify(&Credentials {
            token: Some(grant.access_token),
            service_key: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::SessionEnded), "{err}");
}
