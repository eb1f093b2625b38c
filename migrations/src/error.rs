//! Database errors with a kind. Each PostgreSQL `SqlState` maps to a [`DbErrorKind`] here
//! and nowhere else; services match on the kind (a unique violation on signup is "user
//! already exists"), the vocabulary ([`Code`]) follows from it, and the original error stays
//! reachable through `source()` for the log.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::code::{Code, ErrorCode};

/// What went wrong, as far as a caller needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbErrorKind {
    /// No connection could be had or it broke (database down, pool exhausted, timeout,
    /// too many connections, shutting down). Retrying later may work.
    Unavailable,
    /// `23505`: a unique or primary key constraint.
    UniqueViolation,
    /// `23503`: a foreign key constraint.
    ForeignKeyViolation,
    /// `23502`: a NOT NULL column got NULL.
    NotNullViolation,
    /// `23514`: a CHECK constraint.
    CheckViolation,
    /// `23P01`: an exclusion constraint.
    ExclusionViolation,
    /// Class `22`: a value of the wrong form for its type (`abc` for an integer, a NUL in
    /// text, a number out of range).
    InvalidInput,
    /// `42P01`, `42703`, `42883`, `42704`, `3F000`: a table, column, function, type or
    /// schema that does not exist.
    UndefinedObject,
    /// `42501`: a privilege or Row-Level-Security policy refused it.
    InsufficientPrivilege,
    /// `57014`: `statement_timeout` or a cancel.
    QueryCanceled,
    /// `40001`, `40P01`: a serialization failure or deadlock; the transaction may be retried.
    SerializationFailure,
    /// `P0001`: `RAISE EXCEPTION` in a function (its message is meant for the caller).
    RaisedException,
    /// Class `42` other than the above: SQL that does not compile.
    SyntaxOrAccessRule,
    /// Anything else: a bug or an unexpected failure.
    Other,
}

impl DbErrorKind {
    /// The one map from SQLSTATE to kind.
    pub fn of_sqlstate(state: &SqlState) -> DbErrorKind {
        let code = state.code();
        match code {
            "23505" => DbErrorKind::UniqueViolation,
            "23503" => DbErrorKind::ForeignKeyViolation,
            "23502" => DbErrorKind::NotNullViolation,
            "23514" => DbErrorKind::CheckViolation,
            "23P01" => DbErrorKind::ExclusionViolation,
            "42P01" | "42703" | "42883" | "42704" | "3F000" => DbErrorKind::UndefinedObject,
            "42501" => DbErrorKind::InsufficientPrivilege,
            "57014" => DbErrorKind::QueryCanceled,
            "40001" | "40P01" => DbErrorKind::SerializationFailure,
            "P0001" => DbErrorKind::RaisedException,
            // Admin shutdown, crash shutdown, cannot connect now, too many connections.
            "57P01" | "57P02" | "57P03" | "53300" => DbErrorKind::Unavailable,
            _ if code.starts_with("08") => DbErrorKind::Unavailable,
            _ if code.starts_with("22") => DbErrorKind::InvalidInput,
            _ if code.starts_with("42") => DbErrorKind::SyntaxOrAccessRule,
            _ => DbErrorKind::Other,
        }
    }

    /// Whether running the same thing again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            DbErrorKind::Unavailable | DbErrorKind::SerializationFailure
        )
    }

    /// The vocabulary entry of this kind.
    pub fn code(self) -> Code {
        match self {
            DbErrorKind::Unavailable => Code::DatabaseUnavailable,
            DbErrorKind::UniqueViolation
            | DbErrorKind::ForeignKeyViolation
            | DbErrorKind::ExclusionViolation
            | DbErrorKind::SerializationFailure => Code::Conflict,
            DbErrorKind::NotNullViolation
            | DbErrorKind::CheckViolation
            | DbErrorKind::InvalidInput
            | DbErrorKind::RaisedException => Code::BadRequest,
            DbErrorKind::UndefinedObject => Code::NotFound,
            DbErrorKind::InsufficientPrivilege => Code::Forbidden,
            DbErrorKind::QueryCanceled => Code::Timeout,
            DbErrorKind::SyntaxOrAccessRule | DbErrorKind::Other => Code::Internal,
        }
    }
}

