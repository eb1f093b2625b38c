//! The harness's side of the HTTP floor: starts the child process, hands it its
//! [`Setup`], waits until it is ready, and ends it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{CHILD_ARG, Ready, Setup};
use crate::child::Child;
use crate::error::Result;

/// Bound on the child opening its connections and listening.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running HTTP floor.
pub struct FloorServer {
    child: Child,
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// Its process id, for CPU and RSS samples.
    pub pid: u32,
}

impl FloorServer {
    /// Starts `exe` as the HTTP floor for `setup` and waits until it is ready.
    pub async fn start(exe: &Path, setup: &Setup) -> Result<Self> {
        let mut child = Child::spawn(exe, CHILD_ARG, "http-floor")?;
        child.send(setup).await?;
        let ready: Ready = child.recv(READY_TIMEOUT).await?;
        let addr = ready.addr.parse().map_err(|_| child.out_of_protocol())?;
        Ok(FloorServer {
            pid: child.pid,
            child,
            addr,
        })
    }

    /// Ends the child (see [`Child::shutdown`]).
    pub async fn shutdown(self) {
        self.child.shutdown().await;
    }
}
