//! Errors of the replication client, with kinds that decide what is retried.

use std::io;
use std::sync::Arc;

use crate::lsn::Lsn;

/// A field-by-field copy of a PostgreSQL `ErrorResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// SQLSTATE code, e.g. `55006` when the slot is still held by a dying walsender.
    pub code: String,
    /// Severity as sent (`ERROR`, `FATAL`…).
    pub severity: String,
    /// Primary human-readable message.
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

/// A JSON syntax or shape error in a wal2json message. `serde_json::Error` is not
/// comparable; behind an `Arc`, two are equal only when they are the same error, which keeps
/// [`DecodeError`] `PartialEq` for tests.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct JsonError(Arc<serde_json::Error>);

impl From<serde_json::Error> for JsonError {
    fn from(err: serde_json::Error) -> Self {
        JsonError(Arc::new(err))
    }
}

impl PartialEq for JsonError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for JsonError {}

/// Why a pgoutput or wal2json message could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ended before a field it announced.
    #[error("message truncated while reading {0}")]
    Truncated(&'static str),
    /// A message tag this decoder does not know (e.g. protocol-2 streaming messages).
    #[error("unknown message tag {0:#04x}")]
    UnknownMessage(u8),
    /// A tuple or submessage tag that is not valid at that place.
    #[error("unexpected tag {tag:#04x} in {context}")]
    UnexpectedTag {
        /// The byte found.
        tag: u8,
        /// Where it was found.
        context: &'static str,
    },
    /// A string field was not valid UTF-8.
    #[error("invalid utf-8 in {0}")]
    InvalidUtf8(&'static str),
    /// A row change referenced a relation never described by a Relation message.
    #[error("unknown relation {0}")]
    UnknownRelation(u32),
    /// A tuple's column count does not match its relation.
    #[error("relation {relation_id} has {expected} columns, tuple has {found}")]
    ColumnCount {
        /// The relation.
        relation_id: u32,
        /// Columns in the cached relation.
        expected: usize,
        /// Columns in the tuple.
        found: usize,
    },
    /// A negative length or count.
    #[error("invalid length in {0}")]
    InvalidLength(&'static str),
    /// Bytes left over after a message was fully read.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// Begin inside a transaction, Commit or a row change outside one.
    #[error("{0} out of transaction order")]
    OutOfOrder(&'static str),
    /// A replication protocol CopyData frame (not pgoutput) was malformed.
    #[error("malformed replication frame {0:#04x}")]
    Frame(u8),
    /// A wal2json message is not valid JSON or not the expected object.
    #[error("malformed wal2json message")]
    Json(#[source] JsonError),
    /// A wal2json action this decoder does not know (at most 16 characters are kept).
    #[error("unknown wal2json action {0:?}")]
    UnknownAction(String),
    /// A wal2json message lacks a field its action needs.
    #[error("wal2json message without {0}")]
    MissingField(&'static str),
    /// A wal2json field has a value of the wrong form (an LSN, a timestamp, a column value).
    #[error("invalid {0} in wal2json message")]
    InvalidField(&'static str),
}

/// What went wrong, with the kind deciding whether to reconnect.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The socket failed or closed.
    #[error("connection i/o failed")]
    Io(#[from] io::Error),
    /// The TLS handshake failed or the server refused TLS under `sslmode=require`.
    #[error("tls: {0}")]
    Tls(String),
    /// The server asked for an authentication method we do not speak, or no password was given.
    #[error("authentication: {0}")]
    Auth(&'static str),
    /// SCRAM exchange failed (bad server proof, malformed message).
    #[error("scram authentication failed")]
    Scram(#[source] io::Error),
    /// The server sent an error response.
    #[error("server error: {0}")]
    Server(ServerError),
    /// The server sent something the protocol does not allow here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A WAL message could not be decoded; carries the position of the message.
    #[error("decode error at {lsn}")]
    Decode {
        /// Start LSN of the XLogData message that failed.
        lsn: Lsn,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// Configuration is invalid; names the key.
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// The offending key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The slot exists but cannot be used as configured (other plugin or database).
    #[error("slot `{slot}` unusable: {reason}")]
    Slot {
        /// Slot name.
        slot: String,
        /// Why.
        reason: String,
    },
    /// The transaction receiver was dropped: nobody consumes the stream any more.
    #[error("transaction receiver closed")]
    ReceiverClosed,
    /// A connect or query timed out.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

impl ReplicationError {
    /// Whether the replication loop should reconnect after this error. Everything is retried
    /// except a gone consumer (the stream has no reader) and invalid configuration.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ReplicationError::ReceiverClosed | ReplicationError::Config { .. }
        )
    }

    /// A short stable name for logs, metrics and health output.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplicationError::Io(_) => "io",
            ReplicationError::Tls(_) => "tls",
            ReplicationError::Auth(_) | ReplicationError::Scram(_) => "auth",
            ReplicationError::Server(_) => "server",
            ReplicationError::Protocol(_) => "protocol",
            ReplicationError::Decode { .. } => "decode",
            ReplicationError::Config { .. } => "config",
            ReplicationError::Slot { .. } => "slot",
            ReplicationError::ReceiverClosed => "receiver_closed",
            ReplicationError::Timeout(_) => "timeout",
        }
    }

    /// The error and its sources on one line (`connection i/o failed: connection refused`),
    /// for logs and the status snapshot.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            out.push_str(": ");
            out.push_str(&err.to_string());
            source = err.source();
        }
        out
    }

    /// The SQLSTATE when the server sent the error.
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            ReplicationError::Server(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ReplicationError> = std::result::Result<T, E>;
