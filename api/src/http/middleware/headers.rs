//! The security headers of the runbook on every response: CSP, `X-Frame-Options`,
//! `X-Content-Type-Options`, `Referrer-Policy`, and HSTS when a trusted proxy says the
//! client used HTTPS.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use super::client_ip::TrustedProxies;

/// Sets `name` when `value` is a valid header value.
pub(crate) fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The middleware.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let https = req
        .app_data::<web::Data<TrustedProxies>>()
        .is_some_and(|p| p.is_https(req.peer_addr().map(|a| a.ip()), req.headers()));
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    // A handler's own (stricter) policy stays: stored objects are served sandboxed.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        insert(
            headers,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        );
    }
    insert(headers, header::X_FRAME_OPTIONS, "DENY");
    insert(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    insert(
        headers,
        header::REFERRER_POLICY,
        "strict-origin-when-cross-origin",
    );
    if https {
        insert(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    Ok(res)
}
