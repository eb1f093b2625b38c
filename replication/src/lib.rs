//! fluxbase-replication: the PostgreSQL logical replication client (pgoutput or wal2json),
//! slot and publication management. Emits ordered, typed transactions.
//!
//! - **Client**: our own frontend on `postgres-protocol` codecs over TCP, TLS (rustls,
//!   `sslmode=prefer|require`, no certificate verification as in libpq's `require`) or a
//!   unix socket; cleartext, MD5 and SCRAM-SHA-256 authentication; `replication=database`.
//! - **Publication and slot** (PostgreSQL ≥ 13): the publication lists the tables of the
//!   configured schemas that have a replica identity (publishing a key-less table would
//!   make PostgreSQL refuse its UPDATEs and DELETEs), re-listed on each refresh, plus extra
//!   tables such as `auth.sessions`; the permanent logical slot is created when absent and
//!   reused when present. A slot created with another plugin than `replication.plugin` is
//!   an error naming both (it is never reused).
//! - **Plugins**: pgoutput (built in) or wal2json format version 2 (Debian:
//!   `postgresql-<major>-wal2json`); both give the same [`Transaction`]s, see [`wal2json`]
//!   for how tables are selected and the few values wal2json cannot carry.
//! - **Delivery**: whole transactions in commit order on a bounded channel. The consumer
//!   calls [`ReplicationHandle::ack`] with `end_lsn`; only acknowledged positions are
//!   reported to the server as flushed. Within one process every transaction is delivered
//!   once, across reconnects; after a process restart the stream resumes from the slot, so
//!   transactions not acknowledged before are delivered again (at-least-once; deduplicate
//!   by `end_lsn`).
//! - **Values**: see [`pgoutput::value`]: `numeric` is a string (no precision loss),
//!   json/jsonb are JSON, arrays are arrays, unchanged TOAST values are left out of
//!   `record` and named in `unchanged_toast`.
//! - **Slot growth**: a slot nobody consumes keeps WAL forever. Status turns `degraded`
//!   above `max_lag_bytes`; operators should also set PostgreSQL's
//!   `max_slot_wal_keep_size`, after which the server invalidates the slot (the stream then
//!   fails with a server error until the slot is dropped and recreated).
//! - **Memory**: a transaction is held whole until its commit, then handed over; the bound
//!   is `channel_capacity` transactions (pgoutput protocol 2 would lift the per-transaction
//!   size, it is not implemented).
//! - **Not implemented**: pgoutput protocol 2 (streaming of in-progress
//!   transactions), binary tuple format.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fluxbase_replication::ReplicationError> {
//! use fluxbase_replication::{ReplicationConfig, start};
//! let config = ReplicationConfig::new("postgres://u:p@127.0.0.1/db".parse().unwrap());
//! let (handle, mut transactions) = start(config)?;
//! while let Some(tx) = transactions.recv().await {
//!     // … take the transaction, then:
//!     handle.ack(tx.end_lsn);
//! }
//! # Ok(()) }
//! ```

mod catalog;
mod config;
mod connection;
mod cursor;
mod error;
mod handle;
mod lsn;
pub mod metrics;
pub mod pgoutput;
mod protocol;
mod publication;
pub mod relation;
mod slot;
mod stream;
mod transaction;
pub mod wal2json;

pub use config::*;
pub use error::{DecodeError, JsonError, ReplicationError, Result, ServerError};
pub use handle::{ReplicationHandle, ReplicationStatus};
pub use lsn::{Lsn, ParseLsnError};
pub use publication::HAS_REPLICA_IDENTITY_SQL;
pub use stream::start;
pub use transaction::{Change, Column, LogicalMessage, Op, Timestamp, Transaction};
