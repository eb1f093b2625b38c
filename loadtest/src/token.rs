//! JWTs the harness mints for its simulated users, signed with the server's secret.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;

/// The claims the server reads: subject, role and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (`auth.uid()` on the server).
    pub sub: String,
    /// `authenticated`, `service_role`, or a custom role.
    pub role: String,
    /// Expiry, unix seconds.
    pub exp: u64,
}

impl Claims {
    /// The claims as the SQL baseline and the HTTP floor pass them to
    /// `set_config('request.jwt.claims', …)` (the fields in order).
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The claims the server's auth service puts in an application user's access token
/// (`fluxbase_auth::tokens::issue_access_token`, field for field): with a `session_id`
/// naming a live row of `auth.sessions`, the server asserts that session inside every
/// REST request's transaction, as it does for every signed-in user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppClaims {
    /// The user id (`auth.users.id`).
    pub sub: String,
    /// `authenticated`.
    pub role: String,
    /// `authenticated`.
    pub aud: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// `auth.sessions.id`.
    pub session_id: String,
    /// The user's email.
    pub email: String,
    /// `raw_app_meta_data` (`{}` for the harness's users).
    pub app_metadata: serde_json::Value,
    /// `raw_user_meta_data` (`{}` for the harness's users).
    pub user_metadata: serde_json::Value,
    /// `aal1`.
    pub aal: String,
    /// `false`.
    pub is_anonymous: bool,
}

impl AppClaims {
    /// The claims as the server passes them to `set_config('request.jwt.claims', …)`: a
    /// JSON object with its keys in order.
    pub fn to_json_text(&self) -> String {
        serde_json::to_value(self)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
}

/// Signs HS256 tokens; built once per run so the key is derived once.
pub struct TokenMinter {
    key: EncodingKey,
    /// Lifetime of every token; longer than any run so none expires mid-test.
    ttl_secs: u64,
}

impl TokenMinter {
    /// A minter for `secret`, issuing tokens valid for `ttl_secs`.
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        TokenMinter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            ttl_secs,
        }
    }

    /// A token for an `authenticated` user.
    pub fn user(&self, user: Uuid) -> Result<String> {
        self.mint(user, "authenticated")
    }

    /// A token for `user` with `role`.
    pub fn mint(&self, user: Uuid, role: &str) -> Result<String> {
        let claims = Claims {
            sub: user.to_string(),
            role: role.to_owned(),
            exp: now_secs() + self.ttl_secs,
        };
        self.sign(&claims)
    }

    /// The claims of `user`'s access token for the session `session` (see [`AppClaims`]).
    pub fn app_claims(&self, user: Uuid, session: Uuid) -> AppClaims {
        let now = now_secs();
        AppClaims {
            sub: user.to_string(),
            role: "authenticated".to_owned(),
            aud: "authenticated".to_owned(),
            exp: now + self.ttl_secs,
            iat: now,
            session_id: session.to_string(),
            email: app_user_email(user),
            app_metadata: serde_json::json!({}),
            user_metadata: serde_json::json!({}),
            aal: "aal1".to_owned(),
            is_anonymous: false,
        }
    }

    /// An access token of `user` in the session `session`, as the server issues them.
    pub fn app_user(&self, user: Uuid, session: Uuid) -> Result<String> {
        self.sign(&self.app_claims(user, session))
    }

    /// Signs `claims` (HS256).
    fn sign(&self, claims: &impl Serialize) -> Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.key,
        )?)
    }
}

/// The email of a harness user (`auth.users.email`): under `.invalid`, a domain that
/// never resolves (RFC 2606).
pub fn app_user_email(user: Uuid) -> String {
    format!("loadtest-{user}@loadtest.invalid")
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let minter = TokenMinter::new("a-very-secret-secret-of-32-bytes!", 3600);
        let user = Uuid::new_v4();
        let token = minter.user(user).unwrap();
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"a-very-secret-secret-of-32-bytes!"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.header.alg, Algorithm::HS256);
        assert_eq!(data.claims.sub, user.to_string());
        assert_eq!(data.claims.role, "authenticated");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(data.claims.exp > now + 3500 && data.claims.exp <= now + 3600);

        let wrong = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"another-secret"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn app_user_tokens_carry_the_servers_claims_and_their_session() {
        let minter = TokenMinter::new("s", 60);
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let token = minter.app_user(user, session).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["authenticated"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"s"),
            &validation,
        )
        .unwrap();
        let claims = data.claims;
        // What the server's `is_app_user` and its session probe read.
        assert_eq!(claims["role"], "authenticated");
        assert_eq!(claims["aud"], "authenticated");
        assert_eq!(claims["sub"], user.to_string());
        assert_eq!(claims["session_id"], session.to_string());
        assert_eq!(claims["email"], app_user_email(user));
        assert_eq!(claims["aal"], "aal1");
        // The claims text the SQL baseline sets: the same object, keys sorted as the
        // server's serde_json map writes them.
        let text = minter.app_claims(user, session).to_json_text();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["session_id"], session.to_string());
        assert!(
            text.starts_with(r#"{"aal":"aal1","app_metadata":{},"aud":"authenticated","#),
            "{text}"
        );
    }

    #[test]
    fn service_tokens_carry_their_role() {
        let minter = TokenMinter::new("s", 60);
        let token = minter.mint(Uuid::nil(), "service_role").unwrap();
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"s"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims.role, "service_role");
    }
}
