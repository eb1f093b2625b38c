//! Access tokens of application users (HS256 JWTs with the claims Supabase clients read),
//! the long-lived `anon` / `service_role` API keys of `fluxbase keys`, and the audience
//! check that keeps dashboard-admin tokens out of the application surface.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::JwtKeys;

/// `aud` (and `role`) of application-user access tokens, as in Supabase.
pub const APP_AUDIENCE: &str = "authenticated";

/// `iss` of the API keys printed by `fluxbase keys`.
pub const API_KEY_ISSUER: &str = "fluxbase";

/// Lifetime of the API keys printed by `fluxbase keys` (10 years, as Supabase's are
/// long-lived: they identify a role, not a user).
pub const API_KEY_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The identity an access token is issued for.
#[derive(Debug, Clone)]
pub struct TokenSubject<'a> {
    /// `auth.users.id`.
    pub user_id: &'a str,
    /// The user's email (lower case), if any.
    pub email: Option<&'a str>,
    /// `auth.sessions.id` the token belongs to.
    pub session_id: &'a str,
    /// `raw_app_meta_data`: set by the server only.
    pub app_metadata: &'a Value,
    /// `raw_user_meta_data`: set by the user.
    pub user_metadata: &'a Value,
}

/// What a successful sign-in, 2FA step or refresh hands out, in the shape Supabase clients
/// read (both realms): `{access_token, token_type, expires_in, expires_at, refresh_token,
/// user}`.
#[derive(Clone, serde::Serialize)]
pub struct Grant {
    /// The JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Its expiry, seconds since the epoch.
    pub expires_at: u64,
    /// The refresh token, shown once.
    pub refresh_token: String,
    /// The user's public fields.
    pub user: Value,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A signed access token and its lifetime.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Expiry, seconds since the epoch.
    pub expires_at: u64,
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs the access token of `subject`, valid for `ttl` from `now` (epoch seconds).
pub fn issue_access_token(
    keys: &JwtKeys,
    subject: &TokenSubject<'_>,
    ttl: Duration,
    now: u64,
) -> AccessToken {
    // At least one second: a zero TTL would hand out tokens that are already expired.
    let expires_in = ttl.as_secs().max(1);
    let expires_at = now + expires_in;
    let claims = json!({
        "sub": subject.user_id,
        "role": APP_AUDIENCE,
        "aud": APP_AUDIENCE,
        "exp": expires_at,
        "iat": now,
        "session_id": subject.session_id,
        "email": subject.email.unwrap_or(""),
        "app_metadata": subject.app_metadata,
        "user_metadata": subject.user_metadata,
        // Supabase's claims that RLS policies and auth-js read: one factor, a real account.
        "aal": "aal1",
        "is_anonymous": false,
    });
    let Value::Object(claims) = claims else {
        unreachable!("json! of an object literal is an object")
    };
    AccessToken {
        token: keys.sign(&claims),
        expires_in,
        expires_at,
    }
}

/// Whether `claims` carry the audience `aud` (`aud` may be a string or an array, RFC 7519).
pub fn has_audience(claims: &Map<String, Value>, aud: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == aud,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud)),
        _ => false,
    }
}

/// Whether verified claims are those of an application user's access token: role and
/// audience `authenticated`, a subject and a session. A dashboard-admin token (its own
/// audience and role) or an API key never passes.
pub fn is_app_user(claims: &Map<String, Value>) -> bool {
    has_audience(claims, APP_AUDIENCE)
        && claims.get("role").and_then(Value::as_str) == Some(APP_AUDIENCE)
        && claims
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        && claims
            .get("session_id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
}

/// A long-lived API key JWT for `role` (`anon` or `service_role`), as `fluxbase keys`
/// prints and Supabase clients expect as their `apikey`.
pub fn api_key(keys: &JwtKeys, role: &str, now: u64) -> String {
    let claims = json!({
        "iss": API_KEY_ISSUER,
        "role": role,
        "iat": now,
        "exp": now + API_KEY_TTL.as_secs(),
    });
    let Value::Object(claims) = claims else {
        unreachable!("json! of an object literal is an object")
    };
    keys.sign(&claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::hs256(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn access_token_carries_the_supabase_claims() {
        let app = json!({"provider": "email"});
        let user = json!({"name": "Ada"});
        let subject = TokenSubject {
            user_id: "u1",
            email: Some("ada@example.com"),
            session_id: "s1",
            app_metadata: &app,
            user_metadata: &user,
        };
        let t = issue_access_token(&keys(), &subject, Duration::from_secs(3600), 1_000);
        assert_eq!(t.expires_in, 3600);
        assert_eq!(t.expires_at, 4_600);
        // Verification checks exp against the clock: sign one valid now to read it back.
        let t = issue_access_token(&keys(), &subject, Duration::from_secs(3600), now_secs());
        let claims = keys().verify(&t.token).unwrap();
        for (k, v) in [
            ("sub", json!("u1")),
            ("role", json!("authenticated")),
            ("aud", json!("authenticated")),
            ("session_id", json!("s1")),
            ("email", json!("ada@example.com")),
            ("app_metadata", app.clone()),
            ("user_metadata", user.clone()),
        ] {
            assert_eq!(claims[k], v, "{k}");
        }
        assert!(is_app_user(&claims));
    }

    #[test]
    fn other_audiences_are_not_app_users() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        let admin = obj(
            json!({"sub": "a", "role": "dashboard_admin", "aud": "fluxbase-dashboard", "session_id": "s"}),
        );
        assert!(!is_app_user(&admin));
        let admin_role_app_aud = obj(
            json!({"sub": "a", "role": "dashboard_admin", "aud": "authenticated", "session_id": "s"}),
        );
        assert!(!is_app_user(&admin_role_app_aud));
        let no_aud = obj(json!({"sub": "a", "role": "authenticated", "session_id": "s"}));
        assert!(!is_app_user(&no_aud));
        let list = obj(
            json!({"sub": "a", "role": "authenticated", "aud": ["x", "authenticated"], "session_id": "s"}),
        );
        assert!(is_app_user(&list));
        let service = keys()
            .verify(&api_key(&keys(), "service_role", now_secs()))
            .unwrap();
        assert!(!is_app_user(&service));
        assert_eq!(service["iss"], "fluxbase");
        assert!(service["exp"].as_u64().unwrap() > now_secs() + 9 * 365 * 24 * 3600);
    }
}
