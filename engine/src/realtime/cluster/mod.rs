//! Scale-out (DESIGN §7): several instances behind a load balancer share one replication
//! slot, and their channels, over Redis.
//!
//! - **One slot leader** ([`leader`]): instances elect the slot consumer with a PostgreSQL
//!   advisory lock held on a dedicated connection ([`lease`]). The leader runs the usual
//!   consume loop, but its target is the changes stream: it appends each transaction with
//!   its end LSN ([`changes::Appender`]) and acknowledges the slot only once Redis took it.
//!   Followers never open the slot. When the leader's lock session ends (process killed,
//!   connection lost), another instance takes the lock within
//!   `realtime.leader_failover_timeout` and resumes from the slot's confirmed position.
//! - **Changes over a Redis Stream** ([`changes`]): the append is one Lua script that
//!   refuses an LSN at or below the last appended one (a transaction appended again after a
//!   failover is not appended twice) and numbers entries contiguously; every instance
//!   reads the stream from its last id, dedupes by LSN again, and fans out to its own
//!   sockets with its own RLS decisions. A reader that sees a hole in the numbering (it
//!   fell behind the stream's bounded length, or Redis lost data) closes its sockets with
//!   a reason instead of skipping events silently.
//! - **Channels** ([`bus::RedisBus`]): broadcasts and presence diffs on a second stream,
//!   presence state in hashes, each instance's presences reaped by the others when its
//!   heartbeat key expires.

pub mod bus;
pub mod changes;
mod leader;
mod lease;
pub mod limits;
pub mod rate;
mod service;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tokio::sync::{Notify, watch};

pub use bus::RedisBus;
pub use changes::Appender;
pub use limits::SharedLimits;
pub use rate::SharedRate;

/// Default `realtime.leader_failover_timeout`.
pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound of the changes stream (entries; trimmed approximately).
pub const DEFAULT_STREAM_MAX_LEN: u64 = 100_000;

/// How an instance joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `FLUXBASE_REDIS_URL` (`redis://[:password@]host:port/db`).
    pub redis_url: String,
    /// `realtime.leader_failover_timeout`: how long the cluster may go without a slot
    /// leader; also the TTL of an instance's presences.
    pub failover_timeout: Duration,
    /// Prefix of every Redis key and of the advisory lock (the slot name: one cluster per
    /// slot, several clusters may share one Redis).
    pub namespace: String,
    /// Bound of the changes stream, in entries.
    pub stream_max_len: u64,
}

/// Why the cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL is not one.
    #[error("FLUXBASE_REDIS_URL is not a valid Redis URL: {0}")]
    Url(#[source] redis::RedisError),
}

/// This instance's role for the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not decided yet (the first lock attempt has not answered).
    Unknown,
    /// Holds the lock and consumes the slot.
    Leader,
    /// Another instance holds the lock.
    Follower,
}

/// The bus for the health endpoint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterStats {
    /// `leader` or `follower` (`unknown` before the first lock attempt).
    pub role: Role,
    /// The bus kind (`redis`).
    pub bus: &'static str,
    /// Whether the changes reader is connected to Redis.
    pub connected: bool,
    /// Id of the last changes-stream entry this instance fanned out.
    pub last_id: Option<String>,
    /// Seconds between the last entry's append and its fan-out here.
    pub lag_seconds: f64,
    /// Entries appended by this instance (as leader).
    pub published: u64,
    /// Entries fanned out by this instance.
    pub consumed: u64,
}

/// The cluster membership of one engine; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.shared.options.namespace)
            .finish_non_exhaustive()
    }
}

