//! Passwords: the one policy of both kinds of user, the hashes ([`hash`]) and the bounded
//! hasher that runs them ([`pool`]).
//!
//! Policy: a **new** password has at least the realm's minimum (`auth.password_min_length`
//! or `dashboard.password_min_length`) and at most [`MAX_CHARS`] characters. A **presented**
//! password (sign-in, 2FA disable) is refused only when empty or over
//! [`MAX_PRESENTED_BYTES`]: anything that could have been set under an earlier rule still
//! signs in, and nothing larger is ever hashed.

pub mod hash;
pub mod pool;

pub use hash::{PasswordError, Verified};
pub use pool::{HashingSettings, PasswordHasher};

use crate::AuthError;

/// Longest new password, in characters (the stricter of the two earlier limits).
pub const MAX_CHARS: usize = 256;

/// Longest presented password, in bytes.
pub const MAX_PRESENTED_BYTES: usize = 1024;

/// The minimum of one realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest new password, in characters.
    pub min_chars: usize,
    /// The configuration key of the minimum, named in the error.
    pub min_key: &'static str,
}

impl PasswordPolicy {
    /// Checks a new password (signup, change).
    pub fn check_new(&self, password: &str) -> Result<(), AuthError> {
        let n = password.chars().count();
        let min = self.min_chars.max(1);
        if n < min {
            return Err(AuthError::WeakPassword {
                min,
                key: self.min_key,
            });
        }
        if n > MAX_CHARS {
            return Err(AuthError::invalid(
                "password",
                format!("must be at most {MAX_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// Checks a presented password (sign-in, proof of identity).
pub fn check_presented(password: &str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::invalid("password", "must not be empty"));
    }
    if password.len() > MAX_PRESENTED_BYTES {
        return Err(AuthError::invalid(
            "password",
            format!("must be at most {MAX_PRESENTED_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluxbase_migrations::{Code, ErrorCode};

    #[test]
    fn one_policy_for_new_and_presented_passwords() {
        let policy = PasswordPolicy {
            min_chars: 12,
            min_key: "dashboard.password_min_length",
        };
        assert!(policy.check_new("0123456789ab").is_ok());
        let short = policy.check_new("short").unwrap_err();
        assert_eq!(short.code(), Code::WeakPassword);
        assert_eq!(
            short.to_string(),
            "invalid field `password`: must be at least 12 characters (dashboard.password_min_length)"
        );
        let long = policy.check_new(&"é".repeat(257)).unwrap_err();
        assert_eq!(long.code(), Code::ValidationFailed);
        assert!(long.to_string().contains("at most 256 characters"));
        assert!(policy.check_new(&"é".repeat(256)).is_ok());

        assert!(check_presented("x").is_ok());
        assert_eq!(
            check_presented("").unwrap_err().code(),
            Code::ValidationFailed
        );
        assert!(check_presented(&"p".repeat(1024)).is_ok());
        assert!(
            check_presented(&"p".repeat(1025))
                .unwrap_err()
                .to_string()
                .contains("at most 1024 bytes")
        );
    }
}
