//! The harness's side of the ceiling server: starts the child process, reads where it
//! listens, sends it [`Command`]s and reads its [`Reply`]s, and ends it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};

use super::{Broadcast, CHILD_ARG, Command, Reply, Sent};
use crate::error::{Error, Result};

/// Bound on the child starting to listen, and on a reply to a command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the child exiting once its stdin is closed, before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running ceiling server.
pub struct CeilingServer {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Lines<BufReader<ChildStdout>>,
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// Its process id, for CPU and RSS samples.
    pub pid: u32,
}

impl CeilingServer {
    /// Starts `exe` as the ceiling server and waits until it listens.
    pub async fn start(exe: &Path) -> Result<Self> {
        let mut child = Process::new(exe)
            .arg(CHILD_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Never outlive the harness, even if it fails between here and `shutdown`.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Io {
                context: "starting the ws-ceiling server (--ceiling-exe)",
                source,
            })?;
        let pid = child.id().ok_or_else(|| Error::Io {
            context: "the ws-ceiling server exited at once",
            source: std::io::ErrorKind::BrokenPipe.into(),
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| Error::Io {
            context: "reading the ws-ceiling server's stdout",
            source: std::io::ErrorKind::BrokenPipe.into(),
        })?;
        let mut server = CeilingServer {
            child,
            stdin,
            replies: BufReader::new(stdout).lines(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
        };
        match server.reply().await? {
            Reply::Listening(addr) => {
                server.addr = addr.parse().map_err(|_| Error::Io {
                    context: "the ws-ceiling server announced an unreadable address",
                    source: std::io::ErrorKind::InvalidData.into(),
                })?;
            }
            Reply::Sent(_) => return Err(protocol_error()),
        }
        Ok(server)
    }

    /// Starts the broadcast to every socket subscribed so far.
    pub async fn go(&mut self, broadcast: Broadcast) -> Result<()> {
        self.send(&Command::Go(broadcast)).await
    }

    /// Stops the broadcast and returns what it sent.
    pub async fn stop(&mut self) -> Result<Sent> {
        self.send(&Command::Stop).await?;
        match self.reply().await? {
            Reply::Sent(sent) => Ok(sent),
            Reply::Listening(_) => Err(protocol_error()),
        }
    }

    /// Closes the child's stdin (it then stops serving and exits); kills it if it has
    /// not exited in time.
    pub async fn shutdown(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("warning: the ws-ceiling server did not exit; killing it");
            let _ = self.child.kill().await;
        }
    }

    async fn send(&mut self, command: &Command) -> Result<()> {
        let mut line = serde_json::to_string(command).map_err(|_| protocol_error())?;
        line.push('\n');
        let stdin = self.stdin.as_mut().ok_or_else(protocol_error)?;
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|source| Error::Io {
                context: "writing to the ws-ceiling server",
                source,
            })
    }

    async fn reply(&mut self) -> Result<Reply> {
        let line = tokio::time::timeout(REPLY_TIMEOUT, self.replies.next_line())
            .await
            .map_err(|_| Error::Io {
                context: "waiting for the ws-ceiling server",
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| Error::Io {
                context: "reading the ws-ceiling server",
                source,
            })?
            .ok_or_else(|| Error::Io {
                context: "the ws-ceiling server exited (see its stderr above)",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            })?;
        serde_json::from_str(&line).map_err(|_| protocol_error())
    }
}

fn protocol_error() -> Error {
    Error::Io {
        context: "the ws-ceiling server answered out of protocol (is --ceiling-exe a fluxbase-loadtest binary?)",
        source: std::io::ErrorKind::InvalidData.into(),
    }
}
