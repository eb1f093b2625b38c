//! The harness's side of the HTTP floor: starts the child process, hands it its
//! [`Setup`], waits until it is ready, and ends it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command as Process};

use super::{CHILD_ARG, Ready, Setup};
use crate::error::{Error, Result};

/// Bound on the child opening its connections and listening.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the child exiting once its stdin is closed, before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running HTTP floor.
pub struct FloorServer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// Its process id, for CPU and RSS samples.
    pub pid: u32,
}

impl FloorServer {
    /// Starts `exe` as the HTTP floor for `setup` and waits until it is ready.
    pub async fn start(exe: &Path, setup: &Setup) -> Result<Self> {
        let io_error = |context: &'static str, kind: std::io::ErrorKind| Error::Io {
            context,
            source: kind.into(),
        };
        let mut child = Process::new(exe)
            .arg(CHILD_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Never outlive the harness, even if it fails between here and `shutdown`.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Io {
                context: "starting the http-floor server (this binary, again)",
                source,
            })?;
        let pid = child.id().ok_or_else(|| {
            io_error(
                "the http-floor server exited at once",
                std::io::ErrorKind::BrokenPipe,
            )
        })?;
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| {
            io_error(
                "reading the http-floor server's stdout",
                std::io::ErrorKind::BrokenPipe,
            )
        })?;
        let mut line = serde_json::to_string(setup).map_err(|_| {
            io_error(
                "serializing the http-floor setup",
                std::io::ErrorKind::InvalidData,
            )
        })?;
        line.push('\n');
        if let Some(stdin) = stdin.as_mut() {
            stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|source| Error::Io {
                    context: "writing to the http-floor server",
                    source,
                })?;
        }
        let mut replies = BufReader::new(stdout).lines();
        let reply = tokio::time::timeout(READY_TIMEOUT, replies.next_line())
            .await
            .map_err(|_| {
                io_error(
                    "waiting for the http-floor server to open its connections",
                    std::io::ErrorKind::TimedOut,
                )
            })?
            .map_err(|source| Error::Io {
                context: "reading the http-floor server",
                source,
            })?
            .ok_or_else(|| {
                io_error(
                    "the http-floor server exited (see its stderr above)",
                    std::io::ErrorKind::UnexpectedEof,
                )
            })?;
        let addr = serde_json::from_str::<Ready>(&reply)
            .ok()
            .and_then(|ready| ready.addr.parse().ok())
            .ok_or_else(|| {
                io_error(
                    "the http-floor server answered out of protocol",
                    std::io::ErrorKind::InvalidData,
                )
            })?;
        Ok(FloorServer {
            child,
            stdin,
            addr,
            pid,
        })
    }

    /// Closes the child's stdin (it then stops serving and exits); kills it if it has
    /// not exited in time.
    pub async fn shutdown(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("warning: the http-floor server did not exit; killing it");
            let _ = self.child.kill().await;
        }
    }
}
