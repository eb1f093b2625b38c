//! fluxbase-loadtest: drives a running Fluxbase server over the network only.
//!
//! The scenarios (realtime-owner, realtime-public, slow-clients, connect-storm, rest) come
//! with issue 5, once the realtime engine exists; until then this binary says so instead of
//! pretending to measure anything.

fn main() -> std::process::ExitCode {
    eprintln!(
        "fluxbase-loadtest: no scenarios yet — they arrive with the realtime engine (issue 5)"
    );
    std::process::ExitCode::from(2)
}
