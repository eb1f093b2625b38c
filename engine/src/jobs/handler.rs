//! What runs a job: a [`JobHandler`] per kind, in an open [`Registry`] (the server adds
//! `storage.sweep` from the storage crate, which the engine must not depend on), and the
//! outcome of a run ([`JobFailure`] says whether to retry).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use uuid::Uuid;

use super::error::JobError;

/// One run of a job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// Job id.
    pub id: Uuid,
    /// The submitter's label.
    pub name: String,
    /// The kind (the handler's own name).
    pub kind: String,
    /// This run's number, from 1.
    pub attempt: i32,
    /// Runs allowed.
    pub max_attempts: i32,
    /// The payload, checked against its stored SHA-256.
    pub payload: Value,
}

/// Why a run failed, bounded for the `reason` metric label and the start of `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The payload changed since it was submitted.
    HashMismatch,
    /// No handler is registered for the job's kind.
    UnknownKind,
    /// The payload does not suit the handler.
    InvalidPayload,
    /// An `http` job's URL leads to a refused address.
    PrivateAddress,
    /// The receiver answered with an error status.
    HttpStatus,
    /// The receiver answered a redirect (not followed).
    Redirect,
    /// The receiver could not be reached.
    Connect,
    /// The run took longer than its limit.
    Timeout,
    /// A `sql` job's statement failed.
    Sql,
    /// The handler failed otherwise.
    Handler,
    /// The handler panicked.
    Panic,
    /// The job's worker stopped heart-beating and its lease passed.
    LeaseExpired,
}

impl FailureReason {
    /// Every reason (metrics are registered for each from the first scrape).
    pub const ALL: [FailureReason; 12] = [
        FailureReason::HashMismatch,
        FailureReason::UnknownKind,
        FailureReason::InvalidPayload,
        FailureReason::PrivateAddress,
        FailureReason::HttpStatus,
        FailureReason::Redirect,
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::Sql,
        FailureReason::Handler,
        FailureReason::Panic,
        FailureReason::LeaseExpired,
    ];

    /// The label and the prefix of the stored error.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::HashMismatch => "hash_mismatch",
            FailureReason::UnknownKind => "unknown_kind",
            FailureReason::InvalidPayload => "invalid_payload",
            FailureReason::PrivateAddress => "private_address",
            FailureReason::HttpStatus => "http_status",
            FailureReason::Redirect => "redirect",
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::Sql => "sql_error",
            FailureReason::Handler => "handler_error",
            FailureReason::Panic => "panic",
            FailureReason::LeaseExpired => "lease_expired",
        }
    }
}

/// Whether a failed run is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Never: the job fails now, whatever attempts are left.
    No,
    /// After the usual exponential backoff, while attempts are left.
    Backoff,
    /// After this delay (a receiver's `Retry-After`), while attempts are left.
    After(Duration),
}

/// A failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// Why, for the metric and the start of `error`.
    pub reason: FailureReason,
    /// What happened (stored in `error`: never secrets or row values).
    pub message: String,
    /// Whether to try again.
    pub retry: Retry,
}

impl JobFailure {
    /// A failure worth retrying after backoff (5xx, timeouts, a database hiccup).
    pub fn retry(reason: FailureReason, message: impl Into<String>) -> JobFailure {
        JobFailure {
            reason,
            message: message.into(),
            retry: Retry::Backoff,
        }
    }

    /// A failure that no retry can fix (4xx, a bad payload).
    pub fn permanent(reason: FailureReason, message: impl Into<String>) -> JobFailure {
        JobFailure {
            reason,
            message: message.into(),
            retry: Retry::No,
        }
    }

    /// The text stored in `jobs.jobs.error`.
    pub fn error_text(&self) -> String {
        format!("{}: {}", self.reason.as_str(), self.message)
    }
}

/// What a run returns: the result to store (or none), or why it failed.
pub type RunResult = Result<Option<Value>, JobFailure>;

/// Runs the jobs of one kind.
pub trait JobHandler: Send + Sync + 'static {
    /// The kind this handler runs (`http`, `auth.purge_sessions`…).
    fn kind(&self) -> &str;

    /// Whether app users (not only service keys and admins) may submit this kind. Kinds
    /// that act with the server's privileges (`sql`, built-ins) must say no.
    fn open_to_users(&self) -> bool {
        false
    }

    /// Checks a payload at submit (and at schedule creation), naming the bad field.
    fn validate(&self, payload: &Value) -> Result<(), JobError> {
        let _ = payload;
        Ok(())
    }

    /// Runs one attempt.
    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult>;
}

/// The handlers by kind; shared, open to registration at any time.
#[derive(Clone, Default)]
pub struct Registry {
    /// A std lock: held only to look up or insert, never across `.await`.
    handlers: Arc<RwLock<BTreeMap<String, Arc<dyn JobHandler>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

impl Registry {
    /// Adds (or replaces) the handler of its kind.
    pub fn register(&self, handler: Arc<dyn JobHandler>) {
        let kind = handler.kind().to_string();
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, handler);
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
            .cloned()
    }

    /// Every registered kind, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The handler of `kind`, or a 400 naming `field` and the kinds there are.
    pub fn require(
        &self,
        kind: &str,
        field: &'static str,
    ) -> Result<Arc<dyn JobHandler>, JobError> {
        self.get(kind).ok_or_else(|| {
            JobError::invalid(
                field,
                format!(
                    "unknown kind {kind:?}: use one of {}",
                    self.kinds().join(", ")
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Noop;
    impl JobHandler for Noop {
        fn kind(&self) -> &str {
            "noop"
        }
        fn run<'a>(&'a self, _: &'a JobRun) -> BoxFuture<'a, RunResult> {
            Box::pin(async { Ok(None) })
        }
    }

    #[test]
    fn unknown_kinds_are_refused_naming_the_known_ones() {
        let registry = Registry::default();
        registry.register(Arc::new(Noop));
        assert!(registry.get("noop").is_some());
        let err = registry.require("nope", "kind").err().unwrap();
        assert_eq!(err.field(), Some("kind"));
        assert!(err.to_string().contains("noop"), "{err}");
    }

    #[test]
    fn failure_text_starts_with_its_reason() {
        let f = JobFailure::permanent(FailureReason::HashMismatch, "payload changed");
        assert_eq!(f.error_text(), "hash_mismatch: payload changed");
        assert_eq!(f.retry, Retry::No);
    }
}
