//! The error shape of `/auth/v1`, for every error answer on its paths — the handlers', and
//! those of the shared guards, extractors, rate limits and 404/405 (which speak our
//! vocabulary `{"error":{"code","message"}}`): GoTrue's body and status, in the API version
//! the client asked for.
//!
//! GoTrue negotiates by the `X-Supabase-Api-Version` request header (auth-js sends
//! `2024-01-01`): from that date on the body is `{"code": "<error_code>", "message"}` and
//! the header is echoed, which is how auth-js knows to read `code` as the error code; before
//! it (or without the header, e.g. curl) the body is `{"code": <status>, "error_code",
//! "msg"}`. Success answers pass untouched, as do answers of other paths.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use serde_json::Value;

use super::error::GoTrueError;
use crate::error::{ApiError, Code};
use crate::http::supabase::errors::{ErrorAnswer, json_error};

/// The version header.
pub const API_VERSION_HEADER: &str = "x-supabase-api-version";

/// The first (and only) dated API version.
pub const API_VERSION_2024: &str = "2024-01-01";

/// Whether `path` belongs to `/auth/v1`.
fn is_gotrue_path(path: &str) -> bool {
    path == "/auth/v1" || path.starts_with("/auth/v1/")
}

/// Whether the request asks for API version `2024-01-01` or later (a `YYYY-MM-DD` date).
pub fn wants_2024(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(API_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let v = value.trim().as_bytes();
    let date_like = v.len() == 10
        && v.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    date_like && value.trim() >= API_VERSION_2024
}

/// Our vocabulary's code of its text.
fn code_of(text: &str) -> Option<Code> {
    Code::ALL.iter().copied().find(|c| c.as_str() == text)
}

/// The GoTrue error of an error body, if it is one of ours or already GoTrue's.
fn gotrue_error(status: StatusCode, body: &Value) -> Option<GoTrueError> {
    if let Some(error) = body.get("error").and_then(Value::as_object) {
        let code = error
            .get("code")
            .and_then(Value::as_str)
            .and_then(code_of)?;
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        return Some(GoTrueError::from_api(ApiError::new(code, message)));
    }
    let code = body.get("error_code").and_then(Value::as_str)?;
    let msg = body.get("msg").and_then(Value::as_str).unwrap_or("");
    // A handler's own error: keep its code (as the constant it came from).
    let code = GOTRUE_CODES
        .iter()
        .copied()
        .find(|c| *c == code)
        .or_else(|| code_of(code).map(Code::as_str))
        .unwrap_or("unexpected_failure");
    let reasons = body
        .pointer("/weak_password/reasons")
        .and_then(Value::as_array)
        .map(|_| vec!["length"]);
    Some(GoTrueError {
        reasons,
        ..GoTrueError::new(status.as_u16(), code, msg)
    })
}

/// The GoTrue codes this surface answers (so a body's code maps back to a constant).
const GOTRUE_CODES: &[&str] = &[
    "anonymous_provider_disabled",
    "bad_json",
    "bad_jwt",
    "conflict",
    "email_exists",
    "email_not_confirmed",
    "invalid_credentials",
    "no_authorization",
    "not_admin",
    "otp_disabled",
    "otp_expired",
    "over_email_send_rate_limit",
    "over_request_rate_limit",
    "phone_provider_disabled",
    "refresh_token_already_used",
    "refresh_token_not_found",
    "request_entity_too_large",
    "request_timeout",
    "session_expired",
    "session_not_found",
    "unexpected_failure",
    "user_already_exists",
    "user_not_found",
    "validation_failed",
    "weak_password",
];

/// The middleware (registered around the whole app; a no-op off `/auth/v1`).
pub async fn gotrue_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    if !is_gotrue_path(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let versioned = wants_2024(req.headers());
    let ErrorAnswer {
        request,
        status,
        headers,
        body,
    } = match json_error(next.call(req).await?).await {
        Ok(answer) => answer,
        Err(res) => return Ok(res.map_into_left_body()),
    };
    // An unreadable or oversized error body (empty here) becomes a plain GoTrue failure.
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error = gotrue_error(status, &parsed).unwrap_or_else(|| {
        GoTrueError::new(status.as_u16(), "unexpected_failure", "request failed")
    });
    let mut out = HttpResponse::build(
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in headers.iter() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            out.append_header((name.clone(), value.clone()));
        }
    }
    if versioned {
        out.insert_header((
            HeaderName::from_static(API_VERSION_HEADER),
            HeaderValue::from_static(API_VERSION_2024),
        ));
    }
    let body = if versioned {
        error.versioned_body()
    } else {
        error.legacy_body()
    };
    let res = ServiceResponse::new(request, out.json(body));
    Ok(res.map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use serde_json::json;

    #[test]
    fn versions_are_dates_from_2024_01_01() {
        for (value, expected) in [
            ("2024-01-01", true),
            ("2025-06-30", true),
            ("2023-12-31", false),
            ("2024-1-1", false),
            ("latest", false),
            ("", false),
        ] {
            let req = TestRequest::default()
                .insert_header((API_VERSION_HEADER, value))
                .to_http_request();
            assert_eq!(wants_2024(req.headers()), expected, "{value}");
        }
        assert!(!wants_2024(
            TestRequest::default().to_http_request().headers()
        ));
        assert!(is_gotrue_path("/auth/v1/token") && is_gotrue_path("/auth/v1"));
        assert!(!is_gotrue_path("/auth/v10") && !is_gotrue_path("/api/v1/auth/signin"));
    }

    #[test]
    fn our_errors_and_handler_errors_become_gotrue_errors() {
        let ours = json!({"error": {"code": "rate_limited", "message": "too many requests"}});
        let e = gotrue_error(StatusCode::TOO_MANY_REQUESTS, &ours).unwrap();
        assert_eq!((e.status, e.code), (429, "over_request_rate_limit"));
        let unauth = json!({"error": {"code": "unauthorized", "message": "sign in first"}});
        let e = gotrue_error(StatusCode::UNAUTHORIZED, &unauth).unwrap();
        assert_eq!(
            (e.status, e.code, e.msg.as_str()),
            (401, "no_authorization", "sign in first")
        );
        let handler = GoTrueError::new(400, "invalid_credentials", "Invalid login credentials");
        let e = gotrue_error(StatusCode::BAD_REQUEST, &handler.legacy_body()).unwrap();
        assert_eq!(
            e.versioned_body(),
            json!({"code": "invalid_credentials", "message": "Invalid login credentials"})
        );
        assert!(gotrue_error(StatusCode::BAD_REQUEST, &json!({"other": 1})).is_none());
    }
}
