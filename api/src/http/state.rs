//! [`AppState`]: what handlers share — configuration, pool, auth service, engine, jobs,
//! limiters. Middleware and extractors read their own parts (registered apart by
//! `build_app`), so they do not depend on this module.

use std::sync::Arc;
use std::time::Instant;

use fluxbase_auth::AuthService;
use fluxbase_migrations::Db;
use metrics_exporter_prometheus::PrometheusHandle;

use super::middleware::client_ip::TrustedProxies;
use super::middleware::rate_limit::Limiters;
use crate::config::Config;

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
    /// The job system (none in in-process tests of other surfaces: its routes answer 503).
    /// Its `webhooks()` is what the replication consumer feeds.
    pub jobs: Option<fluxbase_engine::jobs::Jobs>,
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
            jobs: None,
        }
    }

    /// The same state with a realtime engine.
    pub fn with_engine(mut self, engine: fluxbase_engine::realtime::Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The same state with a job system.
    pub fn with_jobs(mut self, jobs: fluxbase_engine::jobs::Jobs) -> Self {
        self.jobs = Some(jobs);
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
