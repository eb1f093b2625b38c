//! Which tables a client may subscribe to, and their columns: read from the publication
//! and the system catalog (identifiers never come from the client unchecked).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio_postgres::Client;

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

/// A subscribable table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// OID.
    pub relid: u32,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Column names and type names.
    pub columns: Vec<(String, String)>,
}

impl TableInfo {
    /// Whether the table has this column.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|(c, _)| c == name)
    }
}

/// Why a subscription target was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Internal schema.
    #[error("{0}.{1} is not available for realtime")]
    Internal(String, String),
    /// Not in the publication (or does not exist).
    #[error("{0}.{1} does not exist or is not published for realtime")]
    NotPublished(String, String),
    /// Exists, but UPDATE/DELETE would break if it were published.
    #[error("{0}.{1} has no primary key (or replica identity): add one to use realtime on it")]
    NoReplicaIdentity(String, String),
    /// The catalog could not be read.
    #[error("catalog unavailable: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Cache of published tables; cleared on DDL.
#[derive(Debug, Default)]
pub struct Catalog {
    publication: String,
    /// Schemas whose tables may be published on demand (`replication.schemas`).
    schemas: Vec<String>,
    /// A std lock, never held across `.await`.
    tables: RwLock<HashMap<(String, String), Arc<TableInfo>>>,
}

impl Catalog {
    /// A catalog for `publication`.
    pub fn new(publication: impl Into<String>, schemas: Vec<String>) -> Self {
        Catalog {
            publication: publication.into(),
            schemas,
            tables: RwLock::default(),
        }
    }

    /// Forgets every table (after DDL).
    pub fn invalidate(&self) {
        self.tables.write().expect("catalog lock").clear();
    }

    async fn published_columns(
        &self,
        client: &Client,
        schema: &str,
        table: &str,
    ) -> Result<Vec<tokio_postgres::Row>, CatalogError> {
        Ok(client
            .query(
                "SELECT c.oid, a.attname::text, t.typname::text
                 FROM pg_publication_tables p
                 JOIN pg_namespace n ON n.nspname = p.schemaname
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 JOIN pg_type t ON t.oid = a.atttypid
                 WHERE p.pubname = $1 AND p.schemaname = $2 AND p.tablename = $3
                 ORDER BY a.attnum",
                &[&self.publication, &schema, &table],
            )
            .await?)
    }

    /// Adds an existing, keyed, permanent table to the publication; false when there is no
    /// such table. Identifiers are quoted by PostgreSQL (`format('%I')`), never spliced.
    async fn publish(
        &self,
        client: &Client,
        schema: &str,
        table: &str,
    ) -> Result<bool, CatalogError> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT {identity} AS keyed,
                            format('ALTER PUBLICATION %I ADD TABLE %I.%I', $1::text, n.nspname, c.relname)
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $2 AND c.relname = $3
                       AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT c.relispartition",
                    identity = fluxbase_replication::HAS_REPLICA_IDENTITY_SQL
                ),
                &[&self.publication, &schema, &table],
            )
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        if !row.get::<_, bool>(0) {
            return Err(CatalogError::NoReplicaIdentity(schema.into(), table.into()));
        }
        let statement: String = row.get(1);
        match client.batch_execute(&statement).await {
            Ok(()) => {
                tracing::info!(schema, table, "published table for realtime");
                Ok(true)
            }
            // Added concurrently by the replication refresh: fine.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A table already known, without touching the database.
    pub fn cached(&self, schema: &str, table: &str) -> Option<Arc<TableInfo>> {
        if INTERNAL_SCHEMAS.contains(&schema) {
            return None;
        }
        self.tables
            .read()
            .expect("catalog lock")
            .get(&(schema.to_string(), table.to_string()))
            .cloned()
    }

    /// Looks a table up, reading the catalog on a miss.
    pub async fn lookup(
        &self,
        client: &Client,
        schema: &str,
        table: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        if INTERNAL_SCHEMAS.contains(&schema) {
            return Err(CatalogError::Internal(schema.into(), table.into()));
        }
        let key = (schema.to_string(), table.to_string());
        if let Some(info) = self.tables.read().expect("catalog lock").get(&key) {
            return Ok(info.clone());
        }
        let mut rows = self.published_columns(client, schema, table).await?;
        if rows.is_empty() && self.schemas.iter().any(|s| s == schema) {
            // A table created since the last publication refresh: publish it now, so the
            // changes after this subscription are streamed.
            if self.publish(client, schema, table).await? {
                rows = self.published_columns(client, schema, table).await?;
            }
        }
        let Some(first) = rows.first() else {
            return Err(CatalogError::NotPublished(schema.into(), table.into()));
        };
        let info = Arc::new(TableInfo {
            relid: first.get::<_, u32>(0),
            schema: schema.to_string(),
            table: table.to_string(),
            columns: rows.iter().map(|r| (r.get(1), r.get(2))).collect(),
        });
        self.tables
            .write()
            .expect("catalog lock")
            .insert(key, info.clone());
        Ok(info)
    }
}
