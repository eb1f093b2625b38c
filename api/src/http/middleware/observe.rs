//! Observe: the request id (`X-Request-Id`), one log line per request, and the HTTP
//! metrics (`fluxbase_http_requests_total`, `fluxbase_http_request_duration_seconds`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use metrics::{Counter, Histogram};

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
    let method = req.method().clone();
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
    method: Method,
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
    method: &Method,
    route: &str,
    path: &str,
    status: u16,
    id: &str,
    ip: &str,
    user: Option<&str>,
    started: Instant,
) {
    let elapsed = started.elapsed();
    count(method, route, status, elapsed.as_secs_f64());
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

/// Past this many (route, method, status) keys a thread registers the handles per request
/// instead of keeping them: methods are chosen by clients.
const MAX_CACHED_HANDLES: usize = 256;

/// One route's metric handles, by method and status.
type RouteHandles = Vec<(Method, u16, Counter, Histogram)>;

thread_local! {
    /// The request metrics' handles by route, then method and status. Registering a
    /// labelled key builds its five label strings and looks it up in the registry on every
    /// request; a worker meets few distinct keys, so it registers each once and keeps the
    /// handles (the series are the recorder's, shared by every thread).
    static HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

/// Counts a finished request in `fluxbase_http_requests_total{method, path, status}` and
/// times it in `fluxbase_http_request_duration_seconds{method, path}`.
fn count(method: &Method, route: &str, status: u16, secs: f64) {
    HANDLES.with(|cell| {
        let mut cache = cell.borrow_mut();
        let cached = cache
            .get(route)
            .and_then(|keys| keys.iter().find(|(m, s, ..)| m == method && *s == status));
        if let Some((_, _, counter, histogram)) = cached {
            counter.increment(1);
            histogram.record(secs);
            return;
        }
        let counter = metrics::counter!(
            "fluxbase_http_requests_total",
            "method" => method.to_string(),
            "path" => route.to_string(),
            "status" => status.to_string(),
        );
        let histogram = metrics::histogram!(
            "fluxbase_http_request_duration_seconds",
            "method" => method.to_string(),
            "path" => route.to_string(),
        );
        counter.increment(1);
        histogram.record(secs);
        if cache.values().map(Vec::len).sum::<usize>() < MAX_CACHED_HANDLES {
            cache.entry(route.to_owned()).or_default().push((
                method.clone(),
                status,
                counter,
                histogram,
            ));
        }
    })
}
