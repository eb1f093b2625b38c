//! The queue's SQL: submitting (idempotent), claiming (`FOR UPDATE SKIP LOCKED`), finishing
//! (fenced by worker and attempt), heart-beating, and re-queueing what lost its lease. Every
//! statement is safe with any number of server processes on the same database.

use std::time::Duration;

use fluxbase_migrations::{Db, DbError};
use rand::Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::JobError;
use super::job::{JOB_COLUMNS, Job};

/// A job to insert, checked.
#[derive(Debug, Clone)]
pub(crate) struct Insert {
    /// The submitter's label.
    pub name: String,
    /// A registered kind.
    pub kind: String,
    /// Checked payload.
    pub payload: Value,
    /// At most one job per key.
    pub idempotency_key: Option<String>,
    /// Runs allowed.
    pub max_attempts: i32,
    /// Higher runs first.
    pub priority: i32,
    /// Not run before now + this.
    pub delay: Duration,
    /// The app user, for users' jobs.
    pub owner: Option<Uuid>,
    /// `created_by`.
    pub created_by: String,
}

/// The SHA-256 of a payload as stored: computed by PostgreSQL over the `jsonb`'s text, the
/// same text a worker reads back and hashes before each run.
const PAYLOAD_HASH_SQL: &str = "encode(sha256(convert_to($3::jsonb::text, 'UTF8')), 'hex')";

/// Inserts `job`, or returns the existing job of its idempotency key. Never two jobs for
/// one key: `ON CONFLICT DO NOTHING` waits for a concurrent insert of the same key to commit
/// and then yields nothing, and the following read (a new snapshot) sees that row.
pub(crate) async fn insert(db: &Db, job: &Insert) -> Result<(Job, bool), JobError> {
    let sql = format!(
        "INSERT INTO jobs.jobs (name, kind, payload, payload_sha256, idempotency_key, \
           max_attempts, priority, scheduled_at, owner, created_by) \
         VALUES ($1, $2, $3::jsonb, {PAYLOAD_HASH_SQL}, $4, $5, $6, \
           now() + make_interval(secs => $7), $8, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING {JOB_COLUMNS}"
    );
    let delay = job.delay.as_secs_f64();
    // A key whose job vanished between the two statements (deleted by an operator) is
    // inserted again on the next round.
    for _ in 0..3 {
        let rows = db
            .query(
                &sql,
                &[
                    &job.name,
                    &job.kind,
                    &job.payload,
                    &job.idempotency_key,
                    &job.max_attempts,
                    &job.priority,
                    &delay,
                    &job.owner,
                    &job.created_by,
                ],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok((Job::from_row(row)?, true));
        }
        let existing = db
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM jobs.jobs WHERE idempotency_key = $1"),
                &[&job.idempotency_key],
            )
            .await?;
        if let Some(row) = existing.first() {
            return Ok((Job::from_row(row)?, false));
        }
    }
    Err(JobError::Conflict(
        "idempotency_key: the job of this key keeps disappearing; try again".into(),
    ))
}

/// A job claimed by this worker.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// Job id.
    pub id: Uuid,
    /// The submitter's label.
    pub name: String,
    /// Which handler runs it.
    pub kind: String,
    /// `payload::text`, hashed before it is parsed.
    pub payload_text: String,
    /// The hash stored at submit.
    pub payload_sha256: String,
    /// This run's number: the fencing token of every later write, with the worker id.
    pub attempt: i32,
    /// Runs allowed.
    pub max_attempts: i32,
}

impl Claimed {
    /// Whether the payload is still the one submitted.
    pub fn payload_intact(&self) -> bool {
        hex::encode(Sha256::digest(self.payload_text.as_bytes())) == self.payload_sha256
    }
}

