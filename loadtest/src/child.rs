//! A bare server run as a child process of the harness — this binary started again with a
//! private first argument (`ws-ceiling`'s broadcast server, `http-floor`'s REST server) —
//! spoken to in JSON lines: the harness writes on its stdin and reads its stdout; closing
//! its stdin ends it. Its own process, so its CPU and RSS are sampled like the real
//! server's.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

use crate::error::{Error, Result};

/// Bound on the child exiting once its stdin is closed, before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child server.
pub struct Child {
    /// What it is, for errors (`ws-ceiling`, `http-floor`).
    name: &'static str,
    process: tokio::process::Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    /// Its process id, for CPU and RSS samples.
    pub pid: u32,
}

/// An error about the child `name`.
fn failed(name: &'static str, what: &'static str, source: std::io::Error) -> Error {
    Error::Child { name, what, source }
}

impl Child {
    /// Starts `exe arg` with piped stdin and stdout (stderr shared with the harness).
    pub fn spawn(exe: &Path, arg: &str, name: &'static str) -> Result<Child> {
        let mut process = Command::new(exe)
            .arg(arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Never outlive the harness, even if it fails between here and `shutdown`.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| failed(name, "could not be started", source))?;
        let pid = process.id().ok_or_else(|| {
            failed(
                name,
                "exited at once",
                std::io::ErrorKind::BrokenPipe.into(),
            )
        })?;
        let stdin = process.stdin.take();
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| failed(name, "has no stdout", std::io::ErrorKind::BrokenPipe.into()))?;
        Ok(Child {
            name,
            process,
            stdin,
            lines: BufReader::new(stdout).lines(),
            pid,
        })
    }

    /// Writes `message` as one line on the child's stdin.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<()> {
        let mut line = serde_json::to_string(message).map_err(|_| self.out_of_protocol())?;
        line.push('\n');
        let name = self.name;
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            failed(
                name,
                "has its stdin closed",
                std::io::ErrorKind::BrokenPipe.into(),
            )
        })?;
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|source| failed(name, "could not be written to", source))
    }

    /// Reads the child's next line as a `T`, waiting at most `within`.
    pub async fn recv<T: DeserializeOwned>(&mut self, within: Duration) -> Result<T> {
        let name = self.name;
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .map_err(|_| {
                failed(
                    name,
                    "did not answer in time",
                    std::io::ErrorKind::TimedOut.into(),
                )
            })?
            .map_err(|source| failed(name, "could not be read", source))?
            .ok_or_else(|| {
                failed(
                    name,
                    "exited (see its stderr above)",
                    std::io::ErrorKind::UnexpectedEof.into(),
                )
            })?;
        serde_json::from_str(&line).map_err(|_| self.out_of_protocol())
    }

    /// The error for an answer the protocol does not have.
    pub fn out_of_protocol(&self) -> Error {
        failed(
            self.name,
            "answered out of protocol (is it a fluxbase-loadtest binary?)",
            std::io::ErrorKind::InvalidData.into(),
        )
    }

    /// Closes the child's stdin (it then stops serving and exits); kills it if it has not
    /// exited in time.
    pub async fn shutdown(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(EXIT_TIMEOUT, self.process.wait())
            .await
            .is_err()
        {
            eprintln!("warning: the {} server did not exit; killing it", self.name);
            let _ = self.process.kill().await;
        }
    }
}
