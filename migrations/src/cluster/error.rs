//! Errors of the embedded cluster, each saying what the operator can do about it.

use std::io;
use std::path::{Path, PathBuf};

use super::{INSTALL_HINT, MIN_PG_MAJOR};

/// Errors of the embedded cluster, each with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error("no PostgreSQL server binaries (initdb, postgres) found: {INSTALL_HINT}")]
    BinariesNotFound,
    /// The binaries found are too old.
    #[error(
        "PostgreSQL {found} found in {bindir}, but {MIN_PG_MAJOR} or newer is required: {INSTALL_HINT}"
    )]
    TooOld { found: String, bindir: PathBuf },
    /// Running as root without a `postgres` user to run the cluster as.
    #[error(
        "running as root, but there is no `postgres` user to run the embedded cluster as \
         (PostgreSQL refuses to run as root): install the postgresql package, which creates it, \
         or run fluxbase as an unprivileged user"
    )]
    NoPostgresUser,
    /// The data directory cannot be reached by the user the cluster runs as.
    #[error(
        "the embedded cluster's data directory {path} cannot be reached by the `postgres` user \
         ({blocker} is not searchable by others): run fluxbase from a directory outside it, \
         or set DATABASE_URL"
    )]
    Unreachable { path: PathBuf, blocker: PathBuf },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A PostgreSQL tool exited with an error.
    #[error("{tool} failed ({status}): {output}")]
    Tool {
        tool: &'static str,
        status: String,
        output: String,
    },
    /// The server did not become ready.
    #[error("the embedded PostgreSQL did not start: {reason}; last lines of {log}:\n{tail}")]
    StartFailed {
        reason: String,
        log: PathBuf,
        tail: String,
    },
}

impl ClusterError {
    /// Wraps an I/O error with what we were doing and to which path.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| ClusterError::Io {
            action,
            path,
            source,
        }
    }
}
