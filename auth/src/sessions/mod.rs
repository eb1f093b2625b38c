//! Sessions and refresh-token rotation, one semantics for both realms. A session
//! (`auth.sessions`, `dashboard.sessions`) is one sign-in; its refresh tokens form a family:
//! each use revokes the token and issues its child. Presenting a token that was already
//! rotated means two parties hold the family, so the whole session is revoked.
//!
//! **A session ends when its row is deleted** — by sign-out, by reuse detection, by an
//! expired refresh token, by a password change (the other sessions), or by the runbook's
//! `DELETE FROM auth.sessions WHERE user_id = …`. The refresh tokens go with it (ON DELETE
//! CASCADE), every access token naming it is refused from the next request on (the HTTP
//! guard and the realtime socket check liveness), and the realtime engine closes the
//! sockets of a deleted app-user session from the replication stream. Tokens are random and
//! opaque; only their SHA-256 is stored.

mod store;

pub(crate) use store::SessionStore;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes in a refresh token (256 bits).
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// `n` random bytes from the thread CSPRNG (ChaCha, seeded from the OS), base64url
/// without padding.
pub fn random_base64url(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of an opaque secret (refresh token, service key): hex SHA-256. The
/// secrets carry 256 random bits, so a fast hash is enough; no salt is needed for lookup.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new refresh token: the text handed to the client once, and the hash stored.
#[derive(Clone)]
pub struct RefreshToken {
    /// Sent to the client; never stored or logged.
    pub token: String,
    /// `auth.refresh_tokens.token_hash`.
    pub hash: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let token = random_base64url(REFRESH_TOKEN_BYTES);
        let hash = hash_secret(&token);
        RefreshToken { token, hash }
    }

    /// Whether `text` could be a refresh token at all (length and alphabet), so garbage is
    /// refused without a database round trip.
    pub fn is_well_formed(text: &str) -> bool {
        // 32 bytes → 43 base64url characters; accept a little more for future lengths.
        (43..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// The state of a presented refresh token, as read from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRefreshToken {
    /// Already rotated (or revoked).
    pub revoked: bool,
    /// Seconds since the token was issued.
    pub age: Duration,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Valid: revoke it and issue its child.
    Rotate,
    /// Already rotated: someone else holds the family. Revoke the whole session.
    ReuseDetected,
    /// Older than `auth.refresh_token_ttl`.
    Expired,
}

/// Decides a refresh. Reuse wins over expiry: a replayed old token is a compromise signal
/// whatever its age.
pub fn decide(stored: StoredRefreshToken, ttl: Duration) -> RefreshDecision {
    if stored.revoked {
        RefreshDecision::ReuseDetected
    } else if stored.age >= ttl {
        RefreshDecision::Expired
    } else {
        RefreshDecision::Rotate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_opaque_and_hashed() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 43);
        assert!(RefreshToken::is_well_formed(&a.token));
        assert_eq!(a.hash, hash_secret(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.token));
        assert!(!format!("{a:?}").contains(&a.token));
        for bad in [
            "",
            "short",
            "' OR 1=1 --aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &"a".repeat(500),
        ] {
            assert!(!RefreshToken::is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn rotation_reuse_and_expiry() {
        let ttl = Duration::from_secs(60);
        let fresh = StoredRefreshToken {
            revoked: false,
            age: Duration::from_secs(1),
        };
        assert_eq!(decide(fresh, ttl), RefreshDecision::Rotate);
        let old = StoredRefreshToken {
            revoked: false,
            age: ttl,
        };
        assert_eq!(decide(old, ttl), RefreshDecision::Expired);
        let replayed = StoredRefreshToken {
            revoked: true,
            age: Duration::from_secs(1000),
        };
        assert_eq!(decide(replayed, ttl), RefreshDecision::ReuseDetected);
    }
}
