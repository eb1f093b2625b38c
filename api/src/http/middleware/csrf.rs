//! Opt-in CSRF protection (`security.csrf.*`) for cookie sessions: double submit — the
//! `fluxbase_csrf` cookie's value must come back in `X-CSRF-Token` on unsafe methods. Bearer,
//! `apikey` and service-key requests carry no ambient credential and are not checked.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};

use crate::config::Config;
use crate::error::{ApiError, Code};

/// Name of the CSRF cookie and header (double submit).
const CSRF_COOKIE: &str = "fluxbase_csrf";
/// The header that must echo the cookie.
const CSRF_HEADER: &str = "x-csrf-token";

/// The middleware.
pub async fn csrf(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, Error> {
    let Some(config) = req.app_data::<web::Data<Config>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    };
    let csrf = &config.security.csrf;
    if !csrf.enabled {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    }
    let cookie = cookie_value(req.headers(), CSRF_COOKIE);
    if is_unsafe(req.method()) && uses_cookie_session(&req) {
        let header_token = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok = matches!((&cookie, header_token), (Some(c), Some(h)) if !c.is_empty() && c == h);
        if !ok {
            tracing::warn!(
                log_type = "audit",
                event = "csrf_rejected",
                success = false,
                "csrf token missing or wrong"
            );
            let res = ApiError::new(
                Code::Forbidden,
                format!(
                    "CSRF check failed: send the {CSRF_COOKIE} cookie's value in the X-CSRF-Token header"
                ),
            )
            .error_response();
            return Ok(req.into_response(res).map_into_left_body());
        }
    }
    let mut res = next.call(req).await?;
    if cookie.is_none() {
        let token = fluxbase_migrations::secret::generate_secret(32);
        let secure = if csrf.cookie_secure { "; Secure" } else { "" };
        let cookie = format!("{CSRF_COOKIE}={token}; Path=/; SameSite=Strict{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res.map_into_right_body())
}

/// The value of cookie `name` (actix's cookie feature is off: one tiny parser instead).
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Methods that change state (the ones CSRF can abuse).
fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A browser session carried by cookies (no bearer token, key or apikey header): the only
/// kind CSRF can ride on.
fn uses_cookie_session(req: &ServiceRequest) -> bool {
    let h = req.headers();
    h.contains_key(header::COOKIE)
        && !h.contains_key(header::AUTHORIZATION)
        && !h.contains_key("apikey")
        && !h.contains_key("x-service-key")
}
