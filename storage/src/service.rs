//! [`Storage`]: the service the HTTP routes call. It owns the pool, the backend and the
//! signing key; its methods (in `bucket`, `upload`, `download`, `listing`, `transfer`,
//! `signing`, `tus`, `sweep`) each take the caller's [`AuthContext`] when PostgreSQL must
//! decide, and run every metadata read or write for that caller in a transaction that
//! first switches to the caller's role and claims ([`ACT_AS_SQL`]), so the policies on
//! `storage.objects` and `storage.buckets` decide.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Object, Transaction};
use fluxbase_auth::AuthContext;
use fluxbase_migrations::caller::ACT_AS_SQL;
use fluxbase_migrations::{Db, DbError};
use object_store::path::Path;

use crate::backend::{Backend, LocalBackend, S3Backend, S3Settings};
use crate::error::StorageError;
use crate::metrics;

/// Default expiry of an abandoned resumable upload (Supabase keeps them a day too).
pub const DEFAULT_TUS_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Default age below which bytes without a row are left alone by the sweep: an upload
/// writes its bytes a moment before it commits its row.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// Which backend (`storage.provider` and its keys).
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// `storage.provider: local`, files under `storage.local_path`.
    Local {
        /// `storage.local_path`.
        path: PathBuf,
    },
    /// `storage.provider: s3`, with `storage.s3.*`.
    S3(S3Settings),
}

impl BackendConfig {
    /// Opens the backend.
    pub fn open(&self) -> Result<Arc<dyn Backend>, StorageError> {
        Ok(match self {
            BackendConfig::Local { path } => Arc::new(LocalBackend::new(path)?),
            BackendConfig::S3(settings) => Arc::new(S3Backend::new(settings)?),
        })
    }
}

/// The service's settings.
#[derive(Clone)]
pub struct StorageSettings {
    /// The largest object the server accepts (`server.body_limit`); a bucket's
    /// `file_size_limit` can only lower it.
    pub max_object_size: u64,
    /// The server's secret (`auth.jwt_secret`); signed-URL keys are derived from it, so
    /// rotating it invalidates every signed URL.
    pub signing_secret: Vec<u8>,
    /// How long an abandoned resumable upload is kept.
    pub tus_expiry: Duration,
    /// See [`DEFAULT_ORPHAN_GRACE`].
    pub orphan_grace: Duration,
}

impl std::fmt::Debug for StorageSettings {
    /// Without the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("max_object_size", &self.max_object_size)
            .field("tus_expiry", &self.tus_expiry)
            .field("orphan_grace", &self.orphan_grace)
            .finish_non_exhaustive()
    }
}

impl StorageSettings {
    /// Settings with the defaults for everything but the limit and the secret.
    pub fn new(max_object_size: u64, signing_secret: impl Into<Vec<u8>>) -> StorageSettings {
        StorageSettings {
            max_object_size,
            signing_secret: signing_secret.into(),
            tus_expiry: DEFAULT_TUS_EXPIRY,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
        }
    }
}

/// The storage service; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pub(crate) inner: Arc<Inner>,
}

/// What every clone shares.
pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) settings: StorageSettings,
    pub(crate) signing_key: ring::hmac::Key,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.inner.backend)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// The service over `db` and `backend`.
    pub fn new(db: Db, backend: Arc<dyn Backend>, settings: StorageSettings) -> Storage {
        let signing_key = crate::signing::derive_key(&settings.signing_secret);
        metrics::describe();
        Storage {
            inner: Arc::new(Inner {
                db,
                backend,
                settings,
                signing_key,
            }),
        }
    }

    /// The backend (for the health endpoint and operators' tools).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The settings in force.
    pub fn settings(&self) -> &StorageSettings {
        &self.inner.settings
    }

    /// Reachability of the backend (and free disk for a local one), for
    /// `/api/v1/monitoring/health`.
    pub async fn health(&self) -> crate::backend::BackendHealth {
        self.inner.backend.probe().await
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self) -> Result<Object, StorageError> {
        Ok(self.inner.db.conn().await?)
    }

    /// Deletes bytes that no row points to any more, logging (never failing) on error:
    /// what is left is an orphan the sweep removes.
    pub(crate) async fn discard_bytes(&self, key: &Path) {
        if let Err(err) = self.inner.backend.delete(key).await {
            tracing::warn!(key = %key, error = %err, "deleting unreferenced bytes failed; the sweep will retry");
        }
    }
}

