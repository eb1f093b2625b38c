//! The `phx_join` payload realtime-js sends: unknown fields are ignored (clients add new
//! ones, such as `version`), absent or `null` ones take Phoenix's defaults.

use serde::Deserialize;
use serde_json::Value;

/// `payload` of `phx_join`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct JoinPayload {
    /// The channel's options.
    #[serde(default)]
    pub(super) config: Option<JoinConfig>,
    /// A token that re-authorises the socket before the join.
    #[serde(default)]
    pub(super) access_token: Option<String>,
}

/// `config` of `phx_join`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct JoinConfig {
    /// Broadcast options.
    #[serde(default)]
    pub(super) broadcast: Option<BroadcastConfig>,
    /// Presence options.
    #[serde(default)]
    pub(super) presence: Option<PresenceConfig>,
    /// The bindings, kept as sent (the reply echoes them).
    #[serde(default)]
    pub(super) postgres_changes: Option<Vec<Value>>,
    /// A private channel (refused).
    #[serde(default)]
    pub(super) private: Option<bool>,
}

/// `config.broadcast`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BroadcastConfig {
    /// Own broadcasts come back.
    #[serde(default, rename = "self")]
    pub(super) self_broadcast: Option<bool>,
    /// Each broadcast is acknowledged.
    #[serde(default)]
    pub(super) ack: Option<bool>,
}

/// `config.presence`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PresenceConfig {
    /// The presence key (empty: the connection id).
    #[serde(default)]
    pub(super) key: Option<String>,
    /// Presence events are sent.
    #[serde(default)]
    pub(super) enabled: Option<bool>,
}

/// One `postgres_changes` binding.
#[derive(Debug, Deserialize)]
pub(super) struct Binding {
    /// INSERT, UPDATE, DELETE or `*`.
    pub(super) event: String,
    /// The schema (default `public`).
    #[serde(default)]
    pub(super) schema: Option<String>,
    /// The table (required here).
    #[serde(default)]
    pub(super) table: Option<String>,
    /// `col=op.value`.
    #[serde(default)]
    pub(super) filter: Option<String>,
}
