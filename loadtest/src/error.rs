//! The harness's error type: what stops a run before it can produce a report.
//!
//! Failures *during* a run (a refused connection, a server `error` frame, a failed
//! write) are not errors of the run: they are counted by kind in the report's
//! [`ErrorTally`](crate::tally::ErrorTally).

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent; names the key.
    #[error("invalid config `{key}`: {reason}")]
    Config { key: &'static str, reason: String },
    /// The target is not on this machine: the harness only loads loopback addresses.
    #[error(
        "refusing non-loopback target `{host}` ({what}): only 127.0.0.0/8, ::1 and localhost are allowed"
    )]
    NonLoopback { what: &'static str, host: String },
    /// The server URL could not be understood.
    #[error("invalid url `{url}`: {reason}")]
    Url { url: String, reason: &'static str },
    /// Connecting to or preparing the database failed.
    #[error("database: {context}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Minting a JWT failed.
    #[error("minting a jwt")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// An OS call (rlimit, socket setup) failed.
    #[error("{context}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A bare server the harness runs as its child (`ws-ceiling`, `http-floor`) failed.
    #[error("the {name} server {what}")]
    Child {
        name: &'static str,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// No subscriber became ready, so nothing could be measured.
    #[error("no subscription was acknowledged ({failed} sockets failed); see the errors above")]
    NoSubscriber { failed: usize },
}

impl Error {
    /// Shorthand for a [`Error::Config`].
    pub(crate) fn config(key: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            key,
            reason: reason.into(),
        }
    }

    /// Shorthand for a [`Error::Database`].
    pub(crate) fn database(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| Error::Database { context, source }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
