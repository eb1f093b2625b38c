//! The publication: created when absent, extended (never shrunk) when present, so tables
//! added later to a published schema are picked up.
//!
//! Tables are always listed one by one (never `FOR TABLES IN SCHEMA` / `FOR ALL TABLES`),
//! and only tables with a usable replica identity (a primary key, or REPLICA IDENTITY
//! FULL/USING INDEX): PostgreSQL refuses UPDATE and DELETE on a published table without
//! one, and publishing a whole schema would break writes to every key-less table in it.
//! [`refresh`] runs on every (re)connect and every lag sample, which also picks up the extra
//! tables (`auth.sessions`) when they are created after the stream started; the engine
//! publishes a table at once when a client subscribes to it.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tracing::info;

use crate::config::ReplicationConfig;
use crate::connection::Connection;
use crate::error::Result;

/// SQLSTATE duplicate_object.
const DUPLICATE_OBJECT: &str = "42710";

/// SQL condition on `c` (pg_class) true when UPDATE/DELETE still work once published.
pub const HAS_REPLICA_IDENTITY_SQL: &str = "(c.relreplident IN ('f','i') OR (c.relreplident = 'd' \
     AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))";

/// Creates the publication when absent and adds missing tables.
pub(crate) async fn refresh(conn: &mut Connection, config: &ReplicationConfig) -> Result<()> {
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
    let schema_list = schemas
        .iter()
        .map(|s| escape_literal(s))
        .collect::<Vec<_>>();
    let in_schemas = if schema_list.is_empty() {
        "false".to_owned()
    } else {
        format!("n.nspname IN ({})", schema_list.join(","))
    };
    let filter = format!(
        "({in_schemas} OR {}) AND {HAS_REPLICA_IDENTITY_SQL}",
        extra_tables_sql(config)
    );
    add_tables(conn, config, &name, &filter).await
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

/// Adds the permanent, non-partition tables matching `filter` that are not yet published
/// (`pg_publication_rel`: `pg_publication_tables` lists a partitioned table's leaves instead
/// of the table itself).
async fn add_tables(
    conn: &mut Connection,
    config: &ReplicationConfig,
    name: &str,
    filter: &str,
) -> Result<()> {
    let publication = escape_literal(&config.publication_name);
    let rows = conn
        .simple_query(&format!(
            "SELECT n.nspname::text AS schema, c.relname::text AS table FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND c.relpersistence = 'p' AND NOT c.relispartition \
               AND {filter} \
               AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p \
                               ON p.oid = pr.prpubid WHERE p.pubname = {publication} \
                               AND pr.prrelid = c.oid)"
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
    async fn publishes_keyed_tables_extra_tables_and_later_tables() {
        let db = TestDb::new().await;
        let mut conn = connect(&db.config(), false).await.unwrap();
        conn.simple_query(
            "CREATE SCHEMA IF NOT EXISTS auth; \
             CREATE TABLE IF NOT EXISTS auth.sessions (id uuid PRIMARY KEY); \
             CREATE TABLE auth.other (id int PRIMARY KEY); \
             CREATE TABLE public.a (id int PRIMARY KEY); \
             CREATE TABLE public.keyless (id int); \
             CREATE TABLE public.full_identity (id int); \
             ALTER TABLE public.full_identity REPLICA IDENTITY FULL; \
             CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY); \
             CREATE TABLE public.parted (id int PRIMARY KEY) PARTITION BY RANGE (id); \
             CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10)",
        )
        .await
        .unwrap();

        let mut config = ReplicationConfig::new(db.config());
        config.publication_name = "pub_test".to_owned();
        config.schemas = vec!["public".into(), "missing_schema".into()];
        config.extra_tables = vec!["auth.sessions".into(), "public.a".into()];
        refresh(&mut conn, &config).await.unwrap();
        // Idempotent: a second refresh (reconnect) changes nothing and does not fail.
        refresh(&mut conn, &config).await.unwrap();
        let tables = published(&mut conn, "pub_test").await;
        for expected in [
            "public.a",
            "auth.sessions",
            "public.full_identity",
            "public.parted_1",
        ] {
            assert!(
                tables.contains(&expected.to_owned()),
                "{expected}: {tables:?}"
            );
        }
        for absent in ["auth.other", "public.scratch", "public.keyless"] {
            assert!(!tables.contains(&absent.to_owned()), "{absent}: {tables:?}");
        }
        // A key-less table stays writable: it is not published.
        conn.simple_query(
            "INSERT INTO public.keyless VALUES (1); UPDATE public.keyless SET id = 2; DELETE FROM public.keyless",
        )
        .await
        .unwrap();

        // A table created later is published by the next refresh.
        conn.simple_query("CREATE TABLE public.later (id int PRIMARY KEY)")
            .await
            .unwrap();
        assert!(
            !published(&mut conn, "pub_test")
                .await
                .contains(&"public.later".to_owned())
        );
        refresh(&mut conn, &config).await.unwrap();
        let tables = published(&mut conn, "pub_test").await;
        assert!(tables.contains(&"public.later".to_owned()), "{tables:?}");
    }
}
