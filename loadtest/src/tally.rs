//! Errors during a run, counted by kind (`connect:refused`, `close:4008`, `http:503`…).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A shared counter of error kinds.
///
/// A std `Mutex`: errors are rare next to events, and the lock is never held across
/// `.await`.
#[derive(Debug, Default)]
pub struct ErrorTally {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl ErrorTally {
    /// Counts one error of `kind`.
    pub fn add(&self, kind: impl Into<String>) {
        self.add_n(kind, 1);
    }

    /// Counts `n` errors of `kind`.
    pub fn add_n(&self, kind: impl Into<String>, n: u64) {
        if n == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(kind.into()).or_default() += n;
    }

    /// Total errors counted so far.
    pub fn total(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A copy of the counts, sorted by kind.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A short, stable kind for an I/O error (`refused`, `timed_out`, `reset`…).
pub fn io_kind(err: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match err.kind() {
        ConnectionRefused => "refused".into(),
        ConnectionReset => "reset".into(),
        ConnectionAborted => "aborted".into(),
        TimedOut => "timed_out".into(),
        AddrInUse => "addr_in_use".into(),
        AddrNotAvailable => "addr_not_available".into(),
        BrokenPipe => "broken_pipe".into(),
        UnexpectedEof => "eof".into(),
        _ => match err.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => "too_many_open_files".into(),
            Some(code) => format!("os_{code}"),
            None => format!("{:?}", err.kind()).to_lowercase(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind() {
        let tally = ErrorTally::default();
        tally.add("close:4008");
        tally.add("close:4008");
        tally.add_n("http:503", 3);
        tally.add_n("never", 0);
        assert_eq!(tally.total(), 5);
        let snapshot = tally.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot["close:4008"], 2);
    }
}
