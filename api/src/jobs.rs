//! The server's job system: the engine's [`Jobs`] built from `jobs.*` with its signing
//! secret, the kinds the server adds, started with the server (after migrations), and the
//! housekeeping schedules it keeps.
//!
//! The signing secret of outbound requests (`X-Fluxbase-Signature`) is, in order:
//! `jobs.signing_secret` (`FLUXBASE_JOBS_SIGNING_SECRET`); in embedded mode, a secret
//! generated once and kept `0600` in `.fluxbase/jobs-signing-secret`; with a real database,
//! derived from the JWT secret ([`derive_signing_secret`]): every instance of a deployment
//! shares the JWT secret, so all sign alike without a second secret to distribute, and the
//! derivation is one way, so a receiver holding the key cannot mint tokens.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fluxbase_engine::jobs::{
    Caller, FailureReason, JobError, JobFailure, JobHandler, JobRun, Jobs, NewSchedule, RunResult,
    SchedulePatch, derive_signing_secret,
};
use fluxbase_engine::supervise::Supervision;
use fluxbase_migrations::Db;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::config::Config;

/// File of the generated signing secret, under the embedded mode's state directory.
pub const SIGNING_SECRET_FILE: &str = "jobs-signing-secret";

/// Length of a generated signing secret.
const GENERATED_SECRET_LEN: usize = 64;

/// The schedule (and job name) of the session purge.
pub const PURGE_SESSIONS: &str = "auth.purge_sessions";

/// When the session purge runs: hourly, at a minute few other cron jobs use.
pub const PURGE_SESSIONS_CRON: &str = "17 * * * *";

/// The schedule (and job name) of the storage sweep.
pub const STORAGE_SWEEP: &str = "storage.sweep";

/// When the storage sweep runs: hourly, away from the session purge.
pub const STORAGE_SWEEP_CRON: &str = "43 * * * *";

/// Who the server's own schedules are created by.
const HOUSEKEEPING: &str = "system:housekeeping";

/// Where the signing secret came from (logged, never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `jobs.signing_secret`.
    Config,
    /// Generated once and kept in this file (embedded mode).
    File(PathBuf),
    /// Derived from the JWT secret.
    JwtSecret,
}

/// The signing secret and where it came from (see the module doc). `state_dir` is the
/// embedded mode's `.fluxbase`.
pub fn signing_secret(
    config: &Config,
    embedded: bool,
    state_dir: &Path,
) -> anyhow::Result<(String, SecretSource)> {
    if let Some(secret) = &config.jobs.signing_secret {
        return Ok((secret.clone(), SecretSource::Config));
    }
    if embedded {
        let path = state_dir.join(SIGNING_SECRET_FILE);
        let secret = fluxbase_migrations::secret::read_or_create(
            &path,
            crate::config::MIN_SIGNING_SECRET_LEN,
            GENERATED_SECRET_LEN,
        )
        .with_context(|| format!("read or create {}", path.display()))?;
        return Ok((secret, SecretSource::File(path)));
    }
    let jwt = config
        .auth
        .jwt_secret
        .as_deref()
        .context("auth.jwt_secret is resolved before the jobs signing secret")?;
    Ok((
        derive_signing_secret(jwt.as_bytes()),
        SecretSource::JwtSecret,
    ))
}

/// The job system of a server on `db` (not started): the engine's kinds (`http`, `sql`,
/// `auth.purge_sessions`) and the server's ([`register_server_kinds`]).
pub fn build(
    config: &Config,
    pg: tokio_postgres::Config,
    db: Db,
    signing_secret: String,
) -> anyhow::Result<Jobs> {
    let jobs = Jobs::new(
        db,
        pg,
        config.jobs_settings(signing_secret),
        Supervision::default(),
    )
    .context("jobs configuration")?;
    register_server_kinds(&jobs);
    Ok(jobs)
}

/// The kinds the server adds to the engine's own, before the storage service exists
/// (`storage.sweep` is registered with it: [`register_storage_sweep`]).
pub fn register_server_kinds(jobs: &Jobs) {
    let _ = jobs;
}

/// Registers `storage.sweep` over the server's storage service: the sweep that start-up
/// runs, also hourly, so bytes whose rows an operator deleted (the runbook's
/// `DELETE FROM storage.objects …`) and abandoned resumable uploads free their space without
/// a restart. Not open to users.
pub fn register_storage_sweep(jobs: &Jobs, storage: fluxbase_storage::Storage) {
    jobs.register(std::sync::Arc::new(StorageSweep { storage }));
}

/// The `storage.sweep` kind.
struct StorageSweep {
    storage: fluxbase_storage::Storage,
}

impl JobHandler for StorageSweep {
    fn kind(&self) -> &str {
        STORAGE_SWEEP
    }

    fn run<'a>(&'a self, _job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(async move {
            let report = self.storage.sweep_orphans().await.map_err(|err| {
                JobFailure::retry(FailureReason::Handler, format!("storage sweep: {err}"))
            })?;
            Ok(Some(serde_json::to_value(report).unwrap_or(Value::Null)))
        })
    }
}

