//! HTTP errors: every error body is `{"error":{"code","message"}}`, with the status and code
//! of the one vocabulary ([`Code`], in the database crate). Any library error that
//! implements [`ErrorCode`] becomes an [`ApiError`] with `?`; private codes (internal
//! errors, an unreachable database) are logged with their cause and answered with a fixed
//! message, so a client never sees SQL or a stack trace.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
pub use fluxbase_migrations::code::{Code, ErrorCode};
use serde_json::json;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What kind of error.
    pub code: Code,
    /// A message for the client: never a SQL fragment or a stack trace.
    pub message: String,
    /// Seconds for a `Retry-After` header (rate limits, overload).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// An error of `code` with `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
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
        json!({"error": {"code": self.code.as_str(), "message": self.message}})
    }
}

impl<E: ErrorCode> From<E> for ApiError {
    fn from(err: E) -> Self {
        let code = err.code();
        if code.is_private() {
            tracing::error!(error = %err, code = code.as_str(), "request failed");
        }
        ApiError {
            code,
            message: err.client_message(),
            retry_after: err.retry_after().map(|d| d.as_secs().max(1)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        res.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_valid_http_status() {
        for code in Code::ALL {
            let err = ApiError::new(*code, "x");
            assert_eq!(err.status_code().as_u16(), code.status(), "{code}");
        }
    }

    #[test]
    fn a_database_error_reaches_the_client_without_its_sql() {
        let err = ApiError::from(fluxbase_migrations::DbError::TimedOut(
            std::time::Duration::from_secs(2),
        ));
        assert_eq!(err.code, Code::DatabaseUnavailable);
        assert_eq!(err.status_code().as_u16(), 503);
        assert_eq!(err.message, "the database is unavailable; try again");
    }
}
