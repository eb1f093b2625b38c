//! The shared connection pool (deadpool-postgres) with the runbook's `database.*` settings,
//! instrumented queries (`fluxbase_db_*` metrics, `slow_query=true` logs), the pool
//! gauges, a health probe, and the maintenance loop that enforces lifetimes and the warm
//! minimum.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::DbError;
use crate::lane::{self, HomeSlot, LaneConnect};
use crate::tls::MakeRustlsConnect;

/// How long `/ready` and health checks wait for the database.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `database.*` settings of the pool (the binary's configuration fills them in).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `database.max_connections`: pool size.
    pub max_connections: usize,
    /// `database.min_connections`: connections kept open even when idle.
    pub min_connections: usize,
    /// `database.connection_max_lifetime`: an older connection is closed and replaced.
    pub connection_max_lifetime: Duration,
    /// `database.max_conn_idle_time`: an idle connection above the minimum is closed.
    pub max_conn_idle_time: Duration,
    /// `database.health_check_period`: how often the maintenance pass runs.
    pub health_check_period: Duration,
    /// `database.slow_query_threshold`: slower statements are logged `slow_query=true`.
    pub slow_query_threshold: Duration,
    /// `database.connect_timeout`: to open a connection, or wait for one from the pool.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 50,
            min_connections: 2,
            connection_max_lifetime: Duration::from_secs(3600),
            max_conn_idle_time: Duration::from_secs(600),
            health_check_period: Duration::from_secs(60),
            slow_query_threshold: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The shared pool and its settings; cheap to clone.
///
/// The pool is one or more lanes (see the `lane` module): `database.max_connections` and
/// `database.min_connections` are split between them (their sums are the settings), and
/// each lane's connections are driven by the HTTP worker that claimed it.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Lanes>,
}

/// The lanes and what they share.
struct Lanes {
    /// One pool per lane; at least one.
    pools: Vec<Pool>,
    /// Each lane's worker, once one claimed it.
    homes: Vec<HomeSlot>,
    /// Each lane's share of `min_connections`.
    min: Vec<usize>,
    /// The next lane for a thread that claimed none.
    turn: AtomicUsize,
    /// The `database.*` settings, as configured (totals, not a lane's share).
    settings: PoolSettings,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("status", &self.stats()).finish()
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

/// Parses a `postgres://` URL or a `key=value` connection string.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    tokio_postgres::Config::from_str(url)
}

impl Db {
    /// Builds the pool as one lane (connections are opened lazily, then kept at
    /// `min_connections`).
    pub fn new(pg: tokio_postgres::Config, settings: PoolSettings) -> Db {
        Db::with_lanes(pg, settings, 1)
    }

