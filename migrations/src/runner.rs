//! The migration runner: versioned SQL files embedded in the binary, checksummed, applied
//! one transaction each under an advisory lock so that two servers starting at once apply
//! each migration exactly once.

use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// One versioned SQL migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version, the file's numeric prefix.
    pub version: i64,
    /// Short name, the rest of the file name.
    pub name: &'static str,
    /// The SQL, run as one transaction.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL text, hex-encoded: an applied migration must never change.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Every migration, in order. A new file is added here and nowhere else.
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../sql/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "realtime",
        sql: include_str!("../sql/0002_realtime.sql"),
    },
    Migration {
        version: 3,
        name: "auth_realtime_core",
        sql: include_str!("../sql/0003_auth_realtime_core.sql"),
    },
    Migration {
        version: 4,
        name: "app_auth",
        sql: include_str!("../sql/0004_app_auth.sql"),
    },
    Migration {
        version: 5,
        name: "dashboard",
        sql: include_str!("../sql/0005_dashboard.sql"),
    },
    Migration {
        version: 6,
        name: "service_role_privileges",
        sql: include_str!("../sql/0006_service_role_privileges.sql"),
    },
    Migration {
        version: 7,
        name: "schema_cache_ddl",
        sql: include_str!("../sql/0007_schema_cache_ddl.sql"),
    },
    Migration {
        version: 8,
        name: "realtime_image_check",
        sql: include_str!("../sql/0008_realtime_image_check.sql"),
    },
    Migration {
        version: 9,
        name: "one_session_semantics",
        sql: include_str!("../sql/0009_one_session_semantics.sql"),
    },
    Migration {
        version: 10,
        name: "storage",
        sql: include_str!("../sql/0010_storage.sql"),
    },
    Migration {
        version: 11,
        name: "jobs",
        sql: include_str!("../sql/0011_jobs.sql"),
    },
    Migration {
        version: 12,
        name: "one_time_tokens",
        sql: include_str!("../sql/0012_one_time_tokens.sql"),
    },
];

/// Key of the session advisory lock held while migrating ("fluxmigr" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x666c_7578_6d69_6772;

/// Errors of a migration run.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// An applied migration's SQL differs from the one in this binary.
    #[error(
        "migration {version} ({name}) was applied with checksum {applied} but this binary has {expected}: \
         applied migrations must not be edited; add a new migration instead"
    )]
    ChecksumMismatch {
        version: i64,
        name: String,
        applied: String,
        expected: String,
    },
    /// The database has migrations this binary does not know: it is older than the schema.
    #[error(
        "the database has migration {version} which this binary does not know: upgrade fluxbase"
    )]
    UnknownVersion { version: i64 },
    /// A statement failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        version: i64,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Bookkeeping (lock, history table) failed.
    #[error("migration bookkeeping failed: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, in order.
    pub applied: Vec<i64>,
    /// Versions that were already applied.
    pub already_applied: Vec<i64>,
}

/// Applies every pending migration. `client` should be a dedicated connection: the advisory
/// lock is session-level, and is released when this returns (or when the connection closes).
pub async fn run(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    run_list(client, MIGRATIONS).await
}

/// [`run`] over an explicit list (tests use it to exercise failures and checksums).
pub async fn run_list(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await?;
    let result = apply_pending(client, migrations).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
        .await;
    let report = result?;
    unlock?;
    Ok(report)
}

async fn apply_pending(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS _fluxbase;
             CREATE TABLE IF NOT EXISTS _fluxbase.schema_migrations (
                 version bigint PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now(),
                 execution_ms bigint NOT NULL
             );",
        )
        .await?;
    let rows = client
        .query(
            "SELECT version, name, checksum FROM _fluxbase.schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut report = MigrationReport::default();
    for row in &rows {
        let version: i64 = row.get(0);
        let name: String = row.get(1);
        let applied: String = row.get(2);
        let Some(known) = migrations.iter().find(|m| m.version == version) else {
            return Err(MigrateError::UnknownVersion { version });
        };
        let expected = known.checksum();
        if applied != expected {
            return Err(MigrateError::ChecksumMismatch {
                version,
                name,
                applied,
                expected,
            });
        }
        report.already_applied.push(version);
    }
    for migration in migrations {
        if report.already_applied.contains(&migration.version) {
            continue;
        }
        let started = Instant::now();
        let failed = |source| MigrateError::Failed {
            version: migration.version,
            name: migration.name,
            source,
        };
        let tx = client.transaction().await.map_err(failed)?;
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        let elapsed = started.elapsed().as_millis() as i64;
        tx.execute(
            "INSERT INTO _fluxbase.schema_migrations (version, name, checksum, execution_ms)
             VALUES ($1, $2, $3, $4)",
            &[
                &migration.version,
                &migration.name,
                &migration.checksum(),
                &elapsed,
            ],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            duration_ms = elapsed,
            "migration applied"
        );
        report.applied.push(migration.version);
    }
    Ok(report)
}
