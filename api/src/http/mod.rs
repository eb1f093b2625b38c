//! The actix-web application: one factory used by the binary and by in-process tests.

pub mod audit;
pub mod auth;
pub mod auth_users;
pub mod body;
pub mod dashboard;
mod health;
mod middleware;
mod realtime;
pub mod security;
pub mod service_keys;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::db::Db;
use crate::error::{ApiError, ErrorCode};

pub use middleware::RequestId;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Db,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// When the server started (uptime).
    pub started: Instant,
    /// Verifies tokens; `None` when no secret is configured (in-process tests).
    pub keys: Option<fluxbase_auth::JwtKeys>,
    /// The realtime engine, when `realtime.enabled`.
    pub engine: Option<fluxbase_engine::realtime::Engine>,
    /// Rate limiters (shared by every worker).
    pub limiters: Arc<security::Limiters>,
}

impl AppState {
    /// State for a server starting now.
    pub fn new(config: Config, db: Db) -> Self {
        let keys = config
            .auth
            .jwt_secret
            .as_deref()
            .map(|s| fluxbase_auth::JwtKeys::hs256(s.as_bytes()));
        let limiters = security::Limiters::new(&config);
        AppState {
            limiters,
            config: Arc::new(config),
            db,
            prometheus: crate::telemetry::prometheus(),
            started: Instant::now(),
            keys,
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
            rls_fallback_connections: r.rls_fallback_connections as usize,
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
        .wrap(actix_web::middleware::from_fn(security::protect))
        .wrap(actix_web::middleware::from_fn(middleware::observe))
        .configure(health::routes)
        .configure(realtime::routes)
        .configure(auth_users::routes)
        .configure(service_keys::routes)
        .configure(dashboard::routes)
        .default_service(web::to(not_found))
}

/// JSON bodies: over-limit and malformed input become our error shape.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            let api = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => {
                    ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
                }
                other => {
                    ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {other}"))
                }
            };
            api.into()
        })
}

/// JSON 404 for every unknown route.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// JSON 405 for a known path with another method.
async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// A GET-only resource whose other methods answer a JSON 405.
fn get_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(method_not_allowed))
}
