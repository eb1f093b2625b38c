//! [`RealtimeSettings`]: the `realtime.*` keys the engine reads, with their defaults.

use std::time::Duration;

use super::channels::ChannelLimits;
use super::connection::QueueLimits;
use super::connections::Limits;

/// Default `realtime.max_channels_per_connection`.
pub const DEFAULT_MAX_CHANNELS_PER_CONNECTION: usize = 100;
/// Default `realtime.max_channel_name_length` (bytes).
pub const DEFAULT_MAX_CHANNEL_NAME_LENGTH: usize = 255;
/// Default `realtime.client_queue_bytes`.
pub const DEFAULT_CLIENT_QUEUE_BYTES: usize = 16 << 20;

/// Settings of the engine (the `realtime.*` keys).
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// `realtime.max_connections`
    pub max_connections: usize,
    /// `realtime.max_connections_per_user`
    pub max_connections_per_user: usize,
    /// `realtime.max_connections_per_ip`
    pub max_connections_per_ip: usize,
    /// `realtime.client_message_queue_size`
    pub queue_size: usize,
    /// `realtime.client_queue_bytes`: bytes a socket may have queued and not yet written.
    pub queue_bytes: usize,
    /// `realtime.slow_client_threshold`
    pub slow_client_threshold: usize,
    /// `realtime.slow_client_timeout`
    pub slow_client_timeout: Duration,
    /// `realtime.rls_cache_size`
    pub rls_cache_size: usize,
    /// `realtime.rls_cache_ttl`
    pub rls_cache_ttl: Duration,
    /// `realtime.rls_fallback_connections`: the engine's own pool for the SQL fallback,
    /// TOAST reads and the role watcher, so fan-out never waits for the main pool.
    pub rls_fallback_connections: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// `realtime.max_channels_per_connection`: broadcast/presence channels one connection
    /// may be in.
    pub max_channels_per_connection: usize,
    /// `realtime.max_channel_name_length`: bytes of a channel name.
    pub max_channel_name_length: usize,
    /// `realtime.ping_interval`
    pub ping_interval: Duration,
    /// `realtime.pong_timeout`
    pub pong_timeout: Duration,
    /// `realtime.message_size_limit`: the largest client frame (bytes).
    pub message_size_limit: usize,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        RealtimeSettings {
            max_connections: 10_000,
            max_connections_per_user: 100,
            max_connections_per_ip: 1_000,
            queue_size: 1024,
            queue_bytes: DEFAULT_CLIENT_QUEUE_BYTES,
            slow_client_threshold: 100,
            slow_client_timeout: Duration::from_secs(30),
            rls_cache_size: 100_000,
            rls_cache_ttl: Duration::from_secs(30),
            rls_fallback_connections: super::rls::conn::DEFAULT_FALLBACK_CONNECTIONS,
            max_subscriptions_per_connection: 100,
            max_channels_per_connection: DEFAULT_MAX_CHANNELS_PER_CONNECTION,
            max_channel_name_length: DEFAULT_MAX_CHANNEL_NAME_LENGTH,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            message_size_limit: 1 << 20,
        }
    }
}

impl RealtimeSettings {
    /// The connection limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            per_user: self.max_connections_per_user,
            per_ip: self.max_connections_per_ip,
        }
    }

    /// The per-socket queue bounds.
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            capacity: self.queue_size,
            bytes: self.queue_bytes,
            threshold: self.slow_client_threshold,
            timeout: self.slow_client_timeout,
        }
    }

    /// The channel bounds.
    pub fn channel_limits(&self) -> ChannelLimits {
        ChannelLimits {
            per_connection: self.max_channels_per_connection,
            name_length: self.max_channel_name_length,
        }
    }
}
