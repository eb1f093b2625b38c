//! Which tables a client may subscribe to: resolved against the shared schema cache
//! ([`SchemaCache`], the one REST uses, refreshed on DDL), so identifiers never come from the
//! client unchecked and no catalog query runs on a subscribe — except to publish a table
//! the first time it is subscribed to, and to wait for the cache after a table was just
//! created.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use fluxbase_migrations::schema::{RelationKind, Schema};
use fluxbase_migrations::{Code, SchemaCache};

use super::error::RealtimeError;

/// Schemas whose tables are never offered to clients, even when published (the engine
/// itself reads `auth.sessions`).
pub const INTERNAL_SCHEMAS: &[&str] = &[
    "auth",
    "dashboard",
    "storage",
    "jobs",
    "realtime",
    "_fluxbase",
    "pg_catalog",
    "information_schema",
];

/// How long a subscribe waits for the schema cache to see a table that exists in the
/// catalog but not yet in the cache (created a moment ago).
const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

/// A subscribable table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// OID.
    pub relid: u32,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Column names.
    pub columns: Vec<String>,
}

impl TableInfo {
    /// Whether the table has this column.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }
}

/// The tables found published, and the cache's DDL epoch read before they were checked:
/// the set holds until a DDL notice or a reload moves the epoch (an operator may have
/// dropped a table from the publication).
#[derive(Debug, Default)]
struct Published {
    epoch: u64,
    relids: HashSet<u32>,
}

/// The subscribable tables.
pub struct Tables {
    cache: SchemaCache,
    publication: String,
    /// Schemas whose tables may be published on demand (`replication.schemas`).
    schemas: Vec<String>,
    /// A std lock, never held across `.await`.
    published: RwLock<Published>,
    /// Held while a table the cache or the publication lacks is looked up: a connect
    /// storm's first subscribers of a table wait for one lookup (one probe, one reload,
    /// one publication check) instead of each running its own on the pool.
    resolving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("publication", &self.publication)
            .finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> RealtimeError {
    tracing::warn!(error = %err, "realtime table lookup failed");
    RealtimeError::unavailable()
}

fn unknown(schema: &str, table: &str) -> RealtimeError {
    RealtimeError::new(
        Code::UnknownTable,
        format!("{schema}.{table} does not exist or is not published for realtime"),
    )
}

impl Tables {
    /// Tables of `cache` for `publication`.
    pub fn new(cache: SchemaCache, publication: impl Into<String>, schemas: Vec<String>) -> Tables {
        Tables {
            cache,
            publication: publication.into(),
            schemas,
            published: RwLock::default(),
            resolving: tokio::sync::Mutex::new(()),
        }
    }

    /// The schema cache.
    pub fn cache(&self) -> &SchemaCache {
        &self.cache
    }

