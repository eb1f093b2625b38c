//! The permanent logical replication slot: created when absent, reused when present.

use postgres_protocol::escape::escape_literal;
use tracing::info;

use crate::config::ReplicationConfig;
use crate::connection::Connection;
use crate::error::{ReplicationError, Result};

/// SQLSTATE duplicate_object: another process created the slot between our check and create.
const DUPLICATE_OBJECT: &str = "42710";

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
            return unusable(format!("uses plugin {}", row.get("plugin").unwrap_or("?")));
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
        Err(e) => Err(e),
    }
}