/// The statement that gives the caller's identity up again inside a transaction (what a
/// caller wrote is read back as the server).
pub(crate) const AS_SERVER_SQL: &str = "SELECT pg_catalog.set_config('role', 'none', true), \
     pg_catalog.set_config('request.jwt.claims', '', true)";

/// `BEGIN` and `ROLLBACK` as prepared statements: a read-only transaction as the caller then
/// goes out as one pipeline (`BEGIN`, act as, the reads, `ROLLBACK`) — one round trip
/// instead of three, and ended by its own `ROLLBACK` even if the caller stops waiting.
pub(crate) const BEGIN_SQL: &str = "BEGIN";

/// See [`BEGIN_SQL`].
pub(crate) const ROLLBACK_SQL: &str = "ROLLBACK";

/// A transaction begun inside a pipeline: its `BEGIN` ([`BEGIN_SQL`]) goes out with the
/// statements after it, with no round trip of its own. Finished by [`OpenTx::commit`] or
/// [`OpenTx::rollback`]; dropped unfinished (the request went away mid-way), its connection
/// is closed rather than returned to the pool inside a transaction, and the server rolls
/// the transaction back.
pub(crate) struct OpenTx {
    conn: Option<Object>,
}

impl OpenTx {
    /// Takes `conn` for a transaction the caller begins (with [`BEGIN_SQL`] first in its
    /// pipeline).
    pub(crate) fn new(conn: Object) -> OpenTx {
        OpenTx { conn: Some(conn) }
    }

    /// The connection, to run the transaction's statements on.
    pub(crate) fn client(&self) -> &deadpool_postgres::Client {
        self.conn
            .as_ref()
            .expect("an OpenTx holds its connection until finished")
    }

    /// Commits; the connection goes back to the pool (a failed COMMIT ends the transaction
    /// too).
    pub(crate) async fn commit(mut self) -> Result<(), StorageError> {
        let committed = self.client().batch_execute("COMMIT").await;
        self.conn.take();
        committed.map_err(db)
    }

    /// Rolls back; the connection goes back to the pool only if the ROLLBACK went through.
    pub(crate) async fn rollback(mut self) {
        if self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.conn.take();
        }
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// Starts a transaction acting as `ctx` (role and claims, transaction-local).
pub(crate) async fn begin_as<'a>(
    conn: &'a mut Object,
    ctx: &AuthContext,
) -> Result<Transaction<'a>, StorageError> {
    let tx = conn.transaction().await.map_err(db)?;
    switch_to(&tx, ctx).await?;
    Ok(tx)
}

/// Switches an open transaction (which may already have run server statements) to `ctx`:
/// [`ACT_AS_SQL`], prepared once per connection.
pub(crate) async fn switch_to<C: GenericClient>(
    tx: &C,
    ctx: &AuthContext,
) -> Result<(), StorageError> {
    let statement = tx.prepare_cached(ACT_AS_SQL).await.map_err(db)?;
    tx.query_one(&statement, &[&ctx.role().as_str(), &ctx.claims_json()])
        .await
        .map_err(db)?;
    Ok(())
}

/// Gives the caller's identity up inside a transaction ([`AS_SERVER_SQL`]).
pub(crate) async fn switch_to_server<C: GenericClient>(tx: &C) -> Result<(), StorageError> {
    let statement = tx.prepare_cached(AS_SERVER_SQL).await.map_err(db)?;
    tx.execute(&statement, &[]).await.map_err(db)?;
    Ok(())
}

/// Prepares `statements` (once per pooled connection, then cached) in order, so that a
/// pipeline of them sends each at once, in the order written: a statement prepared on the
/// fly would wait for its own round trip and could fall behind the next one.
pub(crate) async fn prepare_all<C: GenericClient>(
    tx: &C,
    statements: &[&str],
) -> Result<(), StorageError> {
    for sql in statements {
        tx.prepare_cached(sql).await.map_err(db)?;
    }
    Ok(())
}

/// A database error as a storage error (policy refusals become `Forbidden`).
pub(crate) fn db(err: tokio_postgres::Error) -> StorageError {
    StorageError::from_caller_db(DbError::from(err))
}
