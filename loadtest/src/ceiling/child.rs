//! The harness's side of the ceiling server: starts the child process, reads where it
//! listens, sends it [`Command`]s and reads its [`Reply`]s, and ends it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{Broadcast, CHILD_ARG, Command, Reply, Sent};
use crate::child::Child;
use crate::error::Result;

/// Bound on the child starting to listen, and on a reply to a command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running ceiling server.
pub struct CeilingServer {
    child: Child,
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// Its process id, for CPU and RSS samples.
    pub pid: u32,
}

impl CeilingServer {
    /// Starts `exe` (given by `--ceiling-exe`, or this binary) as the ceiling server and
    /// waits until it listens.
    pub async fn start(exe: &Path) -> Result<Self> {
        let mut child = Child::spawn(exe, CHILD_ARG, "ws-ceiling")?;
        let addr = match child.recv(REPLY_TIMEOUT).await? {
            Reply::Listening(addr) => addr.parse().map_err(|_| child.out_of_protocol())?,
            Reply::Sent(_) => return Err(child.out_of_protocol()),
        };
        Ok(CeilingServer {
            pid: child.pid,
            child,
            addr,
        })
    }

    /// Starts the broadcast to every socket subscribed so far.
    pub async fn go(&mut self, broadcast: Broadcast) -> Result<()> {
        self.child.send(&Command::Go(broadcast)).await
    }

    /// Stops the broadcast and returns what it sent.
    pub async fn stop(&mut self) -> Result<Sent> {
        self.child.send(&Command::Stop).await?;
        match self.child.recv(REPLY_TIMEOUT).await? {
            Reply::Sent(sent) => Ok(sent),
            Reply::Listening(_) => Err(self.child.out_of_protocol()),
        }
    }

    /// Ends the child (see [`Child::shutdown`]).
    pub async fn shutdown(self) {
        self.child.shutdown().await;
    }
}
