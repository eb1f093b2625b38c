//! The harness binary end to end, without a Fluxbase server: `ws-ceiling` and
//! `rest --baseline http-floor` (which start their own servers, child processes; the floor
//! on a real, migrated PostgreSQL) and the command line's refusals. The scenarios that
//! need a server run in `fluxbase-api`'s tests (`cargo test -p fluxbase-api --test main
//! loadtest`).

mod ceiling;
mod cli;
mod floor;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the harness binary with `args`.
pub fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fluxbase-loadtest"))
        .args(args)
        .output()
        .expect("the harness binary runs")
}

/// A fresh path for a JSON report, removed when dropped.
pub struct ReportPath(pub PathBuf);

impl ReportPath {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "fluxbase-loadtest-{name}-{}-{:08x}.json",
            std::process::id(),
            rand::random::<u32>()
        ));
        ReportPath(path)
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    /// The report the run wrote.
    pub fn read(&self) -> serde_json::Value {
        let bytes = std::fs::read(&self.0).expect("the run wrote its report");
        serde_json::from_slice(&bytes).expect("the report is JSON")
    }
}

impl Drop for ReportPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
