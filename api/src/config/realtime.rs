//! `realtime.*` and `replication.*`: the engine's sockets, limits, RLS cache, the bus and
//! leader election of a scaled-out deployment, and the replication slot it reads.

use serde::{Deserialize, Serialize};

use super::{ByteSize, DEFAULT_RLS_CACHE_SIZE, Dur};

/// `realtime.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Whether `/realtime` is served.
    pub enabled: bool,
    /// Sockets per instance.
    pub max_connections: u32,
    /// Sockets per user (`sub`).
    pub max_connections_per_user: u32,
    /// Sockets per client IP.
    pub max_connections_per_ip: u32,
    /// Server ping period.
    pub ping_interval: Dur,
    /// A socket that does not answer a ping within this is closed.
    pub pong_timeout: Dur,
    /// Entries in the RLS decision cache.
    pub rls_cache_size: u64,
    /// How long a cached RLS decision is trusted.
    pub rls_cache_ttl: Dur,
    /// Connections of the engine's own pool for the RLS SQL fallback, TOAST reads and the
    /// role watcher (fan-out never waits for `database.max_connections`).
    pub rls_fallback_connections: u32,
    /// Queued messages above which a client counts as slow.
    pub slow_client_threshold: u32,
    /// How long a client may stay slow before it is disconnected (close 4008).
    pub slow_client_timeout: Dur,
    /// Bound of each socket's outgoing queue.
    pub client_message_queue_size: u32,
    /// Bytes a socket may have queued and not yet written before it is cut as slow.
    pub client_queue_bytes: ByteSize,
    /// Kernel send buffer of each WebSocket (`SO_SNDBUF`; 0 keeps the kernel's autotuned
    /// one): a client that stops reading backs up into the counted queue within this,
    /// not into megabytes of kernel buffers.
    pub socket_send_buffer: ByteSize,
    /// Largest client frame accepted.
    pub message_size_limit: ByteSize,
    /// Broadcast/presence channels one socket may be in.
    pub max_channels_per_connection: u32,
    /// Longest channel name (bytes).
    pub max_channel_name_length: u32,
    /// What carries changes, broadcasts and presence between instances: `local` (one
    /// instance, in-process) or `redis` (scale-out, needs `realtime.redis_url`).
    pub bus: String,
    /// The Redis URL of the bus (`FLUXBASE_REDIS_URL`), `redis://[:password@]host:port/db`.
    pub redis_url: Option<String>,
    /// How long the instances may go without a slot leader before another takes over;
    /// also how long a dead instance's presences remain.
    pub leader_failover_timeout: Dur,
    /// Entries the Redis changes stream keeps (trimmed approximately); an instance further
    /// behind closes its sockets (close 4010) instead of skipping events.
    pub bus_stream_max_length: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            enabled: true,
            max_connections: 10_000,
            max_connections_per_user: 100,
            max_connections_per_ip: 1_000,
            ping_interval: Dur::secs(30),
            pong_timeout: Dur::secs(10),
            rls_cache_size: DEFAULT_RLS_CACHE_SIZE,
            rls_cache_ttl: Dur::secs(30),
            rls_fallback_connections: 4,
            slow_client_threshold: 100,
            slow_client_timeout: Dur::secs(30),
            client_message_queue_size: 1024,
            client_queue_bytes: ByteSize(16 << 20),
            socket_send_buffer: ByteSize(32 << 10),
            message_size_limit: ByteSize(1 << 20),
            max_channels_per_connection: 100,
            max_channel_name_length: 255,
            bus: "local".into(),
            redis_url: None,
            leader_failover_timeout: Dur::secs(5),
            bus_stream_max_length: 100_000,
        }
    }
}

/// `replication.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationSettings {
    /// Permanent logical slot (one per database: slot names are cluster-wide).
    pub slot_name: String,
    /// Publication the slot streams.
    pub publication_name: String,
    /// Schemas whose tables are published (`FLUXBASE_REPLICATION_SCHEMAS=public,app`).
    pub schemas: Vec<String>,
    /// Output plugin: `pgoutput` (built in) or `wal2json` (format-version 2).
    pub plugin: String,
    /// Slot lag above which health reports `degraded`.
    pub max_lag_bytes: ByteSize,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            slot_name: "fluxbase_realtime".into(),
            publication_name: "fluxbase_realtime".into(),
            schemas: vec!["public".into()],
            plugin: "pgoutput".into(),
            max_lag_bytes: ByteSize(1 << 30),
        }
    }
}

#[cfg(test)]
mod scaleout_tests {
    use crate::config::{Config, load};

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_bus_keys_load_from_the_environment_and_the_url_is_redacted() {
        assert_eq!(Config::default().realtime.bus, "local");
        let loaded = load(
            Some(std::path::Path::new("/dev/null")),
            env(&[
                ("FLUXBASE_REALTIME_BUS", "redis"),
                ("FLUXBASE_REDIS_URL", "redis://:hunter2-secret@redis:6379/0"),
                ("FLUXBASE_REALTIME_LEADER_FAILOVER_TIMEOUT", "2s"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(loaded.realtime.bus, "redis");
        assert_eq!(
            loaded.realtime.leader_failover_timeout.get(),
            std::time::Duration::from_secs(2)
        );
        let shown = loaded.redacted().to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis:6379"), "{shown}");
    }

    #[test]
    fn bad_bus_settings_name_their_key() {
        let errors = load(
            Some(std::path::Path::new("/dev/null")),
            env(&[
                ("FLUXBASE_REALTIME_BUS", "redis"),
                ("FLUXBASE_REALTIME_LEADER_FAILOVER_TIMEOUT", "100ms"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"realtime.redis_url"), "{errors:?}");
        assert!(
            keys.contains(&"realtime.leader_failover_timeout"),
            "{errors:?}"
        );
        let errors = load(
            Some(std::path::Path::new("/dev/null")),
            env(&[
                ("FLUXBASE_REALTIME_BUS", "kafka"),
                ("FLUXBASE_REDIS_URL", "http://:pw-secret@redis"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"realtime.bus"), "{errors:?}");
        let url = errors
            .iter()
            .find(|e| e.key == "realtime.redis_url")
            .unwrap();
        assert!(!url.to_string().contains("pw-secret"), "{url}");
    }
}
