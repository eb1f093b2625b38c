//! The `fluxbase-loadtest` binary: parses the command line into a [`ScenarioConfig`],
//! runs it, prints the report table and writes the JSON report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use fluxbase_loadtest::config::{
    self as defaults, Baseline, RestApi, RestCase, Scenario, ScenarioConfig,
};

/// Load-test a local Fluxbase server: realtime sockets, changes/s, latency, REST.
#[derive(Debug, Parser)]
#[command(name = "fluxbase-loadtest", version)]
struct Cli {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: ScenarioArg,
    /// Server base URL (loopback only).
    #[arg(long, default_value = defaults::DEFAULT_SERVER_URL)]
    url: String,
    /// PostgreSQL URL for the harness's tables and writes (loopback or unix socket).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The server's JWT secret, to mint user tokens.
    #[arg(long, env = "FLUXBASE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Other instances of a scaled-out cluster (comma-separated URLs): sockets are spread
    /// round robin over `--url` and these; writes and checks go through `--url`.
    #[arg(long, value_delimiter = ',')]
    spread: Vec<String>,
    /// Local server pid: sample its CPU and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Subscribed sockets (connections to open for connect-storm).
    #[arg(long, default_value_t = defaults::DEFAULT_SOCKETS)]
    sockets: usize,
    /// slow-clients: sockets that never read.
    #[arg(long, default_value_t = defaults::DEFAULT_SLOW_SOCKETS)]
    slow: usize,
    /// Rows/s (realtime), requests/s (rest; 0 = as fast as possible), or broadcast
    /// messages/s to every socket (ws-ceiling; 0 = as fast as the sockets drain).
    #[arg(long, default_value_t = defaults::DEFAULT_RATE)]
    rate: f64,
    /// Rows per transaction of each writer (realtime), or per request (rest --case insert).
    #[arg(long, default_value_t = defaults::DEFAULT_ROWS_PER_COMMIT)]
    rows_per_commit: usize,
    /// Writer connections to PostgreSQL.
    #[arg(long, default_value_t = defaults::DEFAULT_WRITERS)]
    writers: usize,
    /// Percentage of writes that update the owner's last row instead of inserting.
    #[arg(long, default_value_t = 0)]
    update_percent: u8,
    /// Bytes of each row's payload column.
    #[arg(long, default_value_t = defaults::DEFAULT_PAYLOAD_BYTES)]
    payload_bytes: usize,
    /// Measured phase, seconds.
    #[arg(long, default_value_t = defaults::DEFAULT_DURATION.as_secs_f64())]
    duration: f64,
    /// Wait for in-flight events after the last write, seconds.
    #[arg(long, default_value_t = defaults::DEFAULT_DRAIN.as_secs_f64())]
    drain: f64,
    /// Sockets opened per second (0 = only bounded by --connect-concurrency).
    #[arg(long, default_value_t = defaults::DEFAULT_CONNECT_RATE)]
    connect_rate: f64,
    /// Handshakes + subscriptions in flight at once.
    #[arg(long, default_value_t = defaults::DEFAULT_CONNECT_CONCURRENCY)]
    connect_concurrency: usize,
    /// Bound on one connect + handshake, seconds.
    #[arg(long, default_value_t = defaults::DEFAULT_CONNECT_TIMEOUT.as_secs_f64())]
    connect_timeout: f64,
    /// Bound on waiting for subscription acks, seconds.
    #[arg(long, default_value_t = defaults::DEFAULT_ACK_TIMEOUT.as_secs_f64())]
    ack_timeout: f64,
    /// Spread sockets over 127.0.0.1..=127.0.0.N.
    #[arg(long, default_value_t = defaults::DEFAULT_SOURCE_ADDRS)]
    source_addrs: u8,
    /// Subscribe without a token (public, slow-clients, connect-storm).
    #[arg(long)]
    anon: bool,
    /// realtime-owner: also filter `user_id=eq.<uuid>`.
    #[arg(long)]
    owner_filter: bool,
    /// Event to subscribe to: *, INSERT, UPDATE, DELETE.
    #[arg(long, default_value = "*")]
    event: String,
    /// Table name suffix (default: random).
    #[arg(long)]
    table_suffix: Option<String>,
    /// Keep the harness's table after the run.
    #[arg(long)]
    keep_tables: bool,
    /// rest: path template ({table}, {id}).
    #[arg(long, default_value = defaults::DEFAULT_REST_PATH)]
    path: String,
    /// rest: GET or POST.
    #[arg(long, default_value = "GET")]
    method: String,
    /// rest: POST body template ({seq}, {uuid}).
    #[arg(long)]
    body: Option<String>,
    /// rest: rows to seed when --path names {table}.
    #[arg(long, default_value_t = defaults::DEFAULT_REST_ROWS)]
    rows: u64,
    /// rest: keep-alive connections (or PostgreSQL connections for --baseline sql); auth:
    /// concurrent clients.
    #[arg(long, default_value_t = defaults::DEFAULT_CONNECTIONS)]
    connections: usize,
    /// rest: an issue-12 case on seeded tables instead of --path.
    #[arg(long = "case", value_enum)]
    rest_case: Option<CaseArg>,
    /// rest --case: the server over HTTP (http); the same transaction straight to
    /// PostgreSQL (sql); or the same HTTP requests to the thinnest HTTP server on the
    /// server's stack (actix-web, one worker per core, no middleware), which verifies the
    /// token and runs sql's transaction on 20 pooled connections of its own (http-floor: a
    /// child process of the harness; --url is not used, only the database).
    #[arg(long, value_enum, default_value = "http")]
    baseline: BaselineArg,
    /// rest --case over HTTP: /rest/v1 (PostgREST) or /api/v1/tables (Fluxbase).
    #[arg(long, value_enum, default_value = "rest-v1")]
    api: ApiArg,
    /// rest --case: signed-in users (auth.users rows and live auth.sessions, tokens naming
    /// them), so the server's in-transaction session probe runs; the SQL baseline runs the
    /// same probe.
    #[arg(long)]
    sessions: bool,
    /// ws-ceiling: the harness binary to start as the bare WebSocket server (default: this one).
    #[arg(long)]
    ceiling_exe: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Exit 1 unless the run is clean (no loss, duplicate, leak, failed socket).
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    RealtimeOwner,
    RealtimePublic,
    SlowClients,
    ConnectStorm,
    Rest,
    Auth,
    WsCeiling,
}

