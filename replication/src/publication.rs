//! The publication: created when absent, extended (never shrunk) when present, so tables
//! added later to a published schema are picked up.
//!
//! PostgreSQL 15+ publishes whole schemas (`FOR TABLES IN SCHEMA`), which includes future
//! tables by itself. Before 15, each table is listed and [`refresh`] adds new ones. The
//! stream calls it on every (re)connect and every lag sample, which also picks up the extra
//! tables (`auth.sessions`) when they are created after the stream started.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tracing::info;

use crate::config::ReplicationConfig;
use crate::connection::Connection;
use crate::error::Result;

/// SQLSTATE duplicate_object.
const DUPLICATE_OBJECT: &str = "42710";

/// First server version with `FOR TABLES IN SCHEMA`.
const SCHEMA_PUBLICATIONS_VERSION: u32 = 150_000;

/// Creates the publication when absent and adds missing schemas and tables.
pub(crate) async fn refresh(conn: &mut Connection, config: &ReplicationConfig) -> Result<()> {
    let version = conn.server_version_num();
    refresh_as(conn, config, version).await
}

/// [`refresh`] using the syntax of server `version` (tests run the pre-15 path on 15).
async fn refresh_as(conn: &mut Connection, config: &ReplicationConfig, version: u32) -> Result<()> {
    let name = escape_identifier(&config.publication_name);
    let existing = conn
        .simple_query(&format!(
            "SELECT puballtables::text AS all FROM pg_publication WHERE pubname = {}",
            escape_literal(&config.publication_name)
        ))
        .await?;
    if existing.first().and_then(|r| r.get("all")) == Some("true") {
        return Ok(());
    }
    if existing.is_empty() {
        ignore_duplicate(
            conn.simple_query(&format!("CREATE PUBLICATION {name}"))
                .await,
        )?;
        info!(publication = %config.publication_name, "created publication");
    }

    let schemas = existing_schemas(conn, config).await?;
    if version >= SCHEMA_PUBLICATIONS_VERSION {
        let published = conn
            .simple_query(&format!(
                "SELECT n.nspname::text AS schema FROM pg_publication_namespace pn \
                 JOIN pg_namespace n ON n.oid = pn.pnnspid JOIN pg_publication p ON p.oid = pn.pnpubid \
                 WHERE p.pubname = {}",
                escape_literal(&config.publication_name)
            ))
            .await?;
        for schema in &schemas {
            if !published
                .iter()
                .any(|r| r.get("schema") == Some(schema.as_str()))
            {
                let sql = format!(
                    "ALTER PUBLICATION {name} ADD TABLES IN SCHEMA {}",
                    escape_identifier(schema)
                );
                ignore_duplicate(conn.simple_query(&sql).await)?;
                info!(publication = %config.publication_name, schema = %schema, "published schema");
            }
        }
        add_tables(conn, config, &name, &extra_tables_sql(config), version).await
    } else {
        let schema_list = schemas
            .iter()
            .map(|s| escape_literal(s))
            .collect::<Vec<_>>();
        let in_schemas = if schema_list.is_empty() {
            "false".to_owned()
        } else {
            format!("n.nspname IN ({})", schema_list.join(","))
        };
        let filter = format!("({in_schemas} OR {})", extra_tables_sql(config));
        add_tables(conn, config, &name, &filter, version).await
    }
}

/// Configured schemas that exist (a missing schema would fail the whole statement).
async fn existing_schemas(
    conn: &mut Connection,
    config: &ReplicationConfig,
) -> Result<Vec<String>> {
    if config.schemas.is_empty() {
        return Ok(Vec::new());
    }
    let list = config
        .schemas
        .iter()
        .map(|s| escape_literal(s))
        .collect::<Vec<_>>()
        .join(",");
    let rows = conn
        .simple_query(&format!(
            "SELECT nspname::text AS name FROM pg_namespace WHERE nspname IN ({list})"
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get("name").map(str::to_owned))
        .collect())
}

/// SQL condition on `n.nspname`/`c.relname` matching the configured extra tables.
fn extra_tables_sql(config: &ReplicationConfig) -> String {
    let pairs: Vec<String> = config
        .extra_tables
        .iter()
        .filter_map(|t| t.split_once('.'))
        .map(|(s, t)| format!("({},{})", escape_literal(s), escape_literal(t)))
        .collect();
    if pairs.is_empty() {
        "false".to_owned()
    } else {
        format!("(n.nspname, c.relname) IN ({})", pairs.join(","))
    }
}