/// An error talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not hand out a connection.
    #[error("database unavailable: {}", describe_pool(.0))]
    Pool(#[source] PoolError),
    /// A statement (or the connection under it) failed.
    #[error("{}", describe(.0))]
    Query(#[source] tokio_postgres::Error),
    /// No answer within the given time.
    #[error("database unavailable: no answer within {0:?}")]
    TimedOut(std::time::Duration),
}

impl DbError {
    /// What went wrong.
    pub fn kind(&self) -> DbErrorKind {
        match self {
            DbError::Pool(_) | DbError::TimedOut(_) => DbErrorKind::Unavailable,
            DbError::Query(err) => match err.code() {
                Some(state) => DbErrorKind::of_sqlstate(state),
                None if err.is_closed() => DbErrorKind::Unavailable,
                // No SQLSTATE and not closed: an I/O error or a failed connect.
                None if std::error::Error::source(err).is_some() => DbErrorKind::Unavailable,
                None => DbErrorKind::Other,
            },
        }
    }

    /// The SQLSTATE, when PostgreSQL sent one.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            DbError::Query(err) => err.code(),
            _ => None,
        }
    }

    /// PostgreSQL's own error fields, when it sent them.
    pub fn db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            DbError::Query(err) => err.as_db_error(),
            _ => None,
        }
    }

    /// The constraint a violation names, if any.
    pub fn constraint(&self) -> Option<&str> {
        self.db_error().and_then(|e| e.constraint())
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> Self {
        DbError::Query(err)
    }
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        DbError::Pool(err)
    }
}

impl ErrorCode for DbError {
    fn code(&self) -> Code {
        self.kind().code()
    }

    /// The server's message for kinds that describe the caller's own input (a constraint,
    /// a bad value, a refusal); a fixed text for the rest (their SQL stays in the log).
    fn client_message(&self) -> String {
        let code = self.code();
        if code.is_private() || self.kind() == DbErrorKind::UndefinedObject {
            return code.private_message().to_string();
        }
        match self.db_error() {
            Some(db) => db.message().to_string(),
            None => code.private_message().to_string(),
        }
    }
}

/// The text of a pool error including its cause (deadpool hides it in Display).
fn describe_pool(err: &PoolError) -> String {
    match err {
        PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// The text of a tokio-postgres error including its cause (its Display alone is terse).
pub fn describe(err: &tokio_postgres::Error) -> String {
    match (err.as_db_error(), std::error::Error::source(err)) {
        (Some(db), _) => format!("{}: {}", db.code().code(), db.message()),
        (None, Some(src)) => format!("{err}: {src}"),
        (None, None) => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        let cases = [
            (SqlState::UNIQUE_VIOLATION, DbErrorKind::UniqueViolation),
            (
                SqlState::FOREIGN_KEY_VIOLATION,
                DbErrorKind::ForeignKeyViolation,
            ),
            (SqlState::NOT_NULL_VIOLATION, DbErrorKind::NotNullViolation),
            (SqlState::CHECK_VIOLATION, DbErrorKind::CheckViolation),
            (
                SqlState::INVALID_TEXT_REPRESENTATION,
                DbErrorKind::InvalidInput,
            ),
            (
                SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                DbErrorKind::InvalidInput,
            ),
            (SqlState::UNDEFINED_TABLE, DbErrorKind::UndefinedObject),
            (SqlState::UNDEFINED_COLUMN, DbErrorKind::UndefinedObject),
            (
                SqlState::INSUFFICIENT_PRIVILEGE,
                DbErrorKind::InsufficientPrivilege,
            ),
            (SqlState::QUERY_CANCELED, DbErrorKind::QueryCanceled),
            (
                SqlState::T_R_DEADLOCK_DETECTED,
                DbErrorKind::SerializationFailure,
            ),
            (SqlState::CONNECTION_FAILURE, DbErrorKind::Unavailable),
            (SqlState::ADMIN_SHUTDOWN, DbErrorKind::Unavailable),
            (SqlState::TOO_MANY_CONNECTIONS, DbErrorKind::Unavailable),
            (SqlState::RAISE_EXCEPTION, DbErrorKind::RaisedException),
            (SqlState::SYNTAX_ERROR, DbErrorKind::SyntaxOrAccessRule),
            (SqlState::DISK_FULL, DbErrorKind::Other),
        ];
        for (state, kind) in cases {
            assert_eq!(DbErrorKind::of_sqlstate(&state), kind, "{}", state.code());
        }
    }

    #[test]
    fn only_unavailable_and_serialization_are_retryable() {
        assert!(DbErrorKind::Unavailable.is_retryable());
        assert!(DbErrorKind::SerializationFailure.is_retryable());
        assert!(!DbErrorKind::UniqueViolation.is_retryable());
        assert!(!DbErrorKind::Other.is_retryable());
    }
}
