//! A job as callers see it, what they submit, who they are, and how they list.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::error::JobError;

/// The life of a job: `pending` → `running` → `completed` | `failed` (the dead letters,
/// after `max_attempts`) | back to `pending` (a retry); `cancelled` by a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker (maybe until `scheduled_at`).
    Pending,
    /// Claimed by a worker, under a lease.
    Running,
    /// Done.
    Completed,
    /// Out of attempts, or failed for good: the dead-letter state.
    Failed,
    /// Cancelled by a caller.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The text stored in `jobs.jobs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or requested status; the error names the `status` field.
    pub fn parse(text: &str) -> Result<JobStatus, JobError> {
        JobStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                JobError::invalid(
                    "status",
                    format!(
                        "unknown status {text:?}: use pending, running, completed, failed or cancelled"
                    ),
                )
            })
    }
}

/// One row of `jobs.jobs`, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// The submitter's label.
    pub name: String,
    /// The handler kind.
    pub kind: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// What the handler gets.
    pub payload: Value,
    /// Hex SHA-256 of the payload as stored.
    pub payload_sha256: String,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Runs started so far.
    pub attempts: i32,
    /// Runs allowed before `failed`.
    pub max_attempts: i32,
    /// Higher runs first.
    pub priority: i32,
    /// Not run before.
    #[serde(with = "rfc3339")]
    pub scheduled_at: SystemTime,
    /// When the current or last run started.
    #[serde(with = "rfc3339::option")]
    pub started_at: Option<SystemTime>,
    /// When it completed, failed for good or was cancelled.
    #[serde(with = "rfc3339::option")]
    pub finished_at: Option<SystemTime>,
    /// The worker running it (or that ran it last).
    pub worker_id: Option<Uuid>,
    /// The running job's lease.
    #[serde(with = "rfc3339::option")]
    pub lease_expires_at: Option<SystemTime>,
    /// The last failure, `reason: message`.
    pub error: Option<String>,
    /// What the handler returned.
    pub result: Option<Value>,
    /// The app user who submitted it.
    pub owner: Option<Uuid>,
    /// Who submitted it (`user:<id>`, `service:<name>`, `schedule:<id>`…).
    pub created_by: Option<String>,
    /// Submitted at.
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// Last change.
    #[serde(with = "rfc3339")]
    pub updated_at: SystemTime,
}

/// The columns [`Job::from_row`] reads, in order.
pub(crate) const JOB_COLUMNS: &str = "id, name, kind, status, payload, payload_sha256, \
     idempotency_key, attempts, max_attempts, priority, scheduled_at, started_at, finished_at, \
     worker_id, lease_expires_at, error, result, owner, created_by, created_at, updated_at";

impl Job {
    /// A row selected with [`JOB_COLUMNS`].
    pub(crate) fn from_row(row: &Row) -> Result<Job, JobError> {
        let status: String = row.try_get(3)?;
        Ok(Job {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            kind: row.try_get(2)?,
            status: JobStatus::parse(&status)?,
            payload: row.try_get(4)?,
            payload_sha256: row.try_get(5)?,
            idempotency_key: row.try_get(6)?,
            attempts: row.try_get(7)?,
            max_attempts: row.try_get(8)?,
            priority: row.try_get(9)?,
            scheduled_at: row.try_get(10)?,
            started_at: row.try_get(11)?,
            finished_at: row.try_get(12)?,
            worker_id: row.try_get(13)?,
            lease_expires_at: row.try_get(14)?,
            error: row.try_get(15)?,
            result: row.try_get(16)?,
            owner: row.try_get(17)?,
            created_by: row.try_get(18)?,
            created_at: row.try_get(19)?,
            updated_at: row.try_get(20)?,
        })
    }
}

