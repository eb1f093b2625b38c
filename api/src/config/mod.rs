//! Configuration: every key of the runbooks' `fluxbase.yaml`, each also settable as
//! `FLUXBASE_<SECTION>_<KEY>`, plus the runbook's own environment variables.
//!
//! Config as data: serde structs whose `Default` holds the documented defaults
//! (`DEFAULT_*`), a loader that collects every error with where it came from, and a
//! `validate()` for rules across keys.

mod auth;
mod jobs;
mod load;
mod realtime;
mod rest;
mod security;
mod storage;
pub mod types;
mod yaml;

use serde::{Deserialize, Serialize};

pub use auth::*;
pub use jobs::*;
pub use load::{ConfigError, LoadedConfig, Origin, load};
pub use realtime::*;
pub use rest::*;
pub use security::*;
pub use storage::*;
pub use types::{ByteSize, Dur};

/// Default `server.body_limit`: 2 GiB, the runbook's production value (uploads stream).
pub const DEFAULT_BODY_LIMIT: u64 = 2 * 1024 * 1024 * 1024;
/// Default `server.body_timeout` (nginx's `client_body_timeout` is 60 s).
pub const DEFAULT_BODY_TIMEOUT: Dur = Dur::secs(30);
/// Default `database.max_connections` (the operational runbook: "Up from default 50").
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 50;
/// Default `realtime.rls_cache_size` (the runbook: "Down from 100000").
pub const DEFAULT_RLS_CACHE_SIZE: u64 = 100_000;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listener.
    pub server: ServerConfig,
    /// PostgreSQL connection and pool.
    pub database: DatabaseConfig,
    /// Request protections.
    pub security: SecurityConfig,
    /// Token signing.
    pub auth: AuthConfig,
    /// Dashboard administrators: lockout, token lifetimes.
    pub dashboard: DashboardConfig,
    /// WebSocket realtime engine.
    pub realtime: RealtimeConfig,
    /// The logical replication stream the realtime engine consumes.
    pub replication: ReplicationSettings,
    /// File storage.
    pub storage: StorageConfig,
    /// Background jobs.
    pub jobs: JobsConfig,
    /// The REST API over the tables.
    pub rest: RestConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `server.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free port (the chosen one is logged).
    pub port: u16,
    /// Largest request body accepted, in bytes.
    pub body_limit: ByteSize,
    /// Longest silence while a request body arrives (before its first byte, or between two
    /// chunks): a stalled body is answered 408 and its connection closed. Request heads are
    /// bounded by actix's own request timeout.
    pub body_timeout: Dur,
    /// Public URL of this server (signed URLs, redirects).
    pub base_url: Option<String>,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Dur,
    /// Reverse proxies (IP addresses) whose `X-Forwarded-For` / `X-Forwarded-Proto` are
    /// believed; empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
    /// Per-IP token bucket in front of every route.
    pub rate_limit: ServerRateLimit,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8080,
            body_limit: ByteSize(DEFAULT_BODY_LIMIT),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            base_url: None,
            shutdown_timeout: Dur::secs(30),
            trusted_proxies: Vec::new(),
            rate_limit: ServerRateLimit::default(),
        }
    }
}

/// `server.rate_limit.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerRateLimit {
    /// Sustained requests per second per IP.
    pub requests_per_second: u32,
    /// Bucket size.
    pub burst: u32,
}

impl Default for ServerRateLimit {
    fn default() -> Self {
        ServerRateLimit {
            requests_per_second: 100,
            burst: 200,
        }
    }
}

/// `database.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgresql://…`; unset → the embedded cluster in `./.fluxbase/pg`.
    pub url: Option<String>,
    /// Pool size.
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// A connection older than this is closed and replaced.
    pub connection_max_lifetime: Dur,
    /// An idle connection (above `min_connections`) is closed after this.
    pub max_conn_idle_time: Dur,
    /// How often idle connections are checked and the pool topped up.
    pub health_check_period: Dur,
    /// Queries slower than this are logged with `slow_query=true`.
    pub slow_query_threshold: Dur,
    /// Time to establish a connection or wait for one from the pool.
    pub connect_timeout: Dur,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: DEFAULT_DB_MAX_CONNECTIONS,
            min_connections: 2,
            connection_max_lifetime: Dur::secs(3600),
            max_conn_idle_time: Dur::secs(600),
            health_check_period: Dur::secs(60),
            slow_query_threshold: Dur::secs(1),
            connect_timeout: Dur::secs(10),
        }
    }
}

