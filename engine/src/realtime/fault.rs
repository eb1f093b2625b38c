//! Test-only fault hooks, compiled in debug builds only (`cfg(debug_assertions)`): never
//! part of a release binary. Armed by the `FLUXBASE_TEST_FAULTS` environment variable of
//! the server process (a comma-separated list), read once.
//!
//! - `dispatcher_panic`: the dispatcher panics after queueing a change to its first
//!   recipient when the change's new row has a `fault` column saying `panic_once` (the
//!   first time that change is dispatched) or `panic_always` (every time: a poison change).
//! - `slow_restarts`: a failed actor waits 2 s before it runs again (tests observe the
//!   degraded health in between without racing a 200 ms window).
//! - `role_reload_fails_once`: the first re-read of RLS facts after a role change fails,
//!   as it would with the database away (the watcher must retry, not keep old facts).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use fluxbase_replication::{Change, Transaction};
use serde_json::Value;

/// The variable that arms the hooks.
pub const VAR: &str = "FLUXBASE_TEST_FAULTS";

/// Whether fault `name` is armed.
pub(crate) fn armed(name: &str) -> bool {
    static FAULTS: OnceLock<Vec<String>> = OnceLock::new();
    FAULTS
        .get_or_init(|| {
            std::env::var(VAR)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|f| f == name)
}

/// Called by the dispatcher once a change is queued for its first recipient.
pub(crate) fn after_first_delivery(tx: &Transaction, index: u32, change: &Change) {
    if !armed("dispatcher_panic") {
        return;
    }
    let fault = change
        .record
        .as_ref()
        .and_then(|r| r.get("fault"))
        .and_then(Value::as_str);
    let lsn = tx.commit_lsn;
    match fault {
        Some("panic_once") => {
            static SEEN: OnceLock<Mutex<HashSet<(u64, u32)>>> = OnceLock::new();
            let first = SEEN
                .get_or_init(Mutex::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((lsn.0, index));
            if first {
                panic!("test fault: dispatcher panic at lsn {lsn} change {index}");
            }
        }
        Some("panic_always") => panic!("test fault: poison change at lsn {lsn} change {index}"),
        _ => {}
    }
}

/// Whether the re-read after a role change is to fail this time (`role_reload_fails_once`:
/// the first time only).
pub(crate) fn role_reload_fails() -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILED: AtomicBool = AtomicBool::new(false);
    armed("role_reload_fails_once") && !FAILED.swap(true, Ordering::Relaxed)
}
