//! Connections for RLS decisions, taken only when a decision needs the database.
//!
//! Fan-out must never wait for the server's main pool (REST traffic can drain it): compiled
//! policies, the cache and bypasses decide without a connection, and the rest — the SQL
//! fallback, TOAST fetches, loading policies and role facts, the role watcher — takes one
//! from the engine's own small pool (`realtime.rls_fallback_connections`), at the moment it
//! is needed and at most once per change.

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Client;

use super::RlsError;

/// Default `realtime.rls_fallback_connections`.
pub const DEFAULT_FALLBACK_CONNECTIONS: usize = 4;

/// Builds the engine's own pool of `size` connections (opened lazily, TLS as configured).
pub fn fallback_pool(pg: tokio_postgres::Config, size: usize) -> Pool {
    let tls = fluxbase_migrations::tls::MakeRustlsConnect::new();
    let manager = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let timeout = Some(std::time::Duration::from_secs(5));
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .build()
        .expect("a runtime and a size are set")
}

/// A database connection that is only taken when first asked for.
pub enum Conn<'a> {
    /// A client the caller already holds (tests, reloads).
    Client(&'a Client),
    /// A pool, and the connection once taken from it (released on drop).
    Pool {
        /// The pool.
        pool: &'a Pool,
        /// The connection, once taken (boxed: the enum stays small when none is).
        held: Option<Box<Object>>,
    },
}

impl<'a> Conn<'a> {
    /// A lazy connection from `pool`.
    pub fn pool(pool: &'a Pool) -> Conn<'a> {
        Conn::Pool { pool, held: None }
    }

    /// The client, taking a pooled connection the first time.
    pub async fn client(&mut self) -> Result<&Client, RlsError> {
        match self {
            Conn::Client(client) => Ok(client),
            Conn::Pool { pool, held } => {
                if held.is_none() {
                    *held = Some(Box::new(pool.get().await.map_err(RlsError::Pool)?));
                }
                Ok(held.as_ref().expect("just taken"))
            }
        }
    }

    /// Whether a connection was taken (tests: proof a decision needed none).
    pub fn used(&self) -> bool {
        match self {
            Conn::Client(_) => true,
            Conn::Pool { held, .. } => held.is_some(),
        }
    }
}

impl<'a> From<&'a Client> for Conn<'a> {
    fn from(client: &'a Client) -> Self {
        Conn::Client(client)
    }
}
