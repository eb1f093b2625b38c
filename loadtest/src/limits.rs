//! The harness's own file-descriptor limit: every socket is a descriptor.

use crate::error::{Error, Result};

/// Descriptors kept for everything that is not a socket (stdio, database, files).
const SPARE: u64 = 256;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit and checks that `sockets` fit.
/// Returns the soft limit now in force.
pub fn raise_nofile(sockets: usize) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit that outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(Error::Io {
            context: "reading RLIMIT_NOFILE",
            source: std::io::Error::last_os_error(),
        });
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let soft = limit.rlim_cur;
    if sockets as u64 + SPARE > soft {
        return Err(Error::config(
            "sockets",
            format!(
                "{sockets} sockets need about {} descriptors but RLIMIT_NOFILE allows {soft}: raise the hard limit (ulimit -Hn)",
                sockets as u64 + SPARE
            ),
        ));
    }
    grow_table(sockets as u64 + SPARE, soft);
    Ok(soft)
}

/// Grows the descriptor table to hold `wanted` descriptors now. Linux doubles it as
/// descriptors are opened, and in a multi-threaded process each doubling waits for an RCU
/// grace period (~20 ms) while every thread opening a descriptor waits too: the harness's
/// own `socket()` calls stalled at 256, 512 … 4,096 sockets and counted the stall in the
/// server's connect latency. The kernel never shrinks the table. Best effort.
fn grow_table(wanted: u64, soft: u64) {
    let Ok(highest) = libc::c_int::try_from(wanted.min(soft.saturating_sub(1))) else {
        return;
    };
    let Ok(anchor) = std::fs::File::open("/dev/null") else {
        return;
    };
    // SAFETY: `anchor` is open for the whole call; F_DUPFD_CLOEXEC only creates a new
    // descriptor, closed right after (nothing else refers to it).
    unsafe {
        let fd = libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&anchor),
            libc::F_DUPFD_CLOEXEC,
            highest,
        );
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn raises_to_at_least_what_was_there() {
        let soft = super::raise_nofile(0).unwrap();
        assert!(soft >= 256);
        assert!(super::raise_nofile(usize::MAX / 2).is_err());
    }

    #[test]
    fn the_descriptor_table_is_grown_for_the_sockets() {
        let soft = super::raise_nofile(0).unwrap();
        let sockets = 4000.min(soft.saturating_sub(super::SPARE + 1)) as usize;
        super::raise_nofile(sockets).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let table: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(
            table >= sockets as u64 + super::SPARE,
            "FDSize {table} for {sockets} sockets"
        );
    }
}