    /// Builds the pool as `lanes` lanes, one per HTTP worker, splitting the budget (never
    /// more lanes than `max_connections`, so each has at least one connection).
    pub fn with_lanes(pg: tokio_postgres::Config, settings: PoolSettings, lanes: usize) -> Db {
        let max = settings.max_connections.max(1);
        let lanes = lanes.clamp(1, max);
        let share = |total: usize, i: usize| total / lanes + usize::from(i < total % lanes);
        let timeout = Some(settings.connect_timeout);
        let mut pools = Vec::with_capacity(lanes);
        let mut homes = Vec::with_capacity(lanes);
        for i in 0..lanes {
            let home = HomeSlot::default();
            let manager = Manager::from_connect(
                pg.clone(),
                LaneConnect {
                    tls: MakeRustlsConnect::new(),
                    home: home.clone(),
                },
                ManagerConfig {
                    // A connection whose socket closed (database restarted) is replaced.
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            let pool = Pool::builder(manager)
                .max_size(share(max, i))
                .runtime(Runtime::Tokio1)
                .wait_timeout(timeout)
                .create_timeout(timeout)
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .expect("a runtime and a size are set");
            pools.push(pool);
            homes.push(home);
        }
        let min = (0..lanes)
            .map(|i| share(settings.min_connections.min(max), i))
            .collect();
        Db {
            inner: Arc::new(Lanes {
                pools,
                homes,
                min,
                turn: AtomicUsize::new(0),
                settings,
            }),
        }
    }

    /// Makes the calling thread (an HTTP worker, as it starts) the home of a free lane:
    /// its connections are opened and driven on this thread's runtime from now on, and
    /// this thread takes its connections from that lane only. Connections the lane opened
    /// before (start-up's warm ones, or those of a worker that ended) are closed; the
    /// maintenance pass opens the warm minimum again, here. Outside a tokio runtime, with
    /// every lane held by a live worker, or called again on the same thread, it does
    /// nothing (the thread then takes from the lanes in turn).
    pub fn claim_lane(&self) {
        let id = self.id();
        if lane::claimed(id).is_some() {
            return;
        }
        if let Some(i) = lane::claim(id, &self.inner.homes) {
            self.inner.pools[i].retain(|_, _| false);
        }
    }

    /// Whether a connection of lane `i` was opened before its worker claimed the lane
    /// (its task runs on another thread): such a connection is closed instead of reused.
    fn stale(&self, i: usize, conn: &Object) -> bool {
        lane::home(&self.inner.homes[i]).is_some_and(|h| Object::metrics(conn).created < h.since)
    }

    /// This pool's identity, for the threads' claims.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// The lane the calling thread uses: the one it claimed, else the next in turn.
    fn lane(&self) -> usize {
        lane::claimed(self.id()).unwrap_or_else(|| {
            self.inner.turn.fetch_add(1, Ordering::Relaxed) % self.inner.pools.len()
        })
    }

    /// A lane's pool (for services that manage their own connections): the calling
    /// thread's lane, or the next in turn. With one lane, the whole pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pools[self.lane()]
    }

    /// The settings in force.
    pub fn settings(&self) -> &PoolSettings {
        &self.inner.settings
    }

    /// A pooled connection, from the calling thread's lane (never one the lane opened
    /// before its worker claimed it).
    pub async fn conn(&self) -> Result<Object, DbError> {
        let i = self.lane();
        loop {
            let conn = self.inner.pools[i].get().await?;
            if !self.stale(i, &conn) {
                return Ok(conn);
            }
            drop(Object::take(conn));
        }
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
        if elapsed >= self.inner.settings.slow_query_threshold {
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
            Err(_) => Err(DbError::TimedOut(PROBE_TIMEOUT)),
        }
    }

    /// Pool occupancy, summed over the lanes.
    pub fn stats(&self) -> PoolStats {
        let mut stats = PoolStats {
            size: 0,
            available: 0,
            waiting: 0,
            max_size: 0,
        };
        for pool in &self.inner.pools {
            let s = pool.status();
            stats.size += s.size;
            stats.available += s.available;
            stats.waiting += s.waiting;
            stats.max_size += s.max_size;
        }
        stats
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
    /// to `min_connections` (each lane its share).
    pub async fn maintain(&self) {
        let max_lifetime = self.inner.settings.connection_max_lifetime;
        let max_idle = self.inner.settings.max_conn_idle_time;
        let lanes = self.inner.pools.iter().zip(&self.inner.min);
        for ((pool, &min), home) in lanes.zip(&self.inner.homes) {
            let since = lane::home(home).map(|h| h.since);
            let mut keep_budget = pool.status().size;
            pool.retain(|_, m| {
                let stale = since.is_some_and(|at| m.created < at);
                let expired = stale || m.age() > max_lifetime;
                let idle_too_long = m.last_used() > max_idle && keep_budget > min;
                if expired || idle_too_long {
                    keep_budget = keep_budget.saturating_sub(1);
                    false
                } else {
                    true
                }
            });
        }
        self.fill_to_min().await;
    }

    /// Opens connections until `min_connections` are in the pool (each lane its share).
    pub async fn fill_to_min(&self) {
        for (pool, &min) in self.inner.pools.iter().zip(&self.inner.min) {
            let missing = min.saturating_sub(pool.status().size);
            let mut held = Vec::with_capacity(missing);
            for _ in 0..missing {
                match pool.get().await {
                    Ok(conn) => held.push(conn),
                    Err(err) => {
                        tracing::debug!(error = %DbError::from(err), "could not open a warm connection");
                        break;
                    }
                }
            }
        }
    }

    /// Runs [`Db::maintain`] every `health_check_period` until `shutdown` fires.
    pub async fn maintenance_loop(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.inner.settings.health_check_period);
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
        for pool in &self.inner.pools {
            pool.close();
        }
    }
}