/// What a caller submits (`POST /api/v1/jobs`). Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// A label (1–255 characters).
    pub name: String,
    /// A registered kind (`http`, `sql`, a built-in).
    pub kind: String,
    /// The handler's input; `{}` when absent.
    #[serde(default)]
    pub payload: Option<Value>,
    /// Submitting the same key again returns the first job, never a second one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Runs allowed (1–100; default 3).
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// Higher runs first (default 0).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Run no earlier than this many seconds from now (0–1 year).
    #[serde(default)]
    pub delay_seconds: Option<i64>,
}

/// Who is calling the service: decides what they see and may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An app user (an `authenticated` JWT): sees and submits only their own jobs, and
    /// only kinds open to users (`http`).
    User(Uuid),
    /// A service key or a `service_role` token, named for `created_by`: sees everything.
    Service(String),
    /// A dashboard admin: sees and manages everything.
    Admin(String),
    /// The server itself (schedules, webhooks, built-in housekeeping).
    System(String),
}

impl Caller {
    /// The owner recorded on what this caller submits.
    pub fn owner(&self) -> Option<Uuid> {
        match self {
            Caller::User(id) => Some(*id),
            _ => None,
        }
    }

    /// Whether the caller sees every job (service keys, admins, the server).
    pub fn sees_all(&self) -> bool {
        !matches!(self, Caller::User(_))
    }

    /// The `created_by` text.
    pub fn label(&self) -> String {
        match self {
            Caller::User(id) => format!("user:{id}"),
            Caller::Service(name) => format!("service:{name}"),
            Caller::Admin(id) => format!("admin:{id}"),
            Caller::System(what) => what.clone(),
        }
    }

    /// Refuses callers that are not trusted with the whole queue (admin routes).
    pub fn require_all(&self) -> Result<(), JobError> {
        if self.sees_all() {
            Ok(())
        } else {
            Err(JobError::Forbidden(
                "only service keys and admins may do this".into(),
            ))
        }
    }
}

/// Largest page of a listing.
pub const MAX_PAGE: i64 = 1000;
/// Page size when none is asked.
pub const DEFAULT_PAGE: i64 = 50;

/// A listing request (`GET /api/v1/jobs?status=&name=&limit=&offset=`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Only jobs of this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Page size (1–1000, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Rows to skip.
    #[serde(default)]
    pub offset: Option<i64>,
}

impl JobQuery {
    /// The checked page size and offset.
    pub(crate) fn page(&self) -> Result<(i64, i64), JobError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(JobError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}, got {limit}"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(JobError::invalid(
                "offset",
                format!("must not be negative, got {offset}"),
            ));
        }
        Ok((limit, offset))
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<i64>,
}

/// What `submit` did.
#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    /// The job (the existing one for a known idempotency key).
    pub job: Job,
    /// Whether this call created it (false: the idempotency key was known).
    pub created: bool,
}

/// RFC 3339 (UTC) serialization of `SystemTime`, as PostgreSQL and clients expect.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    /// `2024-03-01T12:00:00.123456Z`
    pub fn format(t: SystemTime) -> String {
        DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Serializes a time.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use std::time::SystemTime;

        use serde::Serializer;

        /// Serializes an optional time.
        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::format(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_name_the_field() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(
            JobStatus::parse("done").unwrap_err().field(),
            Some("status")
        );
    }

    #[test]
    fn pages_are_bounded() {
        let q = JobQuery {
            limit: Some(0),
            ..Default::default()
        };
        assert_eq!(q.page().unwrap_err().field(), Some("limit"));
        let q = JobQuery {
            offset: Some(-1),
            ..Default::default()
        };
        assert_eq!(q.page().unwrap_err().field(), Some("offset"));
        assert_eq!(JobQuery::default().page().unwrap(), (DEFAULT_PAGE, 0));
    }

    #[test]
    fn callers_see_what_they_should() {
        let user = Caller::User(Uuid::nil());
        assert_eq!(user.owner(), Some(Uuid::nil()));
        assert!(user.require_all().is_err());
        assert!(Caller::Service("k".into()).require_all().is_ok());
        assert_eq!(Caller::Admin("a".into()).label(), "admin:a");
    }
}
