//! The error shape of `/rest/v1`, `/storage/v1` and `/realtime/v1` for the answers their
//! handlers do not write (and, on `/realtime/v1`, for all its errors): the shared middleware's refusals (rate limits, CSRF, body timeouts), unknown
//! routes and methods. Those speak our vocabulary, `{"error":{"code","message"}}`; a
//! PostgREST or storage-js client reads `code` and `message` at the top level, so here they
//! take the surface's shape, keeping the status and headers (`Retry-After`…). Bodies
//! already in the surface's shape pass untouched, as do successes and other paths.
//! (`/auth/v1` has its own middleware, [`super::auth::gotrue_errors`]: GoTrue negotiates
//! its error shape by API version.)

use actix_web::HttpRequest;
use actix_web::body::{BoxBody, EitherBody, MessageBody, to_bytes_limited};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError};
use bytes::Bytes;
use serde_json::{Value, json};

use super::storage::error::StorageApiError;
use crate::error::{ApiError, Code};

/// Largest error body reshaped (ours are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An error answer in JSON, read whole: what the reshaping middleware rewrite.
pub(super) struct ErrorAnswer {
    /// The request it answers.
    pub request: HttpRequest,
    /// Its status.
    pub status: StatusCode,
    /// Its headers (`Retry-After`, `WWW-Authenticate`, CORS…), kept by the rewrite.
    pub headers: HeaderMap,
    /// Its body; empty when unreadable or over [`MAX_ERROR_BODY`].
    pub body: Bytes,
}

/// `res` as an [`ErrorAnswer`] when it is an error (4xx, 5xx) in JSON; as it was otherwise.
pub(super) async fn json_error<B: MessageBody>(
    res: ServiceResponse<B>,
) -> Result<ErrorAnswer, ServiceResponse<B>> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || !is_json {
        return Err(res);
    }
    let (request, response) = res.into_parts();
    let headers = response.headers().clone();
    let body = match to_bytes_limited(response.into_body(), MAX_ERROR_BODY).await {
        Ok(Ok(bytes)) => bytes,
        _ => Bytes::new(),
    };
    Ok(ErrorAnswer {
        request,
        status,
        headers,
        body,
    })
}

/// The surfaces reshaped here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/rest/v1`: PostgREST's `{code, details, hint, message}`.
    PostgRest,
    /// `/storage/v1`: storage-api's `{statusCode, code, error, message}`.
    Storage,
    /// `/realtime/v1` (the broadcast API, a refused upgrade): `{code, message}` — realtime-js
    /// shows `error || message` of an error body, so `error` must not be our object.
    Realtime,
}

/// The surface `path` belongs to, if any.
fn surface_of(path: &str) -> Option<Surface> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/rest/v1") {
        Some(Surface::PostgRest)
    } else if under("/storage/v1") {
        Some(Surface::Storage)
    } else if under("/realtime/v1") {
        Some(Surface::Realtime)
    } else {
        None
    }
}

/// Our error of a body in our vocabulary, if it is one.
fn our_error(body: &Value) -> Option<ApiError> {
    let error = body.get("error")?.as_object()?;
    let text = error.get("code")?.as_str()?;
    let code = Code::ALL.iter().copied().find(|c| c.as_str() == text)?;
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(ApiError::new(code, message))
}

/// PostgREST's body for one of our errors: its credential codes where PostgREST has them
/// (as the REST service answers refused credentials), our code otherwise, which `details`
/// repeats.
fn postgrest_body(err: &ApiError) -> Value {
    let code = match err.code {
        Code::TokenExpired => "PGRST303",
        code if code.status() == 401 => "PGRST301",
        code => code.as_str(),
    };
    json!({
        "code": code,
        "details": err.code.as_str(),
        "hint": null,
        "message": err.message,
    })
}

/// The middleware (registered around the whole app; a no-op off `/rest/v1`,
/// `/storage/v1` and `/realtime/v1`).
pub async fn surface_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let Some(surface) = surface_of(req.path()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let answer = match json_error(next.call(req).await?).await {
        Ok(answer) => answer,
        Err(res) => return Ok(res.map_into_left_body()),
    };
    let ErrorAnswer {
        request,
        status,
        headers,
        body,
    } = answer;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(err) = our_error(&parsed) else {
        // Already the surface's own shape (or not ours to read): as it was.
        let mut out = HttpResponse::build(status);
        for (name, value) in headers.iter() {
            if name != header::CONTENT_LENGTH {
                out.append_header((name.clone(), value.clone()));
            }
        }
        return Ok(ServiceResponse::new(request, out.body(body)).map_into_right_body());
    };
    let mut out = match surface {
        Surface::PostgRest => HttpResponse::build(status).json(postgrest_body(&err)),
        Surface::Realtime => HttpResponse::build(status)
            .json(json!({"code": err.code.as_str(), "message": err.message})),
        Surface::Storage => {
            let mut shaped = StorageApiError::from(err);
            // The status the middleware chose stands (405 has no code of its own).
            shaped.status = status;
            shaped.error_response()
        }
    };
    for (name, value) in headers.iter() {
        if name != header::CONTENT_LENGTH
            && name != header::CONTENT_TYPE
            && !out.headers().contains_key(name)
        {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, out).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_surfaces_are_reshaped() {
        assert_eq!(surface_of("/rest/v1"), Some(Surface::PostgRest));
        assert_eq!(surface_of("/rest/v1/todos"), Some(Surface::PostgRest));
        assert_eq!(surface_of("/storage/v1/object/x"), Some(Surface::Storage));
        assert_eq!(
            surface_of("/realtime/v1/api/broadcast"),
            Some(Surface::Realtime)
        );
        assert_eq!(surface_of("/rest/v10"), None);
        assert_eq!(surface_of("/api/v1/tables/todos"), None);
        assert_eq!(surface_of("/auth/v1/token"), None);
    }

    #[test]
    fn our_errors_take_postgrest_codes_where_they_exist() {
        let limited =
            our_error(&json!({"error": {"code": "rate_limited", "message": "too many requests"}}))
                .unwrap();
        assert_eq!(
            postgrest_body(&limited),
            json!({"code": "rate_limited", "details": "rate_limited", "hint": null,
                   "message": "too many requests"})
        );
        let expired =
            our_error(&json!({"error": {"code": "token_expired", "message": "expired"}})).unwrap();
        assert_eq!(postgrest_body(&expired)["code"], "PGRST303");
        // PostgREST's own bodies and unknown codes are not ours.
        assert!(our_error(&json!({"code": "PGRST205", "message": "x"})).is_none());
        assert!(our_error(&json!({"error": {"code": "no_such_code"}})).is_none());
    }
}
