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
    Ok(soft)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raises_to_at_least_what_was_there() {
        let soft = super::raise_nofile(0).unwrap();
        assert!(soft >= 256);
        assert!(super::raise_nofile(usize::MAX / 2).is_err());
    }
}