/// The job system of `fluxbase serve` (not started): its signing secret resolved (and
/// where from, logged), its kinds registered.
pub fn prepare(
    config: &Config,
    pg: tokio_postgres::Config,
    db: Db,
    embedded: bool,
    state_dir: &Path,
) -> anyhow::Result<Jobs> {
    let (secret, source) = signing_secret(config, embedded, state_dir)?;
    match &source {
        SecretSource::Config => {}
        SecretSource::File(path) => tracing::info!(
            path = %path.display(),
            "jobs.signing_secret is not set: signing outbound job requests with a generated secret"
        ),
        SecretSource::JwtSecret => tracing::info!(
            "jobs.signing_secret is not set: signing outbound job requests with a key derived from the JWT secret"
        ),
    }
    build(config, pg, db, secret)
}

/// Starts the workers, heartbeat and scheduler (inside the server's actix system, after
/// migrations), then keeps the housekeeping schedules.
pub async fn start(jobs: &Jobs, config: &Config) -> anyhow::Result<()> {
    jobs.start().await.context("start the job workers")?;
    ensure_housekeeping(jobs, config)
        .await
        .context("create the housekeeping schedules")
}

/// The schedules the server keeps, of the kinds registered.
pub fn housekeeping(config: &Config, kinds: &[String]) -> Vec<NewSchedule> {
    // The purge's payload floor is a minute.
    let ttl = config.auth.refresh_token_ttl.get().as_secs().max(60);
    [
        NewSchedule {
            name: PURGE_SESSIONS.into(),
            cron: PURGE_SESSIONS_CRON.into(),
            kind: "auth.purge_sessions".into(),
            payload: Some(json!({ "refresh_token_ttl_seconds": ttl })),
            ..NewSchedule::default()
        },
        NewSchedule {
            name: STORAGE_SWEEP.into(),
            cron: STORAGE_SWEEP_CRON.into(),
            kind: STORAGE_SWEEP.into(),
            ..NewSchedule::default()
        },
    ]
    .into_iter()
    .filter(|s| kinds.contains(&s.kind))
    .collect()
}

/// Creates each housekeeping schedule that does not exist, and brings the payload of one
/// that does up to the configuration (its cron and `enabled` stay as an operator set them).
/// Idempotent, and safe with several instances starting at once.
pub async fn ensure_housekeeping(jobs: &Jobs, config: &Config) -> Result<(), JobError> {
    let caller = Caller::System(HOUSEKEEPING.into());
    for wanted in housekeeping(config, &jobs.kinds()) {
        let existing = jobs
            .list_schedules(&caller)
            .await?
            .into_iter()
            .find(|s| s.name == wanted.name);
        let payload = wanted.payload.clone().unwrap_or(Value::Null);
        let name = wanted.name.clone();
        let existing = match existing {
            Some(schedule) => schedule,
            None => match jobs.create_schedule(&caller, wanted).await {
                Ok(_) => {
                    tracing::info!(schedule = %name, "housekeeping schedule created");
                    continue;
                }
                // Another instance created it meanwhile.
                Err(JobError::Conflict(_)) => {
                    continue;
                }
                Err(err) => return Err(err),
            },
        };
        if existing.payload != payload {
            jobs.update_schedule(
                &caller,
                existing.id,
                SchedulePatch {
                    payload: Some(payload),
                    ..SchedulePatch::default()
                },
            )
            .await?;
            tracing::info!(schedule = %name, "housekeeping schedule follows the configuration");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!(
            "fluxbase-jobs-secret-{}",
            fluxbase_migrations::secret::generate_secret(8)
        ))
    }

    #[test]
    fn the_signing_secret_comes_from_config_then_a_file_then_the_jwt_secret() {
        let dir = temp_dir();
        let mut config = Config::default();
        config.auth.jwt_secret = Some("a-jwt-secret-that-is-long-enough-for-hs256".into());

        let (derived, source) = signing_secret(&config, false, &dir).unwrap();
        assert_eq!(source, SecretSource::JwtSecret);
        assert_eq!(
            derived,
            derive_signing_secret(b"a-jwt-secret-that-is-long-enough-for-hs256")
        );
        assert!(!dir.exists(), "nothing written with a real database");

        let (generated, source) = signing_secret(&config, true, &dir).unwrap();
        let file = dir.join(SIGNING_SECRET_FILE);
        assert_eq!(source, SecretSource::File(file.clone()));
        assert_eq!(generated.len(), GENERATED_SECRET_LEN);
        let (again, _) = signing_secret(&config, true, &dir).unwrap();
        assert_eq!(again, generated, "kept across restarts");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        config.jobs.signing_secret = Some("configured-secret-0123456789".into());
        let (configured, source) = signing_secret(&config, true, &dir).unwrap();
        assert_eq!(source, SecretSource::Config);
        assert_eq!(configured, "configured-secret-0123456789");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_session_purge_follows_the_refresh_token_ttl() {
        let mut config = Config::default();
        config.auth.refresh_token_ttl = crate::config::Dur::secs(7 * 24 * 3600);
        let kinds = vec!["auth.purge_sessions".to_string()];
        let schedules = housekeeping(&config, &kinds);
        assert_eq!(schedules.len(), 1);
        assert_eq!(
            schedules[0].payload,
            Some(json!({"refresh_token_ttl_seconds": 604800}))
        );
        assert!(
            housekeeping(&config, &[]).is_empty(),
            "only registered kinds"
        );
    }
}
