//! Protections around every request: the client's real IP, rate limits (per IP, per user,
//! per service key, logins per IP+account), security headers, CORS and opt-in CSRF.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::config::Config;
use crate::error::{ApiError, Code};

/// Paths no per-IP limit applies to: probes, scrapes, and WebSocket upgrades (which have
/// `realtime.max_connections_per_ip`).
const EXEMPT_PATHS: &[&str] = &["/health", "/ready", "/metrics", "/realtime"];

/// Name of the CSRF cookie and header (double submit).
const CSRF_COOKIE: &str = "fluxbase_csrf";
const CSRF_HEADER: &str = "x-csrf-token";

/// Every limiter of the process. Keyed limiters hold one small state per key; a periodic
/// `retain_recent` (from [`Limiters::prune`]) bounds them.
pub struct Limiters {
    enabled: bool,
    /// `security.rate_limit.requests_per_minute` per IP.
    per_minute: DefaultKeyedRateLimiter<IpAddr>,
    /// `server.rate_limit.requests_per_second` with `burst` per IP.
    per_second: DefaultKeyedRateLimiter<IpAddr>,
    /// Per authenticated user (`sub`).
    per_user: DefaultKeyedRateLimiter<String>,
    /// Per service key (its SHA-256 prefix, never the key).
    per_key: DefaultKeyedRateLimiter<String>,
    /// Logins per (IP, account).
    login: DefaultKeyedRateLimiter<(IpAddr, String)>,
    trusted_proxies: Vec<IpAddr>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("max(1) is non-zero")
}

impl Limiters {
    /// Limiters for the configuration (validated: every count ≥ 1).
    pub fn new(config: &Config) -> Arc<Limiters> {
        let rl = &config.security.rate_limit;
        let server = &config.server.rate_limit;
        let login_period = rl.login_window.get() / rl.login_attempts.max(1);
        Arc::new(Limiters {
            enabled: rl.enabled,
            per_minute: RateLimiter::keyed(Quota::per_minute(nz(rl.requests_per_minute))),
            per_second: RateLimiter::keyed(
                Quota::per_second(nz(server.requests_per_second)).allow_burst(nz(server.burst)),
            ),
            per_user: RateLimiter::keyed(Quota::per_minute(nz(rl.per_user_per_minute))),
            per_key: RateLimiter::keyed(Quota::per_minute(nz(rl.per_service_key_per_minute))),
            login: RateLimiter::keyed(
                Quota::with_period(login_period.max(Duration::from_millis(1)))
                    .expect("period is non-zero")
                    .allow_burst(nz(rl.login_attempts)),
            ),
            trusted_proxies: config
                .server
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
        })
    }

    /// Forgets idle keys (called periodically).
    pub fn prune(&self) {
        self.per_minute.retain_recent();
        self.per_second.retain_recent();
        self.per_user.retain_recent();
        self.per_key.retain_recent();
        self.login.retain_recent();
    }

    /// The client's address: the peer, or — behind a trusted proxy — the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        forwarded
            .split(',')
            .rev()
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .or(Some(peer))
    }

    /// Whether the request came over HTTPS (directly never: only via a trusted proxy).
    fn is_https(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        peer.is_some_and(|p| self.trusted_proxies.contains(&p))
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }
}