impl DatabaseConfig {
    /// The pool's settings from `database.*`.
    pub fn pool_settings(&self) -> fluxbase_migrations::PoolSettings {
        fluxbase_migrations::PoolSettings {
            max_connections: self.max_connections as usize,
            min_connections: self.min_connections as usize,
            connection_max_lifetime: self.connection_max_lifetime.get(),
            max_conn_idle_time: self.max_conn_idle_time.get(),
            health_check_period: self.health_check_period.get(),
            slow_query_threshold: self.slow_query_threshold.get(),
            connect_timeout: self.connect_timeout.get(),
        }
    }
}

/// `log.level`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, dev only.
    Trace,
    /// Detailed request data, dev only.
    Debug,
    /// Requests, start-up, shutdown.
    Info,
    /// 4xx, slow queries, rate limits.
    Warn,
    /// 5xx and failures.
    Error,
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines.
    Text,
}

/// `log.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Minimum level.
    pub level: LogLevel,
    /// `json` in production, `text` for people.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

/// Keys whose values are secrets: shown as `"***"` by [`Config::redacted`] and in errors.
const SECRET_KEYS: &[&str] = &[
    "auth.jwt_secret",
    "auth.smtp.password",
    "storage.s3.secret_key",
    "storage.s3.access_key",
    "jobs.signing_secret",
    "realtime.redis_url",
];

