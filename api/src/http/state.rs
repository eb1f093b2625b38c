//! [`AppState`]: what handlers share — configuration, pool, auth service, engine, jobs,
//! limiters. Middleware and extractors read their own parts (registered apart by
//! `build_app`), so they do not depend on this module.

use std::sync::Arc;
use std::time::Instant;

use fluxbase_auth::AuthService;
use fluxbase_migrations::{Db, SchemaCache};
use fluxbase_storage::{Storage, StorageError, StorageSettings};
use metrics_exporter_prometheus::PrometheusHandle;

use super::middleware::client_ip::TrustedProxies;
use super::middleware::rate_limit::Limiters;
use crate::config::Config;
use crate::rest::RestService;

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
    /// The storage service, once its backend is open (the storage routes answer 503
    /// without it).
    pub storage: Option<Storage>,
    /// The job system (none in in-process tests of other surfaces: its routes answer 503).
    /// Its `webhooks()` is what the replication consumer feeds.
    pub jobs: Option<fluxbase_engine::jobs::Jobs>,
    /// Rate limiters (shared by every worker).
    pub limiters: Arc<Limiters>,
    /// `server.trusted_proxies`.
    pub proxies: Arc<TrustedProxies>,
    /// The schema cache (tables, columns, keys, functions, policies; follows DDL), started
    /// once by the server and shared by every service that reads the catalog.
    pub schema: Option<SchemaCache>,
    /// The REST service over the schema cache (none until [`AppState::with_schema`]).
    pub rest: Option<RestService>,
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
            schema: None,
            rest: None,
            storage: None,
            jobs: None,
        }
    }

    /// The same state with the schema cache, and the REST service (`rest.*`) over it.
    pub fn with_schema(mut self, schema: SchemaCache) -> Self {
        self.rest = Some(RestService::new(
            schema.clone(),
            self.db.clone(),
            self.config.rest_settings(),
        ));
        self.schema = Some(schema);
        self
    }

    /// The same state with the storage service.
    pub fn with_storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Opens the storage backend of `storage.*` (creating `storage.local_path` when missing;
    /// S3 is not contacted until first use) and the service over `db`. Objects are limited
    /// by `server.body_limit`; signed URLs are keyed by a key derived from the JWT secret,
    /// never the secret itself (the storage crate derives it).
    pub fn open_storage(config: &Config, db: Db) -> Result<Storage, StorageError> {
        let backend = config.storage.backend().open()?;
        // Without a JWT secret (in-process tests of other surfaces) a random key still keeps
        // signed URLs unforgeable; they then last as long as the process.
        let secret = match config.auth.jwt_secret.as_deref() {
            Some(secret) => secret.to_string(),
            None => fluxbase_migrations::secret::generate_secret(48),
        };
        let settings = StorageSettings::new(config.server.body_limit.0, secret.into_bytes());
        Ok(Storage::new(db, backend, settings))
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
            rls_fallback_connections: r.rls_fallback_connections as usize,
            queue_bytes: usize::try_from(r.client_queue_bytes.0).unwrap_or(usize::MAX),
            max_channels_per_connection: r.max_channels_per_connection as usize,
            max_channel_name_length: r.max_channel_name_length as usize,
            ping_interval: r.ping_interval.get(),
            pong_timeout: r.pong_timeout.get(),
            message_size_limit: usize::try_from(r.message_size_limit.0).unwrap_or(usize::MAX),
            ..Default::default()
        }
    }
}
