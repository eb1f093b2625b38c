//! fluxbase-loadtest: drives a running Fluxbase server over the network only — the
//! `/realtime` WebSocket, the HTTP API, and a direct PostgreSQL connection for writes —
//! and reports delivered / lost / duplicated events, latency percentiles, throughput,
//! and the server's CPU and RSS. Baselines put the server's figures in proportion:
//! `ws-ceiling` (a bare WebSocket broadcast server of its own, see [`ceiling`]),
//! `rest --baseline sql` (the REST request's transaction sent straight to PostgreSQL) and
//! `rest --baseline http-floor` (the same HTTP requests to a bare HTTP server running that
//! transaction, see [`floor`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), fluxbase_loadtest::Error> {
//! use fluxbase_loadtest::{run, Scenario, ScenarioConfig};
//! let mut config = ScenarioConfig::new(Scenario::RealtimeOwner);
//! config.server_url = "http://127.0.0.1:8080".into();
//! config.database_url = Some("postgres://postgres:pw@127.0.0.1:5432/fluxbase".into());
//! config.jwt_secret = Some("the server's secret".into());
//! config.sockets = 50;
//! config.duration = std::time::Duration::from_secs(3);
//! let report = run(&config).await?;
//! assert!(report.is_clean(), "{}", report.render());
//! # Ok(()) }
//! ```
//!
//! Every target must be a loopback address; every run is bounded in sockets and time.

pub mod ceiling;
pub mod child;
pub mod config;
pub mod error;
pub mod fleet;
pub mod floor;
pub mod http;
pub mod latency;
pub mod ledger;
pub mod limits;
pub mod process;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod socket;
pub mod table;
pub mod tally;
pub mod target;
pub mod todos;
pub mod token;
pub mod writer;

pub use config::{Scenario, ScenarioConfig};
pub use error::{Error, Result};
pub use report::Report;

/// Runs one scenario to completion and returns its report.
///
/// Validates the config, refuses non-loopback targets, raises the descriptor limit,
/// checks that the server answers `/health`, then runs the scenario; the harness's
/// tables are dropped afterwards unless `keep_tables` is set.
pub async fn run(config: &ScenarioConfig) -> Result<Report> {
    config.validate()?;
    // Refuse remote targets before anything else touches the network.
    target::Target::parse(&config.server_url)?;
    if let Some(url) = &config.database_url {
        target::check_database_url(url)?;
    }
    let nofile = limits::raise_nofile(config.sockets + config.slow_sockets + config.connections)?;
    if config.scenario == Scenario::WsCeiling {
        // Its target is the child server it starts itself.
        return scenario::ceiling::run(config, nofile).await;
    }
    if config.scenario == Scenario::Rest && config.baseline == config::Baseline::HttpFloor {
        // So is the HTTP floor's; only the database is needed.
        return scenario::rest::run_floor(config, nofile).await;
    }
    let ctx = scenario::Context::prepare(config, nofile).await?;
    match config.scenario {
        Scenario::Rest => scenario::rest::run(config, ctx).await,
        Scenario::Auth => scenario::auth::run(config, ctx).await,
        _ => scenario::realtime::run(config, ctx).await,
    }
}
