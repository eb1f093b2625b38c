//! Why an auth operation was refused or failed: one error type with a kind per outcome a
//! client can tell apart, each with its [`Code`] in the one vocabulary. Database errors
//! keep their source and are mapped through [`DbErrorKind`], never through a SQLSTATE.
//! Messages never carry a password, a token, a key or a stored hash.

use std::time::Duration;

use fluxbase_migrations::{Code, DbError, ErrorCode};

use crate::JwtError;

/// Why a refresh token was refused (all answer 401 `invalid_refresh_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    /// Unknown, malformed, or of an ended session.
    NotFound,
    /// Already rotated: the whole session was revoked.
    Reused,
    /// Older than the realm's `refresh_token_ttl`: the session was ended.
    Expired,
}

/// An auth error. `Display` is the client's message (the codes that hide their text —
/// internal, database unavailable — are replaced by a fixed message at the edge).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No JWT secret is configured: tokens cannot be signed or verified.
    #[error("token signing is not configured (auth.jwt_secret / FLUXBASE_JWT_SECRET)")]
    NotConfigured,
    /// The token's signature, structure, algorithm or validity window is wrong.
    #[error(transparent)]
    Token(#[from] JwtError),
    /// A credential is needed and none (or not the right kind) was given.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A presented service key is unknown, expired, revoked or malformed.
    #[error("invalid, expired or revoked service key")]
    InvalidServiceKey,
    /// A well-signed access token whose session was signed out, revoked or deleted.
    #[error("the session has ended: sign in again")]
    SessionEnded,
    /// Wrong email or password (one answer for both).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A refresh token was refused.
    #[error("{}", match .0 {
        RefreshRefusal::NotFound => "refresh token not found or revoked",
        RefreshRefusal::Reused => "refresh token already used: the session has been revoked",
        RefreshRefusal::Expired => "refresh token expired: sign in again",
    })]
    Refresh(RefreshRefusal),
    /// A dashboard account locked after too many failures.
    #[error("account locked after too many failed logins; try again in {seconds} seconds")]
    Locked {
        /// Seconds until the lock ends (at least 1).
        seconds: u64,
    },
    /// A wrong, reused or malformed second factor.
    #[error("invalid field `code`: {0}")]
    TwoFactorCode(&'static str),
    /// A 2FA call out of order.
    #[error("{0}")]
    TwoFactorState(&'static str),
    /// A well-formed value that breaks a rule; names the field.
    #[error("invalid field `{field}`: {reason}")]
    Invalid {
        /// The field's name as the client sent it.
        field: &'static str,
        /// What is wrong (never the value).
        reason: String,
    },
    /// A request that gives none of the fields it needs one of.
    #[error("{0}")]
    Missing(&'static str),
    /// A new password shorter than the policy's minimum.
    #[error("invalid field `password`: must be at least {min} characters ({key})")]
    WeakPassword {
        /// The minimum in characters.
        min: usize,
        /// The configuration key that sets it.
        key: &'static str,
    },
    /// Signup or email change to a taken email.
    #[error("invalid field `email`: an account with this email address already exists")]
    AlreadyExists,
    /// A password sign-in of an account whose email is not confirmed while
    /// `auth.email_confirmation` is on.
    #[error("email not confirmed: follow the link sent to the address first")]
    EmailNotConfirmed,
    /// A one-time token (link or code) that is unknown, spent, expired, or had too many
    /// wrong codes (one answer for all).
    #[error("the token has expired or is invalid")]
    OtpInvalid,
    /// Another email of the same purpose was sent to the account less than
    /// `auth.email_min_interval` ago.
    #[error("for security purposes, this can only be requested again after {} seconds", .retry_after.as_secs().max(1))]
    EmailRateLimited {
        /// When the next email may be requested.
        retry_after: Duration,
    },
    /// A passwordless sign-in for an unknown address that asked not to create an account.
    #[error("signups are not allowed for this request (`create_user` is false)")]
    SignupNotAllowed,
    /// The resource's state forbids the operation.
    #[error("{0}")]
    Conflict(&'static str),
    /// No such resource.
    #[error("{0}")]
    NotFound(&'static str),
    /// Password hashing is at capacity: retry shortly.
    #[error("the server is busy hashing passwords; retry in {} second(s)", .retry_after.as_secs().max(1))]
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
    /// The database failed; the kind decides the code.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A bug or an unexpected failure (hashing, sealed secrets); details for the log only.
    #[error("{context}: {source}")]
    Internal {
        /// What was being done.
        context: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AuthError {
    /// A validation error on `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        AuthError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// An internal error with its context and cause.
    pub fn internal(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        AuthError::Internal {
            context,
            source: source.into(),
        }
    }
}

impl From<tokio_postgres::Error> for AuthError {
    fn from(err: tokio_postgres::Error) -> Self {
        AuthError::Database(DbError::from(err))
    }
}

impl ErrorCode for AuthError {
    fn code(&self) -> Code {
        match self {
            AuthError::NotConfigured => Code::ServiceUnavailable,
            AuthError::Token(err) => err.code(),
            AuthError::Unauthenticated(_) | AuthError::InvalidServiceKey => Code::Unauthorized,
            AuthError::Forbidden(_) => Code::Forbidden,
            AuthError::SessionEnded => Code::SessionNotFound,
            AuthError::InvalidCredentials => Code::InvalidCredentials,
            AuthError::Refresh(_) => Code::InvalidRefreshToken,
            AuthError::Locked { .. } => Code::AccountLocked,
            AuthError::TwoFactorCode(_) => Code::InvalidTwoFactorCode,
            AuthError::TwoFactorState(_) => Code::TwoFactorState,
            AuthError::Invalid { .. } | AuthError::Missing(_) => Code::ValidationFailed,
            AuthError::WeakPassword { .. } => Code::WeakPassword,
            AuthError::AlreadyExists => Code::UserAlreadyExists,
            AuthError::EmailNotConfirmed | AuthError::OtpInvalid | AuthError::SignupNotAllowed => {
                Code::Forbidden
            }
            AuthError::EmailRateLimited { .. } => Code::RateLimited,
            AuthError::Conflict(_) => Code::Conflict,
            AuthError::NotFound(_) => Code::NotFound,
            AuthError::Overloaded { .. } => Code::Overloaded,
            AuthError::Database(err) => err.code(),
            AuthError::Internal { .. } => Code::Internal,
        }
    }

    fn client_message(&self) -> String {
        match self {
            AuthError::Database(err) => err.client_message(),
            other if other.code().is_private() => other.code().private_message().to_string(),
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Locked { seconds } => Some(Duration::from_secs(*seconds)),
            AuthError::Overloaded { retry_after } | AuthError::EmailRateLimited { retry_after } => {
                Some(*retry_after)
            }
            AuthError::Database(err) => err.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_vocabulary_and_private_ones_hide_their_text() {
        let cases: Vec<(AuthError, Code)> = vec![
            (AuthError::SessionEnded, Code::SessionNotFound),
            (
                AuthError::Refresh(RefreshRefusal::Reused),
                Code::InvalidRefreshToken,
            ),
            (AuthError::Locked { seconds: 3 }, Code::AccountLocked),
            (AuthError::invalid("email", "bad"), Code::ValidationFailed),
            (
                AuthError::Overloaded {
                    retry_after: Duration::from_secs(1),
                },
                Code::Overloaded,
            ),
            (AuthError::Token(JwtError::Expired), Code::TokenExpired),
            (AuthError::Token(JwtError::NotYetValid), Code::InvalidToken),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
        }
        let internal = AuthError::internal("sealing", "secret-ish detail");
        assert_eq!(internal.client_message(), "internal error");
        assert!(internal.to_string().contains("secret-ish detail"));
        assert_eq!(
            AuthError::Locked { seconds: 7 }.retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            AuthError::invalid("email", "not a valid email address").to_string(),
            "invalid field `email`: not a valid email address"
        );
    }
}
