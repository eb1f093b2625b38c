//! Password hashing: argon2id for every new hash; bcrypt hashes (written by the runbook's
//! `crypt(…, gen_salt('bf'))`) still verify and are reported for upgrade.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Why hashing or verifying failed (never the password itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash is not a format we know.
    #[error("unsupported password hash format")]
    UnknownFormat,
    /// The hasher failed (e.g. parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password.
    No,
    /// Right password, modern hash.
    Yes,
    /// Right password, legacy (bcrypt) hash: store a new argon2id hash.
    YesRehash,
}

/// Hashes with argon2id (PHC string, random salt, the crate's default parameters).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies against an argon2 PHC string or a bcrypt `$2a$/$2b$/$2y$` hash.
pub fn verify(password: &str, stored: &str) -> Result<Verified, PasswordError> {
    if stored.starts_with("$2") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Ok(Verified::YesRehash),
            Ok(false) => Ok(Verified::No),
            Err(_) => Err(PasswordError::UnknownFormat),
        };
    }
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::UnknownFormat)?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(Verified::Yes),
        Err(argon2::password_hash::Error::Password) => Ok(Verified::No),
        Err(_) => Err(PasswordError::UnknownFormat),
    }
}

/// A hash that verifies nothing, to spend the same time on unknown accounts as on known
/// ones (no user enumeration by timing).
pub fn dummy_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("fluxbase-dummy-password").unwrap_or_default());
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert_eq!(verify("correct horse", &h), Ok(Verified::Yes));
        assert_eq!(verify("wrong", &h), Ok(Verified::No));
        assert_ne!(hash("correct horse").unwrap(), h, "salts must differ");
    }

    #[test]
    fn bcrypt_verifies_and_asks_for_rehash() {
        // As written by crypt('temporary-password', gen_salt('bf')) (pgcrypto uses $2a$).
        let h = bcrypt::hash("temporary-password", 4)
            .unwrap()
            .replacen("$2b$", "$2a$", 1);
        assert_eq!(verify("temporary-password", &h), Ok(Verified::YesRehash));
        assert_eq!(verify("nope", &h), Ok(Verified::No));
    }

    #[test]
    fn garbage_hashes_are_errors_not_panics() {
        for stored in ["", "plain", "$2a$", "$unknown$x"] {
            assert!(verify("x", stored).is_err(), "{stored}");
        }
        // Parses as a (hash-less) PHC string: it must simply not verify.
        assert!(!matches!(
            verify("x", "$argon2id$v=19$broken"),
            Ok(Verified::Yes | Verified::YesRehash)
        ));
    }
}