/// State shared by the cluster's tasks.
pub(crate) struct Shared {
    pub(crate) client: redis::Client,
    pub(crate) options: ClusterOptions,
    pub(crate) role: watch::Sender<Role>,
    /// Whether the changes reader has its position (the tail at start) and may be waited
    /// on by `Engine::start`.
    pub(crate) reader_ready: watch::Sender<bool>,
    /// Whether the channels reader has its position.
    pub(crate) channels_ready: watch::Sender<bool>,
    pub(crate) connected: AtomicBool,
    /// A std lock: only read or replaced.
    pub(crate) stats: std::sync::Mutex<ClusterStats>,
    /// Wakes the changes reader to reconnect (admin restart).
    pub(crate) restart: Notify,
}

impl Cluster {
    /// The cluster of `options`; connects lazily (the Redis URL is checked now).
    pub fn new(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(options.redis_url.as_str()).map_err(ClusterError::Url)?;
        Ok(Cluster {
            shared: Arc::new(Shared {
                client,
                options,
                role: watch::channel(Role::Unknown).0,
                reader_ready: watch::channel(false).0,
                channels_ready: watch::channel(false).0,
                connected: AtomicBool::new(false),
                stats: std::sync::Mutex::new(ClusterStats {
                    role: Role::Unknown,
                    bus: "redis",
                    connected: false,
                    last_id: None,
                    lag_seconds: 0.0,
                    published: 0,
                    consumed: 0,
                }),
                restart: Notify::new(),
            }),
        })
    }

    /// The options.
    pub fn options(&self) -> &ClusterOptions {
        &self.shared.options
    }

    /// A Redis key of this cluster.
    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("fluxbase:{}:{suffix}", self.shared.options.namespace)
    }

    /// A new connection. `blocking` ones have no response timeout (XREAD BLOCK); the others
    /// time out so a dead Redis is noticed.
    pub(crate) async fn connect(
        &self,
        blocking: bool,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout((!blocking).then_some(Duration::from_secs(2)));
        self.shared
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// This instance's role.
    pub fn role(&self) -> Role {
        *self.shared.role.borrow()
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.shared.role.send_replace(role);
        metrics::gauge!("fluxbase_realtime_leader").set(if role == Role::Leader {
            1.0
        } else {
            0.0
        });
        self.update(|s| s.role = role);
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut ClusterStats)) {
        f(&mut self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        if self.shared.connected.swap(connected, Ordering::AcqRel) != connected {
            if connected {
                tracing::info!("realtime bus connected");
            } else {
                tracing::warn!(
                    "realtime bus disconnected; resuming from the last position once back"
                );
            }
        }
        self.update(|s| s.connected = connected);
    }

    /// A snapshot for health.
    pub fn stats(&self) -> ClusterStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the bus is degraded: the changes reader not connected, or no role yet.
    pub fn degraded(&self) -> bool {
        !self.shared.connected.load(Ordering::Acquire) || self.role() == Role::Unknown
    }

    /// Asks the changes reader to reconnect (it resumes from its last id).
    pub fn restart_reader(&self) {
        self.shared.restart.notify_one();
    }

    /// Until this instance knows its role (and, as leader, the stream runs) and both
    /// readers have their position.
    pub(crate) async fn ready(&self) {
        let mut role = self.shared.role.subscribe();
        let mut reader = self.shared.reader_ready.subscribe();
        let mut channels = self.shared.channels_ready.subscribe();
        let _ = role.wait_for(|r| *r != Role::Unknown).await;
        let _ = reader.wait_for(|r| *r).await;
        let _ = channels.wait_for(|r| *r).await;
    }
}

/// Registers the scale-out metrics at their resting values, so they exist from the first
/// scrape on every instance (one without Redis is its own slot leader).
pub(crate) fn register_metrics() {
    metrics::gauge!("fluxbase_realtime_leader").set(0.0);
    metrics::gauge!("fluxbase_bus_lag_seconds").set(0.0);
    metrics::counter!("fluxbase_bus_published_total").increment(0);
    metrics::counter!("fluxbase_bus_consumed_total").increment(0);
}

pub(crate) use leader::Leader;
pub(crate) use service::Service;
