//! The permanent logical replication slot: created when absent, reused when present.

use postgres_protocol::escape::escape_literal;
use tracing::info;

use crate::config::{Plugin, ReplicationConfig};
use crate::connection::Connection;
use crate::error::{ReplicationError, Result};

/// SQLSTATE duplicate_object: another process created the slot between our check and create.
const DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE undefined_file: the output plugin's library is not installed on the server.
const UNDEFINED_FILE: &str = "58P01";

/// Makes sure the slot exists for this database and plugin; true when it was created now.
/// Runs on a walsender connection (CREATE_REPLICATION_SLOT is a replication command).
pub(crate) async fn ensure(conn: &mut Connection, config: &ReplicationConfig) -> Result<bool> {
    let slot = &config.slot_name;
    let rows = conn
        .simple_query(&format!(
            "SELECT plugin::text AS plugin, slot_type::text AS kind, (database = current_database())::text AS same_db \
             FROM pg_replication_slots WHERE slot_name = {}",
            escape_literal(slot)
        ))
        .await?;
    if let Some(row) = rows.first() {
        let unusable = |reason: String| {
            Err(ReplicationError::Slot {
                slot: slot.clone(),
                reason,
            })
        };
        if row.get("kind") != Some("logical") {
            return unusable("not a logical slot".into());
        }
        if row.get("plugin") != Some(config.plugin.as_str()) {
            // Reusing it would decode the other plugin's output: an operator must drop it.
            return unusable(format!(
                "created with plugin {} but replication.plugin is {}",
                row.get("plugin").unwrap_or("?"),
                config.plugin.as_str()
            ));
        }
        if row.get("same_db") != Some("true") {
            return unusable("belongs to another database".into());
        }
        return Ok(false);
    }
    // Slot names are validated to [a-z0-9_], so they need no quoting in the replication grammar.
    let create = format!(
        "CREATE_REPLICATION_SLOT {slot} LOGICAL {} NOEXPORT_SNAPSHOT",
        config.plugin.as_str()
    );
    match conn.simple_query(&create).await {
        Ok(_) => {
            info!(slot = %slot, plugin = config.plugin.as_str(), "created replication slot");
            Ok(true)
        }
        Err(e) if e.sql_state() == Some(DUPLICATE_OBJECT) => Ok(false),
        Err(e) if config.plugin == Plugin::Wal2json && e.sql_state() == Some(UNDEFINED_FILE) => {
            Err(ReplicationError::Slot {
                slot: slot.clone(),
                reason: format!(
                    "output plugin {plugin} is not installed on the server \
                 (Debian/Ubuntu: apt-get install postgresql-{major}-{plugin})",
                    plugin = config.plugin.as_str(),
                    major = conn.server_version_num() / 10_000,
                ),
            })
        }
        Err(e) => Err(e),
    }
}
