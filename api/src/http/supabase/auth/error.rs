//! GoTrue's errors: the status and `error_code` auth-js turns into `AuthApiError`
//! (`error.code`, `error.status`), from the auth service's errors (with the context that
//! decides between GoTrue's codes) or from our vocabulary's [`Code`] (errors of the shared
//! extractors, guards and middleware, reshaped by [`super::shape`]).
//!
//! Handlers answer the legacy body `{"code": <status>, "error_code", "msg"}`; the shape
//! middleware turns it into the `2024-01-01` body `{"code", "message"}` when the client
//! asks for that version, as GoTrue does.

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};
use fluxbase_auth::{AuthError, RefreshRefusal};
use fluxbase_migrations::ErrorCode;
use serde_json::{Value, json};

use crate::error::{ApiError, Code};

/// A GoTrue error answer.
#[derive(Debug, Clone)]
pub struct GoTrueError {
    /// HTTP status.
    pub status: u16,
    /// GoTrue's `error_code`.
    pub code: &'static str,
    /// The message (`msg`).
    pub msg: String,
    /// `weak_password.reasons`, for `weak_password`.
    pub reasons: Option<Vec<&'static str>>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for GoTrueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.msg)
    }
}

/// Where an auth error happened, when GoTrue answers it differently there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Anywhere else.
    General,
    /// `/signup`: a taken address is `user_already_exists`.
    Signup,
    /// `/verify` by link: the message speaks of a link.
    Link,
}

impl GoTrueError {
    /// An error of `status` and `code` with `msg`.
    pub fn new(status: u16, code: &'static str, msg: impl Into<String>) -> GoTrueError {
        GoTrueError {
            status,
            code,
            msg: msg.into(),
            reasons: None,
            retry_after: None,
        }
    }

    /// 400 `validation_failed`.
    pub fn validation(msg: impl Into<String>) -> GoTrueError {
        GoTrueError::new(400, "validation_failed", msg)
    }

    /// 422 `phone_provider_disabled`: phone numbers are not offered.
    pub fn no_phone() -> GoTrueError {
        GoTrueError::new(
            422,
            "phone_provider_disabled",
            "phone sign-ins are not supported: use an email address",
        )
    }

    /// The legacy body (what handlers send; [`super::shape`] may convert it).
    pub fn legacy_body(&self) -> Value {
        let mut body = json!({"code": self.status, "error_code": self.code, "msg": self.msg});
        if let Some(reasons) = &self.reasons {
            body["weak_password"] = json!({"reasons": reasons});
        }
        body
    }

    /// The body of API version `2024-01-01`.
    pub fn versioned_body(&self) -> Value {
        let mut body = json!({"code": self.code, "message": self.msg});
        if let Some(reasons) = &self.reasons {
            body["weak_password"] = json!({"reasons": reasons});
        }
        body
    }

    /// An auth service error, in `context`.
    pub fn from_auth(err: AuthError, context: Context) -> GoTrueError {
        let retry_after = err.retry_after().map(|d| d.as_secs().max(1));
        let mut e = match &err {
            AuthError::InvalidCredentials => {
                GoTrueError::new(400, "invalid_credentials", "Invalid login credentials")
            }
            AuthError::EmailNotConfirmed => {
                GoTrueError::new(400, "email_not_confirmed", "Email not confirmed")
            }
            AuthError::Refresh(RefreshRefusal::NotFound) => GoTrueError::new(
                400,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            ),
            AuthError::Refresh(RefreshRefusal::Reused) => GoTrueError::new(
                400,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            ),
            AuthError::Refresh(RefreshRefusal::Expired) => GoTrueError::new(
                400,
                "session_expired",
                "Invalid Refresh Token: Session Expired",
            ),
            AuthError::SessionEnded => GoTrueError::new(
                403,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            ),
            AuthError::AlreadyExists if context == Context::Signup => {
                GoTrueError::new(422, "user_already_exists", "User already registered")
            }
            AuthError::AlreadyExists => GoTrueError::new(
                422,
                "email_exists",
                "A user with this email address has already been registered",
            ),
            AuthError::WeakPassword { .. } => GoTrueError {
                reasons: Some(vec!["length"]),
                ..GoTrueError::new(422, "weak_password", err.to_string())
            },
            AuthError::OtpInvalid if context == Context::Link => {
                GoTrueError::new(403, "otp_expired", "Email link is invalid or has expired")
            }
            AuthError::OtpInvalid => {
                GoTrueError::new(403, "otp_expired", "Token has expired or is invalid")
            }
            AuthError::EmailRateLimited { .. } => {
                GoTrueError::new(429, "over_email_send_rate_limit", err.to_string())
            }
            AuthError::SignupNotAllowed => {
                GoTrueError::new(422, "otp_disabled", "Signups not allowed for otp")
            }
            AuthError::NotFound(_) => GoTrueError::new(404, "user_not_found", "User not found"),
            _ => GoTrueError::from_api(ApiError::from(err)),
        };
        e.retry_after = e.retry_after.or(retry_after);
        e
    }

