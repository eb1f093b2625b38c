//! fluxbase-migrations: the database's home, and the foundation every other crate of the
//! workspace stands on.
//!
//! - [`runner`] and `sql/`: the versioned SQL of every Fluxbase schema and the runner that
//!   applies it (checksummed, one transaction each, under an advisory lock);
//! - [`cluster`]: the embedded PostgreSQL cluster (no `DATABASE_URL`, and the tests);
//! - [`pool`]: the shared pool with every `database.*` setting, instrumented;
//! - [`tls`]: TLS for every connection (pool, LISTEN, replication);
//! - [`error`]: database errors with a kind — the one `SqlState` → kind map;
//! - [`code`]: the one error vocabulary ([`Code`], [`ErrorCode`]) every library error
//!   implements, kept here because every crate depends on this one;
//! - [`schema`]: the schema cache (relations, columns, keys, relationships, functions,
//!   policies), refreshed on DDL, shared by realtime and REST;
//! - [`listen`]: LISTEN on a dedicated connection, reconnecting;
//! - [`caller`]: acting as a request's role and claims inside a transaction;
//! - [`secret`]: secrets in `0600` files;
//! - `test_utils` (feature `test-utils`): a fresh database per test.

pub mod caller;
pub mod cluster;
pub mod code;
pub mod error;
mod lane;
pub mod listen;
pub mod pool;
pub mod runner;
pub mod schema;
pub mod secret;
#[cfg(feature = "test-utils")]
pub mod test_utils;
pub mod tls;

pub use cluster::{ClusterError, ClusterOptions, EmbeddedCluster, PgBinaries};
pub use code::{Code, ErrorCode};
pub use error::{DbError, DbErrorKind};
pub use listen::{ListenEvent, ListenOptions, Listener, Notification};
pub use pool::{Db, PoolSettings, PoolStats};
pub use runner::{MIGRATIONS, MigrateError, Migration, MigrationReport, run};
pub use schema::{CacheOptions, RefreshMode, Schema, SchemaCache, SchemaError};
