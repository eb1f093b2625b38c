//! Observe: the request id (`X-Request-Id`), one log line per request, and the HTTP
//! metrics (`fluxbase_http_requests_total`, `fluxbase_http_request_duration_seconds`).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

/// The id of the current request (`X-Request-Id`), in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The authenticated user of the current request, set by auth extractors for the log line.
#[derive(Debug, Clone)]
pub struct RequestUser(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-supplied id is kept only when short and printable, so it cannot forge log
/// lines or bloat them.
fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| value.to_string())
}

/// Wraps every request: assigns the id, answers errors in JSON, records metrics, logs.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    // A random (v4) id from the thread's generator: `Uuid::new_v4` asks the kernel for
    // every id, a system call per request.
    let id = incoming_id(&req).unwrap_or_else(|| {
        uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .simple()
            .to_string()
    });
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let path = req.path().to_string();
    let ip = super::client_ip::client_ip(req.request()).to_string();

    let mut res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        // An error before a handler answered (a middleware, an extractor): render it so
        // that it is logged and counted like any response.
        Err(err) => {
            let response = err.error_response();
            return finish_error(err, response, id, method, path, ip, started);
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let user = res
        .request()
        .extensions()
        .get::<RequestUser>()
        .map(|u| u.0.clone());
    record(
        &method,
        &route,
        &path,
        res.status().as_u16(),
        &id,
        &ip,
        user.as_deref(),
        started,
    );
    Ok(res)
}

fn finish_error(
    err: Error,
    mut response: actix_web::HttpResponse,
    id: String,
    method: String,
    path: String,
    ip: String,
    started: Instant,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    record(
        &method,
        "unmatched",
        &path,
        response.status().as_u16(),
        &id,
        &ip,
        None,
        started,
    );
    Err(actix_web::error::InternalError::from_response(err.to_string(), response).into())
}

/// Counts, times and logs one finished request.
#[allow(clippy::too_many_arguments)]
fn record(
    method: &str,
    route: &str,
    path: &str,
    status: u16,
    id: &str,
    ip: &str,
    user: Option<&str>,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let status_label = status.to_string();
    metrics::counter!(
        "fluxbase_http_requests_total",
        "method" => method.to_string(),
        "path" => route.to_string(),
        "status" => status_label,
    )
    .increment(1);
    metrics::histogram!(
        "fluxbase_http_request_duration_seconds",
        "method" => method.to_string(),
        "path" => route.to_string(),
    )
    .record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_millis() as u64;
    let user_id = user.unwrap_or("");
    macro_rules! log_at {
        ($level:ident) => {
            tracing::$level!(
                request_id = %id,
                method = %method,
                path = %path,
                status,
                duration_ms,
                ip = %ip,
                user_id = %user_id,
                "HTTP request"
            )
        };
    }
    match status {
        500.. => log_at!(error),
        400..=499 => log_at!(warn),
        _ => log_at!(info),
    }
}
