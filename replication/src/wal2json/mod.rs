//! wal2json (format version 2), the alternative output plugin: the same [`Transaction`]s as
//! pgoutput, through the same client.
//!
//! - **Options**: `format-version 2` (one JSON object per B/C/I/U/D/T/M action) with xids,
//!   commit timestamps, LSNs, type OIDs and primary keys; type names are not requested (the
//!   names clients see come from the OIDs, as with pgoutput).
//! - **Tables**: wal2json ignores publications. `add-tables` restricts the server to the
//!   configured schemas (`schema.*`) and extra tables, which keeps unrelated traffic off the
//!   wire; the decoder then drops changes of tables not in the publication (key-less tables,
//!   unlogged ones…), so both plugins stream the same tables. Publication membership and
//!   table shapes come from the catalog, cached and looked up again after
//!   `replication.lag_interval` (the publication refresh interval) or when a row shows a
//!   column the cache does not know. Tables outside the configured schemas and extra tables
//!   are never streamed with wal2json, even when added to the publication by hand.
//! - **Values**: wal2json writes the text output of each value (numbers unquoted, booleans
//!   as JSON booleans); it is converted through the same type-OID path as pgoutput's text, so
//!   the JSON is identical, `numeric` included (kept as the server's digits).
//! - **Differences from pgoutput**, all from what wal2json sends: NaN and ±Infinity in
//!   float and numeric columns arrive as `null`; non-UTF-8 logical message content is not
//!   recoverable; `old_record` of an update is the old key when the key changed (wal2json
//!   always sends it; it is dropped when equal to the new key, as pgoutput would not send it),
//!   so a key with a TOASTed value that did not change is not reported; a table whose every
//!   column is in the key under REPLICA IDENTITY FULL reports no old row for updates that
//!   change nothing; `begin_lsn` is the transaction's first record (pgoutput from PG 15:
//!   its first published change); `relation_id` and `columns` come from the catalog at
//!   decode time, not from the WAL: inserts are narrowed to the columns they carry, but an
//!   update or delete decoded after a later ALTER TABLE lists the new shape (a column added
//!   since shows as unchanged TOAST in an update), and a table dropped before its changes
//!   are decoded is described from the message, with `relation_id` 0.

mod decoder;
pub mod message;

pub use decoder::{Decoder, TableInfo};
pub use message::{RowChange, Wal2JsonColumn, Wal2JsonMessage};

use crate::config::ReplicationConfig;

/// Fixed `START_REPLICATION` options: one object per action with everything the decoder
/// needs; type names are left out (they come from the OIDs).
const OPTIONS: &str = "\"format-version\" '2', \"include-xids\" '1', \"include-timestamp\" '1', \
     \"include-lsn\" '1', \"include-type-oids\" '1', \"include-pk\" '1', \"include-types\" '0'";

/// `START_REPLICATION` options for wal2json.
pub(crate) fn start_options(config: &ReplicationConfig) -> String {
    let tables = add_tables(config);
    if tables.is_empty() {
        return OPTIONS.to_owned();
    }
    // Option values are SQL-style literals in the replication grammar: quotes are doubled.
    format!("{OPTIONS}, \"add-tables\" '{}'", tables.replace('\'', "''"))
}

/// The `add-tables` pattern list: `schema.*` per configured schema, then the extra tables.
fn add_tables(config: &ReplicationConfig) -> String {
    let schemas = config
        .schemas
        .iter()
        .map(|s| format!("{}.*", escape_name(s)));
    let tables = config
        .extra_tables
        .iter()
        .filter_map(|t| t.split_once('.'))
        .map(|(s, t)| format!("{}.{}", escape_name(s), escape_name(t)));
    schemas.chain(tables).collect::<Vec<_>>().join(",")
}

/// wal2json's pattern escaping: backslash before space, quote, comma, period and asterisk.
fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, ' ' | '\'' | ',' | '.' | '*' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
