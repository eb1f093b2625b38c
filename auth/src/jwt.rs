//! HS256 access tokens signed with `FLUXBASE_JWT_SECRET`: verification for every surface
//! (REST, realtime) and signing for the auth service and `fluxbase keys`.
//!
//! Verification checks the signature, `exp` (no leeway: an expired token is expired) and
//! `nbf` (with a small leeway, `auth.jwt_leeway`, for clocks of other issuers that run a
//! little ahead). Every surface verifies through [`JwtKeys::verify`], so the rules hold on
//! every path.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use crate::AuthContext;

/// Why a token was refused. Messages never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("invalid token: not valid yet (nbf)")]
    NotYetValid,
    /// Signature, algorithm (`none`, RS256…) or structure is wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl fluxbase_migrations::ErrorCode for JwtError {
    fn code(&self) -> fluxbase_migrations::Code {
        match self {
            JwtError::Expired => fluxbase_migrations::Code::TokenExpired,
            JwtError::Invalid(_) | JwtError::NotYetValid => fluxbase_migrations::Code::InvalidToken,
        }
    }
}

/// The signing and verification keys of one secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Seconds an `nbf` may lie in the future.
    nbf_leeway: u64,
}

/// Default `auth.jwt_leeway`: clock skew tolerated on `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(HS256, <secret>)")
    }
}

impl JwtKeys {
    /// Keys for an HS256 secret.
    pub fn hs256(secret: &[u8]) -> Self {
        // Only HS256: a token claiming `none` or an asymmetric algorithm is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // `aud` differs between app users and dashboard admins; callers check it.
        validation.validate_aud = false;
        // `nbf` is checked below, with its own leeway (the library's applies to `exp` too).
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            nbf_leeway: DEFAULT_LEEWAY.as_secs(),
        }
    }

    /// The same keys with `leeway` tolerated on `nbf` (`auth.jwt_leeway`).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.nbf_leeway = leeway.as_secs();
        self
    }

    /// Verifies signature, expiry and not-before, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JwtError> {
        let claims = self.verify_signature_and_expiry(token)?;
        match claims.get("nbf") {
            None => {}
            Some(nbf) => {
                // RFC 7519 NumericDate: a number of seconds, possibly fractional.
                let nbf = nbf
                    .as_f64()
                    .ok_or_else(|| JwtError::Invalid("malformed token".into()))?;
                if nbf > (now() + self.nbf_leeway) as f64 {
                    return Err(JwtError::NotYetValid);
                }
            }
        }
        Ok(claims)
    }

    /// The library's part: signature, algorithm, structure and `exp` (no leeway).
    fn verify_signature_and_expiry(&self, token: &str) -> Result<Map<String, Value>, JwtError> {
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
                .map_err(|err| match err.kind() {
                    ErrorKind::ExpiredSignature => JwtError::Expired,
                    ErrorKind::InvalidSignature => JwtError::Invalid("bad signature".into()),
                    ErrorKind::InvalidAlgorithm => {
                        JwtError::Invalid("algorithm must be HS256".into())
                    }
                    _ => JwtError::Invalid("malformed token".into()),
                })?;
        Ok(data.claims)
    }

    /// Verifies a token and builds its context.
    pub fn context(&self, token: &str) -> Result<AuthContext, JwtError> {
        self.verify(token).map(AuthContext::from_claims)
    }

    /// Signs claims with HS256.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of a JSON map cannot fail")
    }
}

/// Seconds since the epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> JwtKeys {
        JwtKeys::hs256(b"0123456789abcdef0123456789abcdef")
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn round_trip() {
        let token = keys().sign(&claims(
            json!({"sub": "u1", "role": "authenticated", "exp": now() + 60}),
        ));
        let ctx = keys().context(&token).unwrap();
        assert_eq!(ctx.uid(), Some("u1"));
        assert_eq!(ctx.role().as_str(), "authenticated");
    }

    #[test]
    fn expired_forged_and_alg_none_are_refused() {
        let expired = keys().sign(&claims(json!({"sub": "u1", "exp": now() - 5})));
        assert_eq!(keys().verify(&expired), Err(JwtError::Expired));

        let other = JwtKeys::hs256(b"another-secret-another-secret-xx");
        let forged = other.sign(&claims(json!({"sub": "u1", "exp": now() + 60})));
        assert!(matches!(keys().verify(&forged), Err(JwtError::Invalid(_))));

        // {"alg":"none"} with the payload of a service_role token and no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.";
        assert!(matches!(keys().verify(none), Err(JwtError::Invalid(_))));

        for garbage in ["", "a.b.c", "not a token", "....."] {
            assert!(matches!(keys().verify(garbage), Err(JwtError::Invalid(_))));
        }
    }

    #[test]
    fn not_before_is_checked_with_the_leeway() {
        let at = |nbf: Value| {
            keys().sign(&claims(
                json!({"sub": "u1", "exp": now() + 3600, "nbf": nbf}),
            ))
        };
        assert_eq!(
            keys().verify(&at(json!(now() + 3600))),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            keys().verify(&at(json!(now() + 60))),
            Err(JwtError::NotYetValid)
        );
        // Within the default leeway, or in the past: valid.
        assert!(keys().verify(&at(json!(now() + 2))).is_ok());
        assert!(keys().verify(&at(json!(now() - 10))).is_ok());
        assert!(keys().verify(&at(json!((now() - 10) as f64 + 0.5))).is_ok());
        // A wider leeway accepts more; a non-number is malformed.
        let wide = keys().with_leeway(Duration::from_secs(120));
        assert!(wide.verify(&at(json!(now() + 60))).is_ok());
        assert!(matches!(
            keys().verify(&at(json!("soon"))),
            Err(JwtError::Invalid(_))
        ));
        // exp gets no leeway.
        let expired = keys().sign(&claims(json!({"sub": "u1", "exp": now() - 1})));
        assert_eq!(wide.verify(&expired), Err(JwtError::Expired));
    }
}
