//! fluxbase-migrations: the versioned SQL of every Fluxbase schema, the runner that applies
//! it, and the embedded PostgreSQL cluster used when no `DATABASE_URL` is given and by tests.

pub mod embedded;
pub mod listen;
pub mod runner;
pub mod schema;
#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use embedded::{ClusterOptions, EmbeddedCluster, EmbeddedError, PgBinaries};
pub use listen::{ListenEvent, ListenOptions, Listener, Notification};
pub use runner::{MIGRATIONS, MigrateError, Migration, MigrationReport, run};
pub use schema::{CacheOptions, RefreshMode, Schema, SchemaCache, SchemaError};
