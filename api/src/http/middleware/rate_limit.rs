//! Rate limits: per client IP (a per-second bucket and a per-minute quota), per verified
//! user, per service key, and sign-ins per (IP, account). A refusal is a 429 with
//! `Retry-After`, counted in `fluxbase_rate_limit_hits_total{scope}`.
//!
//! Scaled out over Redis (`realtime.bus: redis`), the per-minute limits (per IP, per user,
//! per service key) are counted in Redis, so they hold across instances; the per-second
//! burst bucket and sign-in attempts stay per instance. Should Redis not answer, the
//! instance's own limiter decides.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{ApiError, Code};
use fluxbase_auth::AuthService;

/// Paths no per-IP limit applies to: probes, scrapes, and WebSocket upgrades (which have
/// `realtime.max_connections_per_ip`).
const EXEMPT_PATHS: &[&str] = &["/health", "/ready", "/metrics", "/realtime"];

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
    /// The per-minute quotas: per IP, per user, per service key (for the shared counters).
    quotas: (u32, u32, u32),
    /// Counters shared by the instances, when scaled out over Redis (set once at start).
    shared: std::sync::OnceLock<fluxbase_engine::realtime::cluster::SharedRate>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A quota count (validated ≥ 1; clamped anyway).
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
            quotas: (
                rl.requests_per_minute,
                rl.per_user_per_minute,
                rl.per_service_key_per_minute,
            ),
            shared: std::sync::OnceLock::new(),
        })
    }

    /// Counts the per-minute limits in Redis from now on (scale-out).
    pub fn share(&self, rate: fluxbase_engine::realtime::cluster::SharedRate) {
        let _ = self.shared.set(rate);
    }

    /// A per-minute limit: in Redis when shared (and Redis answers), else `local`'s.
    async fn per_minute<K: std::hash::Hash + Eq + Clone>(
        &self,
        scope: &str,
        key: &K,
        text: impl FnOnce() -> String,
        limit: u32,
        local: &DefaultKeyedRateLimiter<K>,
    ) -> Result<(), Duration> {
        if let Some(shared) = self.shared.get() {
            match shared.hit(scope, &text(), limit, MINUTE).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(wait),
                Err(err) => {
                    tracing::warn!(error = %err, "shared rate limit not checked (redis); this instance's applies")
                }
            }
        }
        local.check_key(key).map_err(wait_of)
    }

    /// Forgets idle keys (called periodically).
    pub fn prune(&self) {
        self.per_minute.retain_recent();
        self.per_second.retain_recent();
        self.per_user.retain_recent();
        self.per_key.retain_recent();
        self.login.retain_recent();
    }

    /// Login attempts: `security.rate_limit.login_attempts` per `login_window` per (client
    /// IP, account). Call before checking the password.
    pub fn check_login(&self, ip: IpAddr, account: &str) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        match self.login.check_key(&(ip, account.to_lowercase())) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let secs = seconds(wait_of(not_until));
                metrics::counter!("fluxbase_rate_limit_hits_total", "scope" => "login")
                    .increment(1);
                tracing::warn!(
                    rate_limit = "login",
                    log_type = "audit",
                    success = false,
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
}

/// The window of the per-minute limits.
const MINUTE: Duration = Duration::from_secs(60);

/// Whole seconds for `Retry-After`, at least one.
fn seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// How long until a refused key may try again.
fn wait_of(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// A 429 with `Retry-After`, counted.
fn too_many(scope: &'static str, wait: Duration, what: &str) -> HttpResponse {
    metrics::counter!("fluxbase_rate_limit_hits_total", "scope" => scope).increment(1);
    tracing::warn!(rate_limit = scope, "rate limit hit");
    let secs = seconds(wait);
    ApiError::new(
        Code::RateLimited,
        format!("too many requests ({what}); retry after {secs}s"),
    )
    .with_retry_after(secs)
    .error_response()
}

/// The middleware: the per-IP, per-user and per-key limits.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, Error> {
    let refused = match req.app_data::<web::Data<Limiters>>() {
        Some(limiters) => refusal(limiters, req.app_data::<web::Data<AuthService>>(), &req).await,
        None => None,
    };
    match refused {
        Some(res) => Ok(req.into_response(res).map_into_left_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body),
    }
}

/// `Some(429)` when one of the limits is exceeded.
async fn refusal(
    limiters: &Limiters,
    auth: Option<&web::Data<AuthService>>,
    req: &ServiceRequest,
) -> Option<HttpResponse> {
    if !limiters.enabled || EXEMPT_PATHS.contains(&req.path()) {
        return None;
    }
    let ip = super::client_ip::client_ip(req.request());
    if let Err(n) = limiters.per_second.check_key(&ip) {
        return Some(too_many(
            "ip_burst",
            wait_of(n),
            "server.rate_limit per address",
        ));
    }
    let (per_ip, per_user, per_key) = limiters.quotas;
    if let Err(wait) = limiters
        .per_minute("ip", &ip, || ip.to_string(), per_ip, &limiters.per_minute)
        .await
    {
        return Some(too_many(
            "ip",
            wait,
            "security.rate_limit.requests_per_minute per address",
        ));
    }
    let request = req.request();
    if let Some(key) = crate::http::extract::credentials::service_key_of(request) {
        let id = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        if let Err(wait) = limiters
            .per_minute(
                "service_key",
                &id,
                || id.clone(),
                per_key,
                &limiters.per_key,
            )
            .await
        {
            return Some(too_many("service_key", wait, "per service key"));
        }
    } else if let (Some(keys), Some(token)) = (
        auth.and_then(|a| a.jwt_keys()),
        crate::http::extract::credentials::token_of(request),
    ) {
        // Only a verified token names a user: a forged `sub` must not spend another's budget.
        if let Ok(ctx) = keys.context(&token)
            && let Some(uid) = ctx.uid()
        {
            let uid = uid.to_string();
            if let Err(wait) = limiters
                .per_minute("user", &uid, || uid.clone(), per_user, &limiters.per_user)
                .await
            {
                return Some(too_many("user", wait, "per user"));
            }
        }
    }
    None
}
