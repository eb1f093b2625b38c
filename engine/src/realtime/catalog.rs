//! Which tables a client may subscribe to, and their columns: read from the publication
//! and the system catalog (identifiers never come from the client unchecked).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio_postgres::Client;

/// Schemas whose tables are never offered to clients, even when published (the engine
/// itself reads `auth.sessions`).
pub const INTERNAL_SCHEMAS: &[&str] = &[
    "auth", "dashboard", "storage", "jobs", "realtime", "_fluxbase", "pg_catalog",
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
    /// The catalog could not be read.
    #[error("catalog unavailable: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Cache of published tables; cleared on DDL.
#[derive(Debug, Default)]
pub struct Catalog {
    publication: String,
    /// A std lock, never held across `.await`.
    tables: RwLock<HashMap<(String, String), Arc<TableInfo>>>,
}

impl Catalog {
    /// A catalog for `publication`.
    pub fn new(publication: impl Into<String>) -> Self {
        Catalog {
            publication: publication.into(),
            tables: RwLock::default(),
        }
    }

    /// Forgets every table (after DDL).
    pub fn invalidate(&self) {
        self.tables.write().expect("catalog lock").clear();
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
        let rows = client
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
            .await?;
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