/// Claims up to `limit` due jobs for `worker`, highest priority first, then oldest.
pub(crate) async fn claim(
    db: &Db,
    worker: Uuid,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, DbError> {
    let rows = db
        .query(
            "WITH next AS ( \
               SELECT id FROM jobs.jobs \
               WHERE status = 'pending' AND scheduled_at <= now() \
               ORDER BY priority DESC, scheduled_at \
               LIMIT $2 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE jobs.jobs j \
             SET status = 'running', attempts = j.attempts + 1, worker_id = $1, \
                 started_at = now(), finished_at = NULL, \
                 lease_expires_at = now() + make_interval(secs => $3), updated_at = now() \
             FROM next WHERE j.id = next.id \
             RETURNING j.id, j.name, j.kind, j.payload::text, j.payload_sha256, j.attempts, \
                       j.max_attempts",
            &[&worker, &limit, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Claimed {
            id: row.get(0),
            name: row.get(1),
            kind: row.get(2),
            payload_text: row.get(3),
            payload_sha256: row.get(4),
            attempt: row.get(5),
            max_attempts: row.get(6),
        })
        .collect())
}

/// Seconds until the next pending job is due (negative: overdue); `None` when none waits.
pub(crate) async fn next_due(db: &Db) -> Result<Option<f64>, DbError> {
    let rows = db
        .query(
            "SELECT EXTRACT(epoch FROM min(scheduled_at) - now())::float8 \
             FROM jobs.jobs WHERE status = 'pending'",
            &[],
        )
        .await?;
    Ok(rows.first().and_then(|row| row.get(0)))
}

/// Records a completed run. `false` when the job is no longer this run's (cancelled, or
/// re-queued after its lease passed): nothing is written then.
pub(crate) async fn complete(
    db: &Db,
    job: &Claimed,
    worker: Uuid,
    result: Option<&Value>,
) -> Result<bool, DbError> {
    let rows = db
        .query(
            "UPDATE jobs.jobs SET status = 'completed', result = $4, error = NULL, \
               finished_at = now(), lease_expires_at = NULL, updated_at = now() \
             WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running' \
             RETURNING 1",
            &[&job.id, &worker, &job.attempt, &result],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// What became of a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Back to pending, due after the delay.
    Retrying,
    /// Failed for good: a dead letter.
    Failed,
    /// The job was no longer this run's; nothing written.
    Lost,
}

/// Records a failed run: pending again after `retry_in` while attempts are left (and the
/// failure allows it), else failed with `error`.
pub(crate) async fn fail(
    db: &Db,
    job: &Claimed,
    worker: Uuid,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<AfterFailure, DbError> {
    let retry = retry_in.is_some();
    let delay = retry_in.unwrap_or_default().as_secs_f64();
    let rows = db
        .query(
            "UPDATE jobs.jobs SET \
               status = CASE WHEN $4 AND attempts < max_attempts THEN 'pending' ELSE 'failed' END, \
               scheduled_at = CASE WHEN $4 AND attempts < max_attempts \
                              THEN now() + make_interval(secs => $5) ELSE scheduled_at END, \
               finished_at = CASE WHEN $4 AND attempts < max_attempts THEN NULL ELSE now() END, \
               error = $6, lease_expires_at = NULL, updated_at = now() \
             WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running' \
             RETURNING status",
            &[&job.id, &worker, &job.attempt, &retry, &delay, &error],
        )
        .await?;
    Ok(match rows.first().map(|r| r.get::<_, String>(0)) {
        Some(status) if status == "pending" => AfterFailure::Retrying,
        Some(_) => AfterFailure::Failed,
        None => AfterFailure::Lost,
    })
}

/// The delay before retry `attempt + 1`: `base · 2^(attempt-1)`, capped at `max`, with
/// "equal jitter" (half fixed, half random) so retries of many jobs failing together spread
/// out while each still waits at least half its step.
pub fn backoff(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exponent = (attempt.max(1) - 1).min(30) as u32;
    let step = base.saturating_mul(1u32 << exponent).min(max);
    let half = step / 2;
    half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
}

/// Upserts this worker's row and renews the leases of the jobs it still runs; returns those
/// of `running` that are still its own (the others were cancelled or re-queued).
pub(crate) async fn heartbeat(
    db: &Db,
    worker: Uuid,
    hostname: &str,
    concurrency: i32,
    lease: Duration,
    running: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    let rows = db
        .query(
            "WITH beat AS ( \
               INSERT INTO jobs.workers (id, hostname, status, concurrency) \
               VALUES ($1, $2, 'active', $3) \
               ON CONFLICT (id) DO UPDATE SET status = 'active', last_heartbeat_at = now(), \
                 concurrency = EXCLUDED.concurrency, hostname = EXCLUDED.hostname \
               RETURNING 1) \
             UPDATE jobs.jobs SET lease_expires_at = now() + make_interval(secs => $4), \
               updated_at = now() \
             WHERE id = ANY($5) AND worker_id = $1 AND status = 'running' \
               AND EXISTS (SELECT 1 FROM beat) \
             RETURNING id",
            &[
                &worker,
                &hostname,
                &concurrency,
                &lease.as_secs_f64(),
                &running,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Re-queues running jobs whose lease passed (their worker stopped heart-beating), or fails
/// those out of attempts; marks silent workers stopped and forgets long-stopped ones.
/// Returns how many jobs failed for good. Safe on every instance at once (`SKIP LOCKED`).
pub(crate) async fn reap(db: &Db, lease: Duration, retention: Duration) -> Result<u64, DbError> {
    let rows = db
        .query(
            "WITH expired AS ( \
               SELECT id FROM jobs.jobs \
               WHERE status = 'running' AND lease_expires_at < now() \
               ORDER BY lease_expires_at LIMIT 1000 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE jobs.jobs j SET \
               status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'pending' END, \
               finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END, \
               scheduled_at = now(), lease_expires_at = NULL, updated_at = now(), \
               error = 'lease_expired: worker ' || coalesce(j.worker_id::text, '?') \
                       || ' stopped heart-beating' \
             FROM expired WHERE j.id = expired.id \
             RETURNING j.status",
            &[],
        )
        .await?;
    let failed = rows
        .iter()
        .filter(|r| r.get::<_, &str>(0) == "failed")
        .count() as u64;
    if !rows.is_empty() {
        tracing::warn!(
            jobs = rows.len(),
            failed,
            "re-queued jobs whose worker stopped heart-beating"
        );
    }
    db.query(
        "UPDATE jobs.workers SET status = 'stopped' \
         WHERE status = 'active' AND last_heartbeat_at < now() - make_interval(secs => $1)",
        &[&lease.as_secs_f64()],
    )
    .await?;
    db.query(
        "DELETE FROM jobs.workers \
         WHERE status = 'stopped' AND last_heartbeat_at < now() - make_interval(secs => $1)",
        &[&retention.as_secs_f64()],
    )
    .await?;
    Ok(failed)
}

/// Puts jobs this worker still runs back in the queue (graceful shutdown past its bound):
/// the interrupted run does not count as an attempt.
pub(crate) async fn release(db: &Db, worker: Uuid, ids: &[Uuid]) -> Result<u64, DbError> {
    let rows = db
        .query(
            "UPDATE jobs.jobs SET status = 'pending', attempts = greatest(attempts - 1, 0), \
               lease_expires_at = NULL, scheduled_at = now(), started_at = NULL, \
               updated_at = now() \
             WHERE id = ANY($2) AND worker_id = $1 AND status = 'running' RETURNING 1",
            &[&worker, &ids],
        )
        .await?;
    Ok(rows.len() as u64)
}

/// Marks this worker stopped.
pub(crate) async fn stop_worker(db: &Db, worker: Uuid) -> Result<(), DbError> {
    db.query(
        "UPDATE jobs.workers SET status = 'stopped', last_heartbeat_at = now() WHERE id = $1",
        &[&worker],
    )
    .await?;
    Ok(())
}

/// Counts for the gauges: pending, running, active workers.
pub(crate) async fn counts(db: &Db) -> Result<(i64, i64, i64), DbError> {
    let rows = db
        .query(
            "SELECT (SELECT count(*) FROM jobs.jobs WHERE status = 'pending'), \
                    (SELECT count(*) FROM jobs.jobs WHERE status = 'running'), \
                    (SELECT count(*) FROM jobs.workers WHERE status = 'active')",
            &[],
        )
        .await?;
    let row = &rows[0];
    Ok((row.get(0), row.get(1), row.get(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=10 {
            let step = (base * 2u32.pow(attempt as u32 - 1)).min(max);
            for _ in 0..50 {
                let d = backoff(attempt, base, max);
                assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
            }
        }
        assert!(backoff(i32::MAX, base, max) <= max);
        assert!(backoff(0, base, max) <= base);
    }

    #[test]
    fn a_changed_payload_is_detected() {
        let text = r#"{"a": 1}"#.to_string();
        let mut claimed = Claimed {
            id: Uuid::nil(),
            name: "n".into(),
            kind: "k".into(),
            payload_sha256: hex::encode(Sha256::digest(text.as_bytes())),
            payload_text: text,
            attempt: 1,
            max_attempts: 3,
        };
        assert!(claimed.payload_intact());
        claimed.payload_text = r#"{"a": 2}"#.into();
        assert!(!claimed.payload_intact());
    }
}