/// A 429 with `Retry-After`, counted.
fn too_many(scope: &'static str, wait: Duration, what: &str) -> HttpResponse {
    metrics::counter!("fluxbase_rate_limit_hits_total", "scope" => scope).increment(1);
    tracing::warn!(rate_limit = scope, "rate limit hit");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut res = ApiError::new(
        Code::RateLimited,
        format!("too many requests ({what}); retry after {secs}s"),
    )
    .error_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

fn wait_of(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// Login attempts: `security.rate_limit.login_attempts` per `login_window` per (client IP,
/// account). Call before checking the password.
pub fn check_login(state: &AppState, ip: IpAddr, account: &str) -> Result<(), ApiError> {
    let limiters = &state.limiters;
    if !limiters.enabled {
        return Ok(());
    }
    match limiters
        .login
        .check_key(&(ip, account.to_ascii_lowercase()))
    {
        Ok(()) => Ok(()),
        Err(not_until) => {
            let secs = wait_of(not_until).as_secs_f64().ceil().max(1.0) as u64;
            metrics::counter!("fluxbase_rate_limit_hits_total", "scope" => "login").increment(1);
            tracing::warn!(
                rate_limit = "login",
                log_type = "audit",
                "login rate limit hit"
            );
            Err(ApiError::new(
                Code::RateLimited,
                format!("too many login attempts; retry after {secs}s"),
            )
            .with_retry_after(secs))
        }
    }
}

/// The client IP of a request, as the limiters and logs see it.
pub fn client_ip_of(req: &HttpRequest) -> IpAddr {
    let peer = req.peer_addr().map(|a| a.ip());
    req.app_data::<web::Data<AppState>>()
        .and_then(|s| s.limiters.client_ip(peer, req.headers()))
        .or(peer)
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The middleware: CORS preflight, rate limits, CSRF, then security headers (and CORS
/// headers) on whatever the route answered.
pub async fn protect(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    };
    let peer = req.peer_addr().map(|a| a.ip());
    let https = state.limiters.is_https(peer, req.headers());
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let cors = &state.config.security.cors;
    let allowed_origin = origin.as_deref().filter(|o| {
        cors.enabled
            && cors
                .allowed_origins
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
    });

    // Preflight: answered here, for any path.
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && origin.is_some()
    {
        let mut res = match allowed_origin {
            Some(o) => {
                let mut res = HttpResponse::NoContent().finish();
                let h = res.headers_mut();
                set_cors(h, o, cors);
                insert(
                    h,
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    &cors.allowed_methods.join(", "),
                );
                insert(
                    h,
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    &cors.allowed_headers.join(", "),
                );
                insert(
                    h,
                    header::ACCESS_CONTROL_MAX_AGE,
                    &cors.max_age.get().as_secs().to_string(),
                );
                res
            }
            None => ApiError::new(
                Code::Forbidden,
                "origin not allowed (security.cors.allowed_origins)",
            )
            .error_response(),
        };
        security_headers(res.headers_mut(), https);
        return Ok(req.into_response(res).map_into_left_body());
    }

    if let Some(res) = rate_limit(&state, &req, peer) {
        let mut res = res;
        security_headers(res.headers_mut(), https);
        return Ok(req.into_response(res).map_into_left_body());
    }

    let csrf = &state.config.security.csrf;
    let csrf_cookie = cookie_value(req.headers(), CSRF_COOKIE);
    if csrf.enabled && is_unsafe(req.method()) && uses_cookie_session(&req) {
        let header_token = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok =
            matches!((&csrf_cookie, header_token), (Some(c), Some(h)) if !c.is_empty() && c == h);
        if !ok {
            tracing::warn!(
                log_type = "audit",
                event = "csrf_rejected",
                "CSRF token missing or wrong"
            );
            let mut res = ApiError::new(
                Code::Forbidden,
                format!("CSRF check failed: send the {CSRF_COOKIE} cookie's value in the X-CSRF-Token header"),
            )
            .error_response();
            security_headers(res.headers_mut(), https);
            return Ok(req.into_response(res).map_into_left_body());
        }
    }

    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    security_headers(headers, https);
    if let Some(o) = allowed_origin {
        set_cors(headers, o, cors);
    }
    if csrf.enabled && csrf_cookie.is_none() {
        let token = fluxbase_migrations::secret::generate_secret(32);
        let secure = if csrf.cookie_secure { "; Secure" } else { "" };
        let cookie = format!("{CSRF_COOKIE}={token}; Path=/; SameSite=Strict{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(res.map_into_right_body())
}

/// Applies the per-IP, per-user and per-key limits; `Some(429)` when one is exceeded.
fn rate_limit(
    state: &AppState,
    req: &ServiceRequest,
    peer: Option<IpAddr>,
) -> Option<HttpResponse> {
    let limiters = &state.limiters;
    if !limiters.enabled || EXEMPT_PATHS.contains(&req.path()) {
        return None;
    }
    let ip = limiters.client_ip(peer, req.headers())?;
    if let Err(n) = limiters.per_second.check_key(&ip) {
        return Some(too_many(
            "ip_burst",
            wait_of(n),
            "server.rate_limit per address",
        ));
    }
    if let Err(n) = limiters.per_minute.check_key(&ip) {
        return Some(too_many(
            "ip",
            wait_of(n),
            "security.rate_limit.requests_per_minute per address",
        ));
    }
    let headers = req.headers();
    let service_key = headers
        .get("x-service-key")
        .or_else(|| {
            headers
                .get("apikey")
                .filter(|v| v.as_bytes().starts_with(b"sk_"))
        })
        .and_then(|v| v.to_str().ok());
    if let Some(key) = service_key {
        let id = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        if let Err(n) = limiters.per_key.check_key(&id) {
            return Some(too_many("service_key", wait_of(n), "per service key"));
        }
    } else if let (Some(keys), Some(token)) = (&state.keys, super::auth::token_of(req.request())) {
        // Only a verified token names a user: a forged `sub` must not spend another's budget.
        if let Ok(ctx) = keys.context(&token)
            && let Some(uid) = ctx.uid()
            && let Err(n) = limiters.per_user.check_key(&uid.to_string())
        {
            return Some(too_many("user", wait_of(n), "per user"));
        }
    }
    None
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

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn set_cors(headers: &mut HeaderMap, origin: &str, cors: &crate::config::CorsConfig) {
    let any = cors.allowed_origins.iter().any(|a| a == "*");
    insert(
        headers,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        if any && !cors.allow_credentials {
            "*"
        } else {
            origin
        },
    );
    if cors.allow_credentials {
        insert(headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    insert(headers, header::VARY, "Origin");
    insert(
        headers,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "x-request-id, retry-after, content-range",
    );
}

/// The headers of the runbook's "Security Headers" on every response.
fn security_headers(headers: &mut HeaderMap, https: bool) {
    insert(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
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
}

/// Status of the 429 responses (for tests).
pub const RATE_LIMITED: StatusCode = StatusCode::TOO_MANY_REQUESTS;
