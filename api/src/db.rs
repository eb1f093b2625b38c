//! The database pool (deadpool-postgres) with the runbook's settings, instrumented queries
//! (`fluxbase_db_*` metrics, `slow_query=true` logs) and a health probe.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub use fluxbase_replication::pgtls::MakeRustlsConnect;

use crate::config::DatabaseConfig;

/// How long `/ready` and health checks wait for the database.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The TLS connector of every ordinary connection (`sslmode=require|prefer|disable`).
pub fn tls() -> MakeRustlsConnect {
    MakeRustlsConnect::new().expect("the ring provider supports the default TLS versions")
}

/// Errors talking to the database; what reaches a client is decided by `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (database down, pool exhausted, timeout).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement failed.
    #[error("query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        // The pool's backend error hides its cause in Display; keep the source text.
        let detail = match &err {
            PoolError::Backend(e) => match std::error::Error::source(e) {
                Some(src) => format!("{e}: {src}"),
                None => e.to_string(),
            },
            other => other.to_string(),
        };
        DbError::Unavailable(detail)
    }
}

/// The shared pool and its settings.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    settings: Arc<DatabaseConfig>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// Snapshot of the pool for metrics and health.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    /// Open connections.
    pub size: usize,
    /// Idle connections.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// `database.max_connections`.
    pub max_size: usize,
}

impl Db {
    /// Builds the pool (connections are opened lazily, then kept at `min_connections`).
    pub fn new(pg: tokio_postgres::Config, settings: DatabaseConfig) -> Db {
        let manager = Manager::from_config(
            pg,
            tls(),
            ManagerConfig {
                // A connection whose socket closed (database restarted) is replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(settings.connect_timeout.get());
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .expect("a runtime and a size are set");
        Db {
            pool,
            settings: Arc::new(settings),
        }
    }

    /// Parses a `postgres://` URL or `key=value` string.
    pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        tokio_postgres::Config::from_str(url)
    }

    /// The pool itself (shared with the realtime engine).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled connection.
    pub async fn conn(&self) -> Result<Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Runs a statement with bind parameters, measured and logged when slow.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let conn = self.conn().await?;
        let started = Instant::now();
        let result = conn.query(sql, params).await;
        self.observe(sql, started.elapsed(), result.is_ok());
        Ok(result?)
    }

    /// Records a query's duration and result; logs it when over the slow threshold.
    pub fn observe(&self, sql: &str, elapsed: Duration, ok: bool) {
        let status = if ok { "ok" } else { "error" };
        metrics::counter!("fluxbase_db_queries_total", "status" => status).increment(1);
        metrics::histogram!("fluxbase_db_query_duration_seconds").record(elapsed.as_secs_f64());
        if elapsed >= self.settings.slow_query_threshold.get() {
            // The statement text only: values are bind parameters and never logged.
            tracing::warn!(
                slow_query = true,
                query = %sql,
                duration_ms = elapsed.as_millis() as u64,
                "slow query"
            );
        }
    }

    /// `SELECT 1` within [`PROBE_TIMEOUT`]; the round-trip time on success.
    pub async fn ping(&self) -> Result<Duration, DbError> {
        let started = Instant::now();
        let probe = async {
            let conn = self.conn().await?;
            conn.simple_query("SELECT 1").await?;
            Ok::<_, DbError>(())
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => {
                let elapsed = started.elapsed();
                self.observe("SELECT 1", elapsed, true);
                Ok(elapsed)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(DbError::Unavailable(format!(
                "no answer within {}s",
                PROBE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Pool occupancy.
    pub fn stats(&self) -> PoolStats {
        let s = self.pool.status();
        PoolStats {
            size: s.size,
            available: s.available,
            waiting: s.waiting,
            max_size: s.max_size,
        }
    }

    /// Publishes the pool gauges (called at scrape time).
    pub fn publish_gauges(&self) {
        let s = self.stats();
        metrics::gauge!("fluxbase_db_connections").set(s.size as f64);
        metrics::gauge!("fluxbase_db_connections_idle").set(s.available as f64);
        metrics::gauge!("fluxbase_db_connections_waiting").set(s.waiting as f64);
        metrics::gauge!("fluxbase_db_connections_max").set(s.max_size as f64);
    }

    /// One maintenance pass: close connections past `connection_max_lifetime`, close idle
    /// ones past `max_conn_idle_time` while above `min_connections`, then top the pool up
    /// to `min_connections`.
    pub async fn maintain(&self) {
        let max_lifetime = self.settings.connection_max_lifetime.get();
        let max_idle = self.settings.max_conn_idle_time.get();
        let min = self.settings.min_connections as usize;
        let mut keep_budget = self.pool.status().size;
        self.pool.retain(|_, m| {
            let expired = m.age() > max_lifetime;
            let idle_too_long = m.last_used() > max_idle && keep_budget > min;
            if expired || idle_too_long {
                keep_budget = keep_budget.saturating_sub(1);
                false
            } else {
                true
            }
        });
        self.fill_to_min().await;
    }

    /// Opens connections until `min_connections` are in the pool.
    pub async fn fill_to_min(&self) {
        let min = self.settings.min_connections as usize;
        let missing = min.saturating_sub(self.pool.status().size);
        let mut held = Vec::with_capacity(missing);
        for _ in 0..missing {
            match self.pool.get().await {
                Ok(conn) => held.push(conn),
                Err(err) => {
                    tracing::debug!(error = %DbError::from(err), "could not open a warm connection");
                    break;
                }
            }
        }
    }

    /// Runs [`Db::maintain`] every `health_check_period` until `shutdown` fires.
    pub async fn maintenance_loop(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let period = self.settings.health_check_period.get();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.maintain().await,
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Closes the pool: waiters fail, idle connections close.
    pub fn close(&self) {
        self.pool.close();
    }
}