impl Config {
    /// Rules across keys; each error names its key.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, msg: String| {
            if !ok {
                errors.push((key.to_string(), msg));
            }
        };
        let db = &self.database;
        check(
            db.max_connections >= 1,
            "database.max_connections",
            "must be at least 1".into(),
        );
        check(
            db.min_connections <= db.max_connections,
            "database.min_connections",
            format!(
                "{} is more than database.max_connections ({})",
                db.min_connections, db.max_connections
            ),
        );
        check(
            !self.server.body_timeout.get().is_zero(),
            "server.body_timeout",
            "must be more than 0s".into(),
        );
        check(
            self.auth.password_hash_concurrency <= 1024,
            "auth.password_hash_concurrency",
            "must be at most 1024 (each running hash holds 19 MiB)".into(),
        );
        check(
            self.auth.password_hash_queue <= 100_000,
            "auth.password_hash_queue",
            "must be at most 100000".into(),
        );
        check(
            !db.health_check_period.get().is_zero(),
            "database.health_check_period",
            "must be more than 0s".into(),
        );
        if let Some(url) = &db.url {
            check(
                url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.contains('='),
                "database.url",
                "must be a postgres:// or postgresql:// URL (or a key=value connection string)"
                    .into(),
            );
        }
        let rt = &self.realtime;
        check(
            !rt.ping_interval.get().is_zero(),
            "realtime.ping_interval",
            "must be more than 0s".into(),
        );
        check(
            !rt.pong_timeout.get().is_zero(),
            "realtime.pong_timeout",
            "must be more than 0s".into(),
        );
        check(
            rt.slow_client_threshold <= rt.client_message_queue_size,
            "realtime.slow_client_threshold",
            format!(
                "{} is more than realtime.client_message_queue_size ({})",
                rt.slow_client_threshold, rt.client_message_queue_size
            ),
        );
        check(
            rt.rls_cache_size >= 1,
            "realtime.rls_cache_size",
            "must be at least 1".into(),
        );
        check(
            rt.rls_fallback_connections >= 1,
            "realtime.rls_fallback_connections",
            "must be at least 1".into(),
        );
        check(
            rt.max_channel_name_length >= 1,
            "realtime.max_channel_name_length",
            "must be at least 1".into(),
        );
        check(
            rt.bus == "local" || rt.bus == "redis",
            "realtime.bus",
            format!("must be local or redis, not {:?}", rt.bus),
        );
        check(
            rt.bus != "redis" || rt.redis_url.as_deref().is_some_and(|u| !u.is_empty()),
            "realtime.redis_url",
            "must be set (FLUXBASE_REDIS_URL) when realtime.bus is redis".into(),
        );
        if let Some(url) = rt.redis_url.as_deref().filter(|u| !u.is_empty()) {
            check(
                url.starts_with("redis://") || url.starts_with("redis+unix://"),
                "realtime.redis_url",
                "must be a redis:// URL (redis://[:password@]host:port/db)".into(),
            );
        }
        check(
            rt.leader_failover_timeout.get() >= std::time::Duration::from_secs(1),
            "realtime.leader_failover_timeout",
            "must be at least 1s".into(),
        );
        check(
            rt.bus_stream_max_length >= 1000,
            "realtime.bus_stream_max_length",
            "must be at least 1000".into(),
        );
        check(
            rt.client_queue_bytes.0 >= 1024,
            "realtime.client_queue_bytes",
            "must be at least 1KB".into(),
        );
        check(
            self.server.rate_limit.requests_per_second >= 1,
            "server.rate_limit.requests_per_second",
            "must be at least 1".into(),
        );
        let rl = &self.security.rate_limit;
        for (value, key) in [
            (
                rl.requests_per_minute,
                "security.rate_limit.requests_per_minute",
            ),
            (rl.login_attempts, "security.rate_limit.login_attempts"),
            (
                rl.per_user_per_minute,
                "security.rate_limit.per_user_per_minute",
            ),
            (
                rl.per_service_key_per_minute,
                "security.rate_limit.per_service_key_per_minute",
            ),
            (self.server.rate_limit.burst, "server.rate_limit.burst"),
        ] {
            check(value >= 1, key, "must be at least 1".into());
        }
        check(
            !rl.login_window.get().is_zero(),
            "security.rate_limit.login_window",
            "must be more than 0s".into(),
        );
        for proxy in &self.server.trusted_proxies {
            check(
                proxy.parse::<std::net::IpAddr>().is_ok(),
                "server.trusted_proxies",
                format!("{proxy:?} is not an IP address"),
            );
        }
        let cors = &self.security.cors;
        check(
            !(cors.allow_credentials && cors.allowed_origins.iter().any(|o| o == "*")),
            "security.cors.allow_credentials",
            "cannot be true while security.cors.allowed_origins contains \"*\"".into(),
        );
        check(
            matches!(self.replication.plugin.as_str(), "pgoutput" | "wal2json"),
            "replication.plugin",
            format!(
                "{:?} is not supported: use pgoutput or wal2json (the server needs the \
                 wal2json package for the latter, Debian: postgresql-<major>-wal2json)",
                self.replication.plugin
            ),
        );
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        check(
            ident(&self.replication.slot_name),
            "replication.slot_name",
            "must be 1-63 characters of a-z, 0-9 and _".into(),
        );
        check(
            ident(&self.replication.publication_name),
            "replication.publication_name",
            "must be 1-63 characters of a-z, 0-9 and _".into(),
        );
        let dash = &self.dashboard;
        check(
            dash.max_failed_logins >= 1,
            "dashboard.max_failed_logins",
            "must be at least 1".into(),
        );
        for (value, key) in [
            (dash.lockout_duration, "dashboard.lockout_duration"),
            (dash.access_token_ttl, "dashboard.access_token_ttl"),
            (dash.refresh_token_ttl, "dashboard.refresh_token_ttl"),
        ] {
            check(!value.get().is_zero(), key, "must be more than 0s".into());
        }
        check(
            (8..=256).contains(&dash.password_min_length),
            "dashboard.password_min_length",
            "must be between 8 and 256".into(),
        );
        self.validate_rest(&mut check);
        errors.extend(self.storage.validate());
        errors.extend(self.jobs.validate());
        errors.extend(self.auth_email_rules());
        errors
    }

    /// A copy safe to log: secrets replaced by `"***"`, the database password removed.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        for key in SECRET_KEYS {
            let mut node = &mut value;
            for part in key.split('.') {
                node = &mut node[part];
            }
            if !node.is_null() {
                *node = "***".into();
            }
        }
        if let Some(url) = self.database.url.as_deref() {
            value["database"]["url"] = redact_url(url).into();
        }
        if let Some(url) = self.realtime.redis_url.as_deref() {
            value["realtime"]["redis_url"] = redact_url(url).into();
        }
        value
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}
