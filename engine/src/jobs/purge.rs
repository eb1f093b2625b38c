//! The built-in `auth.purge_sessions`: deletes app-user sessions that can never be used
//! again, and the refresh tokens nobody can present any more.
//!
//! Payload: `{"refresh_token_ttl_seconds": N}` (default 30 days, `auth.refresh_token_ttl`'s
//! default; the server's schedule passes its configured value). Deleted:
//! - sessions past their `not_after`;
//! - sessions older than the TTL with no refresh token issued within it (every token of
//!   theirs has expired: the session cannot be refreshed);
//! - rotated (revoked) refresh tokens older than the TTL in the sessions that remain.
//!   Presenting one of those afterwards is refused as unknown rather than as reuse.
//!
//! Deleting a session deletes its tokens (ON DELETE CASCADE) and, through replication, closes
//! its sockets, exactly as the runbook's `DELETE FROM auth.sessions` does.

use fluxbase_migrations::{Db, DbError};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::JobError;
use super::handler::{FailureReason, JobFailure, JobHandler, JobRun, RunResult};

/// `auth.refresh_token_ttl`'s default: 30 days.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// The payload of `auth.purge_sessions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgePayload {
    #[serde(default = "default_ttl")]
    refresh_token_ttl_seconds: i64,
}

fn default_ttl() -> i64 {
    DEFAULT_REFRESH_TOKEN_TTL_SECONDS
}

const PURGE_SESSIONS_SQL: &str = "DELETE FROM auth.sessions s \
     WHERE s.not_after < now() \
        OR (s.created_at < now() - make_interval(secs => $1) \
            AND NOT EXISTS (SELECT 1 FROM auth.refresh_tokens t \
                            WHERE t.session_id = s.id \
                              AND t.created_at >= now() - make_interval(secs => $1)))";

const PURGE_TOKENS_SQL: &str = "DELETE FROM auth.refresh_tokens \
     WHERE revoked AND created_at < now() - make_interval(secs => $1)";

/// Runs `auth.purge_sessions`.
#[derive(Debug, Clone)]
pub struct PurgeSessions {
    db: Db,
}

impl PurgeSessions {
    /// The handler over `db`.
    pub fn new(db: Db) -> PurgeSessions {
        PurgeSessions { db }
    }

    async fn purge(&self, job: &JobRun) -> RunResult {
        let payload = parse(&job.payload)
            .map_err(|err| JobFailure::permanent(FailureReason::InvalidPayload, err.to_string()))?;
        let ttl = payload.refresh_token_ttl_seconds as f64;
        let run = async {
            let mut conn = self.db.conn().await?;
            let tx = conn.transaction().await?;
            let sessions = tx.execute(PURGE_SESSIONS_SQL, &[&ttl]).await?;
            let tokens = tx.execute(PURGE_TOKENS_SQL, &[&ttl]).await?;
            tx.commit().await?;
            Ok::<_, DbError>((sessions, tokens))
        };
        let (sessions, tokens) = run.await.map_err(|err| {
            JobFailure::retry(FailureReason::Sql, format!("purging sessions: {err}"))
        })?;
        tracing::info!(sessions, refresh_tokens = tokens, "expired sessions purged");
        Ok(Some(json!({
            "sessions_deleted": sessions,
            "refresh_tokens_deleted": tokens,
        })))
    }
}

fn parse(payload: &Value) -> Result<PurgePayload, JobError> {
    let payload: PurgePayload = serde_json::from_value(payload.clone())
        .map_err(|err| JobError::invalid("payload", err.to_string()))?;
    if payload.refresh_token_ttl_seconds < 60 {
        return Err(JobError::invalid(
            "payload.refresh_token_ttl_seconds",
            "must be at least 60",
        ));
    }
    Ok(payload)
}

impl JobHandler for PurgeSessions {
    fn kind(&self) -> &str {
        "auth.purge_sessions"
    }

    fn validate(&self, payload: &Value) -> Result<(), JobError> {
        parse(payload).map(|_| ())
    }

    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(self.purge(job))
    }
}
