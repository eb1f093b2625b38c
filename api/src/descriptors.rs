//! File descriptors for thousands of sockets, settled before the first one arrives.
//!
//! Every socket is a descriptor. Two things about them hurt a connect storm:
//! - a soft `RLIMIT_NOFILE` below the hard limit (1,024 under systemd) refuses sockets
//!   long before `realtime.max_connections`; the soft limit is raised to the hard one, as
//!   the Go runtime does for its servers;
//! - Linux grows a process's descriptor table by doubling, and in a multi-threaded process
//!   each growth waits for an RCU grace period (`expand_files` → `synchronize_rcu`) while
//!   every thread that opens a descriptor waits behind it. The acceptor thread stalled
//!   ~20 ms at 256, 512, 1,024, 2,048 and 4,096 sockets, and every handshake arriving
//!   meanwhile waited with it: that was the connect p99 of a 5,000-socket storm. The table
//!   is grown once here, before any thread exists (no grace period then), to hold
//!   `realtime.max_connections` plus [`SPARE`]; the kernel never shrinks it.

use std::os::fd::AsRawFd;

/// Descriptors beyond the sockets: the database pool, the listener, logs, files.
pub const SPARE: u64 = 1024;

/// The descriptor table is never grown past this many entries here (8 MiB of table),
/// whatever the limits allow.
const MOST: u64 = 1 << 20;

/// What [`prepare`] left in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The soft `RLIMIT_NOFILE` now.
    pub limit: u64,
    /// The descriptor table holds at least this many entries now.
    pub table: u64,
}

/// Raises the soft descriptor limit to the hard one, then grows the descriptor table to
/// hold `sockets` plus [`SPARE`] (within the limit). Call it before starting threads.
pub fn prepare(sockets: u64) -> std::io::Result<Descriptors> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit that outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above. A refusal leaves the soft limit as it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let soft = limit.rlim_cur;
    // The lowest free descriptor at or above `highest` makes the kernel size the table
    // for it; closing it leaves the table as it is.
    let highest = sockets
        .saturating_add(SPARE)
        .min(soft.saturating_sub(1))
        .min(MOST);
    let table = match libc::c_int::try_from(highest) {
        Ok(highest) if highest > 0 => {
            let anchor = std::fs::File::open("/dev/null")?;
            // SAFETY: `anchor` is an open descriptor for the whole call; F_DUPFD_CLOEXEC
            // only creates a new descriptor, which is closed right after.
            let fd = unsafe { libc::fcntl(anchor.as_raw_fd(), libc::F_DUPFD_CLOEXEC, highest) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created by this function and nothing else refers to it.
            unsafe { libc::close(fd) };
            u64::try_from(fd).unwrap_or(0) + 1
        }
        _ => 0,
    };
    Ok(Descriptors { limit: soft, table })
}

/// Logs what [`prepare`] did, and warns when the limit cannot hold `max_connections`.
pub fn report(prepared: &std::io::Result<Descriptors>, max_connections: u32) {
    match prepared {
        Ok(d) => {
            tracing::info!(limit = d.limit, table = d.table, "file descriptors ready");
            let wanted = u64::from(max_connections) + SPARE;
            if d.limit < wanted {
                tracing::warn!(
                    limit = d.limit,
                    wanted,
                    "the descriptor limit (ulimit -n) is below realtime.max_connections: raise the hard limit"
                );
            }
        }
        Err(err) => tracing::warn!(error = %err, "file descriptor table not prepared"),
    }
}

#[cfg(test)]
mod tests {
    /// `FDSize` of `/proc/self/status`: the entries of this process's descriptor table.
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn the_table_is_grown_for_the_sockets_at_once() {
        let before = table_size();
        let wanted = (before * 4).max(8192);
        let prepared = super::prepare(wanted).unwrap();
        if prepared.limit <= wanted + super::SPARE {
            // A hard limit this low leaves nothing to grow into: the table fills the limit.
            assert!(table_size() >= prepared.limit - 1);
            return;
        }
        assert!(prepared.table > wanted);
        assert!(
            table_size() > wanted,
            "FDSize {} after preparing for {wanted} sockets",
            table_size()
        );
        // The soft limit is the hard one now.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid pointer to an rlimit that outlives the call.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
