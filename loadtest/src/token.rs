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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = Claims {
            sub: user.to_string(),
            role: role.to_owned(),
            exp: now + self.ttl_secs,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )?)
    }
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
