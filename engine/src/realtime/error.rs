//! [`RealtimeError`]: every refusal of the hub, with its [`Code`] from the one error
//! vocabulary. Codecs turn it into their own error frames (the native `error` frame carries
//! `code.as_str()`), so the hub never writes a frame itself.

use fluxbase_migrations::{Code, ErrorCode};

/// A refused hub call: the vocabulary entry and a message naming the field or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RealtimeError {
    code: Code,
    message: String,
}

impl RealtimeError {
    /// An error of `code` with `message` (which a client may read unless the code is
    /// private).
    pub fn new(code: Code, message: impl Into<String>) -> RealtimeError {
        RealtimeError {
            code,
            message: message.into(),
        }
    }

    /// The context's token has expired: nothing is subscribed nor received until a new
    /// token comes (`access_token`).
    pub fn token_expired() -> RealtimeError {
        RealtimeError::new(
            Code::TokenExpired,
            "access token expired: send a new token (access_token) first",
        )
    }

    /// The channel layer is not running (the engine was not started).
    pub fn not_started() -> RealtimeError {
        RealtimeError::new(Code::ServiceUnavailable, "realtime is not running")
    }

    /// The database could not be reached for a decision the call needs.
    pub fn unavailable() -> RealtimeError {
        RealtimeError::new(
            Code::DatabaseUnavailable,
            Code::DatabaseUnavailable.private_message(),
        )
    }

    /// From any error of the vocabulary (the auth service's, a database error): its code
    /// and the message a client may read.
    pub fn from_coded(err: &dyn ErrorCode) -> RealtimeError {
        RealtimeError::new(err.code(), err.client_message())
    }
}

impl ErrorCode for RealtimeError {
    fn code(&self) -> Code {
        self.code
    }
}
