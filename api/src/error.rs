//! HTTP errors from one table: each [`ErrorCode`] has its status and its JSON code in one
//! place, and every error body is `{"error":{"code","message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Every error a client can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No route or resource at this path.
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The request is malformed.
    BadRequest,
    /// The body is over `server.body_limit`.
    PayloadTooLarge,
    /// No or an invalid credential.
    Unauthorized,
    /// The credential's token has expired.
    TokenExpired,
    /// Authenticated, but not allowed.
    Forbidden,
    /// A service that is turned off or not running.
    ServiceUnavailable,
    /// A rate limit was exceeded (429 with `Retry-After`).
    RateLimited,
    /// Well-formed input that breaks a rule (an invalid email, a name too long); the
    /// message names the field.
    ValidationFailed,
    /// A password shorter than `auth.password_min_length` (or absurdly long).
    WeakPassword,
    /// Signup or email change to an email that is taken.
    UserAlreadyExists,
    /// The resource is in a state that forbids this (e.g. rotating a revoked key).
    Conflict,
    /// Wrong email or password: one answer for both, so accounts cannot be enumerated.
    InvalidCredentials,
    /// A refresh token that is unknown, expired, already used, or of a revoked session.
    InvalidRefreshToken,
    /// A valid access token whose session was revoked (signed out, or deleted by SQL).
    SessionNotFound,
    /// A dashboard account locked after `dashboard.max_failed_logins` failures; the
    /// message says how long is left.
    AccountLocked,
    /// A wrong, reused or expired 2FA code (TOTP or backup code).
    InvalidTwoFactorCode,
    /// A 2FA call out of order: enabling twice, enabling before setup, disabling when off.
    TwoFactorState,
    /// The database cannot be reached.
    DatabaseUnavailable,
    /// A bug or an unexpected failure; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// The one table: code → (HTTP status, JSON code).
    pub fn describe(self) -> (StatusCode, &'static str) {
        match self {
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorCode::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            ErrorCode::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ErrorCode::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorCode::ServiceUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            }
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ErrorCode::ValidationFailed => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ErrorCode::WeakPassword => (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
            ErrorCode::UserAlreadyExists => (StatusCode::CONFLICT, "user_already_exists"),
            ErrorCode::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorCode::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ErrorCode::InvalidRefreshToken => (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
            ErrorCode::SessionNotFound => (StatusCode::UNAUTHORIZED, "session_not_found"),
            ErrorCode::AccountLocked => (StatusCode::LOCKED, "account_locked"),
            ErrorCode::InvalidTwoFactorCode => (StatusCode::UNAUTHORIZED, "invalid_2fa_code"),
            ErrorCode::TwoFactorState => (StatusCode::CONFLICT, "invalid_2fa_state"),
            ErrorCode::DatabaseUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// An error response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of error.
    pub code: ErrorCode,
    /// A message for the client: never a SQL fragment or a stack trace.
    pub message: String,
    /// Seconds for a `Retry-After` header (rate limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` of `secs` seconds to the response.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code.describe().1, "message": self.message}})
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        res.json(self.body())
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        match err {
            crate::db::DbError::Unavailable(_) => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable",
                )
            }
            crate::db::DbError::Query(_) => {
                tracing::error!(error = %err, "query failed");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique() {
        let all = [
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::BadRequest,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Unauthorized,
            ErrorCode::TokenExpired,
            ErrorCode::Forbidden,
            ErrorCode::ServiceUnavailable,
            ErrorCode::RateLimited,
            ErrorCode::ValidationFailed,
            ErrorCode::WeakPassword,
            ErrorCode::UserAlreadyExists,
            ErrorCode::Conflict,
            ErrorCode::InvalidCredentials,
            ErrorCode::InvalidRefreshToken,
            ErrorCode::SessionNotFound,
            ErrorCode::AccountLocked,
            ErrorCode::InvalidTwoFactorCode,
            ErrorCode::TwoFactorState,
            ErrorCode::DatabaseUnavailable,
            ErrorCode::Internal,
        ];
        let mut names: Vec<_> = all.iter().map(|c| c.describe().1).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