/// Adds the permanent, non-partition tables matching `filter` that are not yet published,
/// directly (`pg_publication_rel`) or, on 15+, through their schema. (`pg_publication_tables`
/// cannot tell: it lists a partitioned table's leaves instead of the table itself.)
async fn add_tables(
    conn: &mut Connection,
    config: &ReplicationConfig,
    name: &str,
    filter: &str,
    version: u32,
) -> Result<()> {
    let publication = escape_literal(&config.publication_name);
    let via_schema = if version >= SCHEMA_PUBLICATIONS_VERSION {
        format!(
            "AND NOT EXISTS (SELECT 1 FROM pg_publication_namespace pn JOIN pg_publication p \
             ON p.oid = pn.pnpubid WHERE p.pubname = {publication} AND pn.pnnspid = n.oid)"
        )
    } else {
        String::new()
    };
    let rows = conn
        .simple_query(&format!(
            "SELECT n.nspname::text AS schema, c.relname::text AS table FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND c.relpersistence = 'p' AND NOT c.relispartition \
               AND {filter} \
               AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p \
                               ON p.oid = pr.prpubid WHERE p.pubname = {publication} \
                               AND pr.prrelid = c.oid) {via_schema}"
        ))
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let tables: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            Some(format!(
                "{}.{}",
                escape_identifier(r.get("schema")?),
                escape_identifier(r.get("table")?)
            ))
        })
        .collect();
    ignore_duplicate(
        conn.simple_query(&format!(
            "ALTER PUBLICATION {name} ADD TABLE {}",
            tables.join(", ")
        ))
        .await,
    )?;
    info!(publication = %config.publication_name, tables = tables.len(), "published tables");
    Ok(())
}

/// Treats "already exists" as success: a concurrent refresh (the lag sampler, another
/// instance) got there first, which is the outcome we wanted.
fn ignore_duplicate<T>(result: Result<T>) -> Result<()> {
    match result {
        Err(e) if e.sql_state() == Some(DUPLICATE_OBJECT) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use fluxbase_migrations::test_utils::TestDb;

    use super::*;
    use crate::connection::connect;

    /// `schema.table` names in the publication, sorted.
    async fn published(conn: &mut Connection, publication: &str) -> Vec<String> {
        let rows = conn
            .simple_query(&format!(
                "SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables \
                 WHERE pubname = {} ORDER BY 1",
                escape_literal(publication)
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get("t").unwrap().to_owned())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_syntaxes_publish_schemas_extra_tables_and_later_tables() {
        let db = TestDb::new().await;
        let mut conn = connect(&db.config(), false).await.unwrap();
        conn.simple_query(
            "CREATE SCHEMA IF NOT EXISTS auth; \
             CREATE TABLE IF NOT EXISTS auth.sessions (id uuid PRIMARY KEY); \
             CREATE TABLE auth.other (id int PRIMARY KEY); \
             CREATE TABLE public.a (id int PRIMARY KEY); \
             CREATE UNLOGGED TABLE public.scratch (id int); \
             CREATE TABLE public.parted (id int) PARTITION BY RANGE (id); \
             CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10)",
        )
        .await
        .unwrap();

        for (version, publication) in [(140_000, "pub_pg14"), (150_000, "pub_pg15")] {
            let mut config = ReplicationConfig::new(db.config());
            config.publication_name = publication.to_owned();
            config.schemas = vec!["public".into(), "missing_schema".into()];
            // Listed explicitly and via its schema: must not be added twice on 15+.
            config.extra_tables = vec!["auth.sessions".into(), "public.a".into()];
            refresh_as(&mut conn, &config, version).await.unwrap();
            // Idempotent: a second refresh (reconnect) changes nothing and does not fail.
            refresh_as(&mut conn, &config, version).await.unwrap();
            let tables = published(&mut conn, publication).await;
            assert!(
                tables.contains(&"public.a".to_owned()),
                "{version}: {tables:?}"
            );
            assert!(
                tables.contains(&"auth.sessions".to_owned()),
                "{version}: {tables:?}"
            );
            assert!(
                !tables.contains(&"auth.other".to_owned()),
                "{version}: {tables:?}"
            );
            assert!(
                !tables.contains(&"public.scratch".to_owned()),
                "{version}: {tables:?}"
            );
            assert!(
                tables.contains(&"public.parted_1".to_owned()),
                "{version}: {tables:?}"
            );
        }

        // A table created later is published by the next refresh (pre-15) or at once (15+).
        conn.simple_query("CREATE TABLE public.later (id int PRIMARY KEY)")
            .await
            .unwrap();
        assert!(
            published(&mut conn, "pub_pg15")
                .await
                .contains(&"public.later".to_owned())
        );
        assert!(
            !published(&mut conn, "pub_pg14")
                .await
                .contains(&"public.later".to_owned())
        );
        let mut config = ReplicationConfig::new(db.config());
        config.publication_name = "pub_pg14".to_owned();
        refresh_as(&mut conn, &config, 140_000).await.unwrap();
        let tables = published(&mut conn, "pub_pg14").await;
        assert!(tables.contains(&"public.later".to_owned()), "{tables:?}");
    }
}