    /// An error of our vocabulary (guards, extractors, middleware, limiters).
    pub fn from_api(err: ApiError) -> GoTrueError {
        let (status, code) = match err.code {
            Code::BadRequest => (400, "bad_json"),
            Code::ValidationFailed => (400, "validation_failed"),
            Code::PayloadTooLarge => (413, "request_entity_too_large"),
            Code::RequestTimeout => (408, "request_timeout"),
            Code::Unauthorized => (401, "no_authorization"),
            Code::InvalidToken | Code::TokenExpired => (403, "bad_jwt"),
            Code::Forbidden => (403, "not_admin"),
            Code::SessionNotFound => (403, "session_not_found"),
            Code::InvalidCredentials => (400, "invalid_credentials"),
            Code::InvalidRefreshToken => (400, "refresh_token_not_found"),
            Code::WeakPassword => (422, "weak_password"),
            Code::UserAlreadyExists => (422, "email_exists"),
            Code::Conflict => (409, "conflict"),
            Code::RateLimited | Code::ConnectionLimit | Code::TooManySubscriptions => {
                (429, "over_request_rate_limit")
            }
            Code::Overloaded | Code::ServiceUnavailable | Code::DatabaseUnavailable => {
                (503, "unexpected_failure")
            }
            Code::Timeout => (504, "request_timeout"),
            Code::Internal => (500, "unexpected_failure"),
            other => (other.status(), other.as_str()),
        };
        GoTrueError {
            reasons: (code == "weak_password").then(|| vec!["length"]),
            retry_after: err.retry_after,
            ..GoTrueError::new(status, code, err.message)
        }
    }
}

impl From<AuthError> for GoTrueError {
    fn from(err: AuthError) -> Self {
        GoTrueError::from_auth(err, Context::General)
    }
}

impl From<ApiError> for GoTrueError {
    fn from(err: ApiError) -> Self {
        GoTrueError::from_api(err)
    }
}

impl ResponseError for GoTrueError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            res.insert_header((RETRY_AFTER, secs));
        }
        res.json(self.legacy_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn auth_errors_take_gotrue_codes_and_statuses() {
        let cases = [
            (
                AuthError::InvalidCredentials,
                Context::General,
                400,
                "invalid_credentials",
            ),
            (
                AuthError::Refresh(RefreshRefusal::Reused),
                Context::General,
                400,
                "refresh_token_already_used",
            ),
            (
                AuthError::Refresh(RefreshRefusal::NotFound),
                Context::General,
                400,
                "refresh_token_not_found",
            ),
            (
                AuthError::SessionEnded,
                Context::General,
                403,
                "session_not_found",
            ),
            (
                AuthError::AlreadyExists,
                Context::Signup,
                422,
                "user_already_exists",
            ),
            (
                AuthError::AlreadyExists,
                Context::General,
                422,
                "email_exists",
            ),
            (AuthError::OtpInvalid, Context::Link, 403, "otp_expired"),
            (
                AuthError::EmailNotConfirmed,
                Context::General,
                400,
                "email_not_confirmed",
            ),
            (
                AuthError::invalid("email", "not a valid email address"),
                Context::General,
                400,
                "validation_failed",
            ),
            (
                AuthError::Internal {
                    context: "x",
                    source: "secret detail".into(),
                },
                Context::General,
                500,
                "unexpected_failure",
            ),
        ];
        for (err, context, status, code) in cases {
            let e = GoTrueError::from_auth(err, context);
            assert_eq!((e.status, e.code), (status, code), "{e}");
            assert!(!e.msg.contains("secret detail"), "{e}");
        }
        let weak = GoTrueError::from(AuthError::WeakPassword {
            min: 8,
            key: "auth.password_min_length",
        });
        assert_eq!(
            weak.legacy_body()["weak_password"]["reasons"],
            json!(["length"])
        );
        assert_eq!(weak.versioned_body()["code"], "weak_password");
        let limited = GoTrueError::from(AuthError::EmailRateLimited {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(
            (limited.status, limited.code, limited.retry_after),
            (429, "over_email_send_rate_limit", Some(1))
        );
        let body = GoTrueError::validation("bad").legacy_body();
        assert_eq!(
            body,
            json!({"code": 400, "error_code": "validation_failed", "msg": "bad"})
        );
    }
}
