//! The actix-web application: one factory, [`build_app`], used by the binary and by the
//! in-process tests.
//!
//! - [`extract`]: `Guard<Policy>` (who may call a route, checked through the auth service),
//!   the credential readers, the JSON body, the client's address;
//! - [`middleware`]: observe (request id, log, metrics), body timeout, security headers,
//!   CORS, rate limits, CSRF, client IP — one noun each;
//! - one module per surface: `health`, and [`v1`] (`auth`, `dashboard`, `service_keys`,
//!   `realtime`): thin handlers that parse, call a service, shape the answer.
//!
//! Room is left for the surfaces to come, each a module here registered in [`build_app`]
//! like `v1`: `rest` (PostgREST's query language over the schema cache,
//! `/api/v1/tables/…`, `/api/v1/rpc/…`), `storage` (`/api/v1/storage/…`), `jobs`
//! (`/api/v1/jobs/…`, `/api/v1/admin/jobs/…`), and a `supabase/` tree (`/rest/v1`,
//! `/auth/v1`, `/storage/v1`, `/realtime/v1/websocket`) over the same services and guards.

pub mod extract;
mod health;
pub mod middleware;
mod resource;
pub mod v1;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use fluxbase_auth::AuthService;
use fluxbase_migrations::Db;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::error::{ApiError, Code};

pub use middleware::client_ip::TrustedProxies;
pub use middleware::observe::RequestId;
pub use middleware::rate_limit::Limiters;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Db,
    /// The auth service (app users, dashboard admins, sessions, service keys).
    pub auth: AuthService,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// When the server started (uptime).
    pub started: Instant,
    /// The realtime engine, when `realtime.enabled`.
    pub engine: Option<fluxbase_engine::realtime::Engine>,
    /// Rate limiters (shared by every worker).
    pub limiters: Arc<Limiters>,
    /// `server.trusted_proxies`.
    pub proxies: Arc<TrustedProxies>,
}

impl AppState {
    /// State for a server starting now. Without `auth.jwt_secret` (in-process tests of other
    /// surfaces) nothing can be signed: auth routes answer 503.
    pub fn new(config: Config, db: Db) -> Self {
        let auth = AuthService::new(
            db.clone(),
            config.auth.jwt_secret.as_deref().map(str::as_bytes),
            config.auth_settings(),
        );
        AppState {
            limiters: Limiters::new(&config),
            proxies: Arc::new(TrustedProxies::new(&config.server.trusted_proxies)),
            config: Arc::new(config),
            db,
            auth,
            prometheus: crate::telemetry::prometheus(),
            started: Instant::now(),
            engine: None,
        }
    }

    /// The same state with a realtime engine.
    pub fn with_engine(mut self, engine: fluxbase_engine::realtime::Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The engine settings of `realtime.*`.
    pub fn realtime_settings(config: &Config) -> fluxbase_engine::realtime::RealtimeSettings {
        let r = &config.realtime;
        fluxbase_engine::realtime::RealtimeSettings {
            max_connections: r.max_connections as usize,
            max_connections_per_user: r.max_connections_per_user as usize,
            max_connections_per_ip: r.max_connections_per_ip as usize,
            queue_size: r.client_message_queue_size as usize,
            slow_client_threshold: r.slow_client_threshold as usize,
            slow_client_timeout: r.slow_client_timeout.get(),
            rls_cache_size: usize::try_from(r.rls_cache_size).unwrap_or(usize::MAX),
            rls_cache_ttl: r.rls_cache_ttl.get(),
            ..Default::default()
        }
    }
}

/// The application with every route and middleware.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = usize::try_from(state.config.server.body_limit.0).unwrap_or(usize::MAX);
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(json_config(body_limit))
        // Innermost first: the last `wrap` meets a request first.
        .wrap(from_fn(middleware::csrf::csrf))
        .wrap(from_fn(middleware::rate_limit::rate_limit))
        .wrap(from_fn(middleware::cors::cors))
        .wrap(from_fn(middleware::headers::security_headers))
        .wrap(from_fn(middleware::body_timeout::body_timeout))
        .wrap(from_fn(middleware::observe::observe))
        .configure(health::routes)
        .configure(v1::routes)
        .default_service(web::to(resource::not_found))
}

/// `web::Json` bodies (for surfaces that use actix's extractor rather than
/// [`extract::Json`]): over-limit and malformed input become our error shape.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            let api = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => {
                    ApiError::new(Code::PayloadTooLarge, "request body is too large")
                }
                other => ApiError::new(Code::BadRequest, format!("invalid JSON body: {other}")),
            };
            api.into()
        })
}
