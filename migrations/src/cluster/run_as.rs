//! Running the cluster as the `postgres` user when we are root (PostgreSQL refuses to run
//! as root), and checking that user can reach the data directory.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::error::ClusterError;

/// The OS user the cluster's processes run as.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `None` when we are not root: the cluster then runs as ourselves.
    pub(super) fn detect() -> Result<Option<RunAs>, ClusterError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let passwd = fs::read_to_string("/etc/passwd")
            .map_err(ClusterError::io("read", Path::new("/etc/passwd")))?;
        passwd
            .lines()
            .find_map(|line| {
                let mut f = line.split(':');
                (f.next()? == "postgres").then_some(())?;
                let uid = f.nth(1)?.parse().ok()?;
                let gid = f.next()?.parse().ok()?;
                Some(Some(RunAs { uid, gid }))
            })
            .ok_or(ClusterError::NoPostgresUser)
    }

    pub(super) fn chown(self, path: &Path) -> Result<(), ClusterError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(ClusterError::io("change the owner of", path))
    }

    pub(super) fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }
}

/// Every ancestor of `path` must be searchable by the `postgres` user.
pub(super) fn check_reachable(path: &Path) -> Result<(), ClusterError> {
    let abs = std::path::absolute(path).map_err(ClusterError::io("resolve", path))?;
    for ancestor in abs.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        if meta.mode() & 0o001 == 0 {
            return Err(ClusterError::Unreachable {
                path: abs.clone(),
                blocker: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}
