//! Configuration of the replication stream, as data with defaults and validation.

use std::time::Duration;

use crate::error::{ReplicationError, Result};

/// Default slot name (`replication.slot_name`).
pub const DEFAULT_SLOT_NAME: &str = "fluxbase_realtime";
/// Default publication name.
pub const DEFAULT_PUBLICATION_NAME: &str = "fluxbase_realtime";
/// Default schemas whose tables are published (`replication.schemas`).
pub const DEFAULT_SCHEMAS: &[&str] = &["public"];
/// Internal tables published when they exist: the engine closes sockets on session deletes.
pub const DEFAULT_EXTRA_TABLES: &[&str] = &["auth.sessions"];
/// How often a standby status update is sent even when nothing happens.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Transactions buffered between the stream and the consumer before the stream waits.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 64;
/// First reconnect delay.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Reconnect delays double up to this cap.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often slot lag is sampled (and, before PG 15, new tables added to the publication).
pub const DEFAULT_LAG_INTERVAL: Duration = Duration::from_secs(10);
/// Lag above which the status reports `degraded` (`replication.max_lag_bytes`).
pub const DEFAULT_MAX_LAG_BYTES: u64 = 1 << 30;
/// Connect + startup timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The output plugin used by the slot (`replication.plugin`). Both produce the same
/// [`Transaction`](crate::Transaction)s; see [`crate::wal2json`] for the differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plugin {
    /// PostgreSQL's built-in logical replication plugin, protocol version 1.
    #[default]
    Pgoutput,
    /// The wal2json extension (format version 2); must be installed on the server
    /// (Debian: `postgresql-<major>-wal2json`).
    Wal2json,
}

impl Plugin {
    /// The plugin's name as PostgreSQL knows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Plugin::Pgoutput => "pgoutput",
            Plugin::Wal2json => "wal2json",
        }
    }
}

/// Everything the replication stream needs.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Where and as whom to connect; parsed from a URL or key=value string by tokio-postgres.
    /// `sslmode` is honoured (`disable`, `prefer`, `require`; `require` does not verify the
    /// certificate, as in libpq).
    pub connection: tokio_postgres::Config,
    /// Logical slot name.
    pub slot_name: String,
    /// Publication name.
    pub publication_name: String,
    /// Schemas whose tables are published, now and later.
    pub schemas: Vec<String>,
    /// `schema.table` names published when they exist.
    pub extra_tables: Vec<String>,
    /// Output plugin.
    pub plugin: Plugin,
    /// Interval of standby status updates.
    pub status_interval: Duration,
    /// Capacity of the transaction channel (backpressure bound).
    pub channel_capacity: usize,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Reconnect delay cap.
    pub backoff_max: Duration,
    /// Lag sampling interval.
    pub lag_interval: Duration,
    /// Lag above which status is degraded.
    pub max_lag_bytes: u64,
    /// Timeout of connecting and of each setup query.
    pub connect_timeout: Duration,
}

impl ReplicationConfig {
    /// A configuration with every default, connecting with `connection`.
    pub fn new(connection: tokio_postgres::Config) -> Self {
        ReplicationConfig {
            connection,
            slot_name: DEFAULT_SLOT_NAME.to_owned(),
            publication_name: DEFAULT_PUBLICATION_NAME.to_owned(),
            schemas: DEFAULT_SCHEMAS.iter().map(|s| (*s).to_owned()).collect(),
            extra_tables: DEFAULT_EXTRA_TABLES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            plugin: Plugin::Pgoutput,
            status_interval: DEFAULT_STATUS_INTERVAL,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            lag_interval: DEFAULT_LAG_INTERVAL,
            max_lag_bytes: DEFAULT_MAX_LAG_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Checks every key; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, reason: &str| {
            Err(ReplicationError::Config {
                key,
                reason: reason.to_owned(),
            })
        };
        if !valid_slot_name(&self.slot_name) {
            return bad(
                "replication.slot_name",
                "use 1-63 characters of a-z, 0-9 and _",
            );
        }
        if !valid_slot_name(&self.publication_name) {
            return bad(
                "replication.publication_name",
                "use 1-63 characters of a-z, 0-9 and _",
            );
        }
        if self.schemas.iter().any(|s| s.is_empty()) {
            return bad("replication.schemas", "schema names must not be empty");
        }
        if self.extra_tables.iter().any(|t| {
            t.split_once('.')
                .is_none_or(|(s, n)| s.is_empty() || n.is_empty())
        }) {
            return bad("replication.extra_tables", "use schema.table");
        }
        if self.channel_capacity == 0 {
            return bad("replication.channel_capacity", "must be at least 1");
        }
        if self.status_interval.is_zero() || self.lag_interval.is_zero() {
            return bad("replication.status_interval", "intervals must be positive");
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return bad("replication.backoff", "need 0 < backoff_min <= backoff_max");
        }
        if self.connection.get_hosts().is_empty() {
            return bad("database.url", "no host");
        }
        if self.connection.get_user().is_none() {
            return bad("database.url", "no user");
        }
        Ok(())
    }
}

/// PostgreSQL accepts only lower-case letters, digits and underscores in slot names; the same
/// rule for the publication lets both appear unquoted in replication commands.
fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        let conn: tokio_postgres::Config = "postgres://u:p@localhost/db".parse().unwrap();
        let mut cfg = ReplicationConfig::new(conn);
        assert!(cfg.validate().is_ok());
        cfg.slot_name = "Bad-Name".into();
        assert!(matches!(
            cfg.validate(),
            Err(ReplicationError::Config {
                key: "replication.slot_name",
                ..
            })
        ));
        cfg.slot_name = "ok_1".into();
        cfg.extra_tables = vec!["nodot".into()];
        assert!(cfg.validate().is_err());
    }
}
