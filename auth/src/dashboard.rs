//! Dashboard administrators' tokens: access tokens with role `dashboard_admin` and an
//! audience of their own (so they are never app-user tokens and app-user tokens never open
//! admin routes) and the short-lived token of the 2FA second step. Refresh tokens and their
//! rotation are those of [`crate::sessions`].

use serde_json::{Map, Value, json};

use crate::AuthContext;
use crate::tokens::has_audience;

/// `aud` of a dashboard admin's access token.
pub const AUDIENCE: &str = "fluxbase-dashboard";
/// `role` of a dashboard admin's access token.
pub const ROLE: &str = "dashboard_admin";
/// `aud` of the token between the password step and the 2FA step of a login: it carries no
/// role and opens nothing but `POST /dashboard/auth/2fa/verify`.
pub const MFA_AUDIENCE: &str = "fluxbase-dashboard-2fa";
/// Whether a verified context is a dashboard admin's access token: role
/// `dashboard_admin`, audience [`AUDIENCE`], and a subject.
pub fn is_admin(ctx: &AuthContext) -> bool {
    ctx.role().as_str() == ROLE && has_audience(ctx.claims(), AUDIENCE) && ctx.uid().is_some()
}

/// The claims of an admin access token.
pub fn access_claims(
    user_id: &str,
    email: &str,
    session_id: &str,
    now: u64,
    ttl_secs: u64,
) -> Map<String, Value> {
    let claims = json!({
        "sub": user_id,
        "role": ROLE,
        "aud": AUDIENCE,
        "email": email,
        "session_id": session_id,
        "iat": now,
        "exp": now + ttl_secs,
    });
    claims.as_object().cloned().expect("an object literal")
}

/// The claims of the 2FA second-step token.
pub fn mfa_claims(user_id: &str, email: &str, now: u64, ttl_secs: u64) -> Map<String, Value> {
    let claims = json!({
        "sub": user_id,
        "aud": MFA_AUDIENCE,
        "email": email,
        "iat": now,
        "exp": now + ttl_secs,
    });
    claims.as_object().cloned().expect("an object literal")
}

/// The user id and email of verified 2FA second-step claims; `None` for any other token.
pub fn mfa_subject(claims: &Map<String, Value>) -> Option<(String, String)> {
    if !has_audience(claims, MFA_AUDIENCE) || claims.contains_key("role") {
        return None;
    }
    let sub = claims.get("sub")?.as_str()?.to_string();
    let email = claims.get("email")?.as_str()?.to_string();
    Some((sub, email))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(claims: Map<String, Value>) -> AuthContext {
        AuthContext::from_claims(claims)
    }

    #[test]
    fn admin_tokens_need_role_audience_and_subject() {
        let claims = access_claims("u1", "a@example.com", "s1", 100, 900);
        assert!(is_admin(&ctx(claims.clone())));
        assert_eq!(claims["exp"], 1000);

        let mut app_user = claims.clone();
        app_user.insert("aud".into(), "authenticated".into());
        assert!(!is_admin(&ctx(app_user)));

        let mut wrong_role = claims.clone();
        wrong_role.insert("role".into(), "authenticated".into());
        assert!(!is_admin(&ctx(wrong_role)));

        let mut many = claims.clone();
        many.insert("aud".into(), json!(["other", AUDIENCE]));
        assert!(is_admin(&ctx(many)));

        let mut no_sub = claims;
        no_sub.remove("sub");
        assert!(!is_admin(&ctx(no_sub)));
    }

    #[test]
    fn mfa_tokens_are_not_admin_tokens_and_back() {
        let mfa = mfa_claims("u1", "a@example.com", 100, 300);
        assert!(!is_admin(&ctx(mfa.clone())));
        assert_eq!(
            mfa_subject(&mfa),
            Some(("u1".into(), "a@example.com".into()))
        );
        assert_eq!(
            mfa_subject(&access_claims("u1", "a@example.com", "s", 1, 1)),
            None
        );
    }
}