/// `--case`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CaseArg {
    GetByKey,
    ListEmbed,
    Insert,
}

/// `--baseline`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BaselineArg {
    Http,
    Sql,
    HttpFloor,
}

/// `--api`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ApiArg {
    RestV1,
    ApiV1,
}

impl From<ScenarioArg> for Scenario {
    fn from(arg: ScenarioArg) -> Self {
        match arg {
            ScenarioArg::RealtimeOwner => Scenario::RealtimeOwner,
            ScenarioArg::RealtimePublic => Scenario::RealtimePublic,
            ScenarioArg::SlowClients => Scenario::SlowClients,
            ScenarioArg::ConnectStorm => Scenario::ConnectStorm,
            ScenarioArg::Rest => Scenario::Rest,
            ScenarioArg::Auth => Scenario::Auth,
            ScenarioArg::WsCeiling => Scenario::WsCeiling,
        }
    }
}

fn secs(value: f64, key: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{key} must be a non-negative number of seconds"))
}

impl Cli {
    fn config(&self) -> anyhow::Result<ScenarioConfig> {
        let scenario: Scenario = self.scenario.into();
        let mut c = ScenarioConfig::new(scenario);
        c.server_url = self.url.clone();
        c.spread_urls = self.spread.clone();
        c.database_url = self.database_url.clone();
        c.jwt_secret = self.jwt_secret.clone();
        c.server_pid = self.server_pid;
        c.sockets = self.sockets;
        c.slow_sockets = if scenario == Scenario::SlowClients {
            self.slow
        } else {
            0
        };
        c.rate = self.rate;
        c.writers = self.writers;
        c.update_percent = self.update_percent;
        c.payload_bytes = self.payload_bytes;
        c.duration = secs(self.duration, "duration")?;
        c.drain = secs(self.drain, "drain")?;
        c.connect_rate = self.connect_rate;
        c.connect_concurrency = self.connect_concurrency;
        c.connect_timeout = secs(self.connect_timeout, "connect-timeout")?;
        c.ack_timeout = secs(self.ack_timeout, "ack-timeout")?;
        c.source_addrs = self.source_addrs;
        c.anon = self.anon;
        c.owner_filter = self.owner_filter;
        c.event = self.event.clone();
        c.table_suffix = self.table_suffix.clone();
        c.keep_tables = self.keep_tables;
        c.rest_path = self.path.clone();
        c.rest_method = self.method.to_ascii_uppercase();
        c.rest_body = self.body.clone();
        c.rest_rows = self.rows;
        c.connections = self.connections;
        c.rows_per_commit = self.rows_per_commit;
        c.rest_case = self.rest_case.map(|case| match case {
            CaseArg::GetByKey => RestCase::GetByKey,
            CaseArg::ListEmbed => RestCase::ListEmbed,
            CaseArg::Insert => RestCase::Insert,
        });
        c.baseline = match self.baseline {
            BaselineArg::Http => Baseline::Http,
            BaselineArg::Sql => Baseline::Sql,
            BaselineArg::HttpFloor => Baseline::HttpFloor,
        };
        c.rest_api = match self.api {
            ApiArg::RestV1 => RestApi::PostgRest,
            ApiArg::ApiV1 => RestApi::Fluxbase,
        };
        c.rest_sessions = self.sessions;
        c.ceiling_exe = self.ceiling_exe.clone();
        c.progress = !self.quiet;
        Ok(c)
    }
}

fn main() -> ExitCode {
    // `ws-ceiling` and `rest --baseline http-floor` start this binary again as their bare
    // servers; those children are driven over stdin/stdout, not by the command line a
    // person types.
    let first = std::env::args_os().nth(1);
    if first.as_deref() == Some(fluxbase_loadtest::floor::CHILD_ARG.as_ref()) {
        return match fluxbase_loadtest::floor::server::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("fluxbase-loadtest http-floor server: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    if first.as_deref() == Some(fluxbase_loadtest::ceiling::CHILD_ARG.as_ref()) {
        return match fluxbase_loadtest::ceiling::server::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("fluxbase-loadtest ws-ceiling server: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(clean) if clean || !cli.strict => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("fluxbase-loadtest: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<bool> {
    let config = cli.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(fluxbase_loadtest::run(&config))?;
    println!("{}", report.render());
    if let Some(path) = &cli.out {
        let json = serde_json::to_vec_pretty(&report).context("serializing the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(report.is_clean())
}
