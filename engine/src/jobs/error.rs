//! Errors of the jobs service: what a caller did wrong (naming the field), what it may not
//! do, what does not exist, and the database underneath (with its kind).

use fluxbase_migrations::{Code, DbError, ErrorCode};

/// An error of the jobs service API (submit, list, schedules, webhook rules…).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Input that breaks a rule; `field` names the JSON field the caller sent.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the caller spelled it (`payload.url`, `max_attempts`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The caller may not do this (a user submitting a `sql` job, an admin route).
    #[error("{0}")]
    Forbidden(String),
    /// No such job, schedule or rule (or not one the caller may see).
    #[error("{what} {id} not found")]
    NotFound {
        /// `job`, `schedule`, `webhook`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The resource's state or a uniqueness rule forbids it (cancelling a completed job, a
    /// second schedule with the same name).
    #[error("{0}")]
    Conflict(String),
    /// The jobs settings are unusable (a bad key, the HTTP client could not be built).
    #[error("jobs configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("jobs database error: {0}")]
    Db(#[from] DbError),
}

impl JobError {
    /// A rule broken by `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> JobError {
        JobError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// No `what` with `id`.
    pub fn not_found(what: &'static str, id: impl ToString) -> JobError {
        JobError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// The field a validation error names, if it is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            JobError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for JobError {
    fn from(err: tokio_postgres::Error) -> Self {
        JobError::Db(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        JobError::Db(err.into())
    }
}

impl ErrorCode for JobError {
    fn code(&self) -> Code {
        match self {
            // The issue asks for 400 naming the field for every refused input.
            JobError::Invalid { .. } => Code::BadRequest,
            JobError::Forbidden(_) => Code::Forbidden,
            JobError::NotFound { .. } => Code::NotFound,
            JobError::Conflict(_) => Code::Conflict,
            JobError::Config(_) => Code::Internal,
            JobError::Db(err) => err.code(),
        }
    }

    fn client_message(&self) -> String {
        match self {
            JobError::Db(err) => err.client_message(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_is_a_400_naming_the_field() {
        let err = JobError::invalid("max_attempts", "must be between 1 and 100, got -1");
        assert_eq!(err.code(), Code::BadRequest);
        assert_eq!(err.field(), Some("max_attempts"));
        assert_eq!(
            err.client_message(),
            "max_attempts: must be between 1 and 100, got -1"
        );
        assert_eq!(
            JobError::not_found("job", "42").code().status(),
            404,
            "not found"
        );
    }
}