    /// Resolves a subscription target: an existing, keyed table of a client schema, in the
    /// publication (added to it when its schema is one of `replication.schemas`).
    pub async fn resolve(
        &self,
        pool: &Pool,
        schema: &str,
        table: &str,
    ) -> Result<Arc<TableInfo>, RealtimeError> {
        if schema.contains('\0') || table.contains('\0') {
            // PostgreSQL cannot even compare such a name: no table has it.
            return Err(unknown(schema, table));
        }
        if INTERNAL_SCHEMAS.contains(&schema) {
            return Err(RealtimeError::new(
                Code::UnknownTable,
                format!("{schema}.{table} is not available for realtime"),
            ));
        }
        let snapshot = match self.cache.snapshot() {
            s if s.relation(schema, table).is_some() => s,
            _ => {
                let _resolving = self.resolving.lock().await;
                // Loaded while this waited, by the subscriber that held the lock.
                match self.cache.snapshot() {
                    s if s.relation(schema, table).is_some() => s,
                    _ => self.catch_up(pool, schema, table).await?,
                }
            }
        };
        let Some(relation) = snapshot.relation(schema, table) else {
            return Err(unknown(schema, table));
        };
        if !matches!(
            relation.kind,
            RelationKind::Table | RelationKind::PartitionedTable
        ) {
            return Err(unknown(schema, table));
        }
        if !relation.has_replica_identity {
            return Err(RealtimeError::new(
                Code::NoPrimaryKey,
                format!(
                    "{schema}.{table} has no primary key (or replica identity): add one to use realtime on it"
                ),
            ));
        }
        let relid = relation.oid;
        let info = Arc::new(TableInfo {
            relid,
            schema: schema.to_string(),
            table: table.to_string(),
            columns: relation.columns.iter().map(|c| c.name.clone()).collect(),
        });
        if self.is_published(relid) {
            return Ok(info);
        }
        let _resolving = self.resolving.lock().await;
        if self.is_published(relid) {
            return Ok(info);
        }
        // Read before the check: DDL committed after it moves the epoch past this one.
        let epoch = self.cache.ddl_epoch();
        if !self.ensure_published(pool, schema, table, relid).await? {
            return Err(unknown(schema, table));
        }
        let mut published = self.published.write().unwrap_or_else(|e| e.into_inner());
        // Checks run one at a time (under `resolving`), so a stored epoch is never newer.
        if published.epoch < epoch {
            *published = Published {
                epoch,
                relids: HashSet::new(),
            };
        }
        published.relids.insert(relid);
        Ok(info)
    }

    /// Whether `relid` was found published with no DDL notice nor reload since. (The
    /// engine's own `ALTER PUBLICATION … ADD TABLE` moves the epoch too: the next
    /// subscriber re-checks once, a single cheap query, and the cache does not reload.)
    fn is_published(&self, relid: u32) -> bool {
        let published = self.published.read().unwrap_or_else(|e| e.into_inner());
        published.epoch >= self.cache.ddl_epoch() && published.relids.contains(&relid)
    }

    /// The cache does not have the table: if the catalog does (created a moment ago), waits
    /// for the cache to load it; a table that does not exist costs one probe, no reload.
    async fn catch_up(
        &self,
        pool: &Pool,
        schema: &str,
        table: &str,
    ) -> Result<Arc<Schema>, RealtimeError> {
        let client = pool.get().await.map_err(unavailable)?;
        let exists = SchemaCache::catalog_has(&client, schema, table)
            .await
            .map_err(unavailable)?;
        drop(client);
        if !exists {
            return Err(unknown(schema, table));
        }
        self.cache
            .load_relation(schema, table, CACHE_CATCH_UP)
            .await
            .ok_or_else(|| unavailable("the schema cache did not load a new table in time"))
    }

    /// Whether the table is in the publication, adding it when its schema is published on
    /// demand. Identifiers are quoted by PostgreSQL (`format('%I')`), never spliced.
    async fn ensure_published(
        &self,
        pool: &Pool,
        schema: &str,
        table: &str,
        relid: u32,
    ) -> Result<bool, RealtimeError> {
        let client = pool.get().await.map_err(unavailable)?;
        let published = client
            .query_opt(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                &[&self.publication, &schema, &table],
            )
            .await
            .map_err(unavailable)?
            .is_some();
        if published {
            return Ok(true);
        }
        if !self.schemas.iter().any(|s| s == schema) {
            return Ok(false);
        }
        let statement = client
            .query_opt(
                "SELECT format('ALTER PUBLICATION %I ADD TABLE %I.%I', $1::text, n.nspname, c.relname) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = $2 AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p' \
                   AND NOT c.relispartition",
                &[&self.publication, &relid],
            )
            .await
            .map_err(unavailable)?;
        let Some(statement) = statement else {
            return Ok(false);
        };
        let statement: String = statement.get(0);
        match client.batch_execute(&statement).await {
            Ok(()) => {
                tracing::info!(schema, table, "published table for realtime");
                Ok(true)
            }
            // Added concurrently by the replication refresh: fine.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {
                Ok(true)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
