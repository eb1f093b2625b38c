//! What a run does: the scenario, its scale and bounds, and where the server is.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};

/// Default server: the runbook's local address.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8080";
/// Default number of subscribed sockets (small: a run must be safe to start by mistake).
pub const DEFAULT_SOCKETS: usize = 100;
/// Default number of sockets that never read, for `slow-clients`.
pub const DEFAULT_SLOW_SOCKETS: usize = 10;
/// Default target rate: writes/s for realtime scenarios, requests/s for `rest`.
pub const DEFAULT_RATE: f64 = 100.0;
/// Default number of writer connections to PostgreSQL.
pub const DEFAULT_WRITERS: usize = 4;
/// Default measured phase.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default time to wait for in-flight events after the last write.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
/// Default socket opening rate (connections/s); 0 means as fast as the concurrency cap allows.
pub const DEFAULT_CONNECT_RATE: f64 = 0.0;
/// Default cap on handshakes in flight at once.
pub const DEFAULT_CONNECT_CONCURRENCY: usize = 256;
/// Default bound on one TCP connect + WebSocket handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on waiting for every subscription's `ack`.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of 127.0.0.x source addresses sockets are spread over.
pub const DEFAULT_SOURCE_ADDRS: u8 = 16;
/// Default client heartbeat period (the server's idle timeouts are longer).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(25);
/// Default size of each written row's `payload` column.
pub const DEFAULT_PAYLOAD_BYTES: usize = 64;
/// Default REST path; `{table}` and `{id}` are substituted.
pub const DEFAULT_REST_PATH: &str = "/health";
/// Default number of keep-alive HTTP connections for `rest`.
pub const DEFAULT_CONNECTIONS: usize = 32;
/// Default rows seeded for `rest` when the path names `{table}`.
pub const DEFAULT_REST_ROWS: u64 = 1000;
/// Default period of server CPU/RSS samples.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Default rows per transaction: one row per commit, as before the flag existed.
pub const DEFAULT_ROWS_PER_COMMIT: usize = 1;
/// Most rows one transaction (or one REST insert) may carry: issue 12's bulk insert is
/// 10,000 rows.
pub const MAX_ROWS_PER_COMMIT: usize = 10_000;

/// Hard bounds: the harness stops by itself and cannot be asked for an unbounded run.
const MAX_SOCKETS: usize = 200_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_DRAIN: Duration = Duration::from_secs(300);
const MAX_RATE: f64 = 1_000_000.0;

/// The scenarios of issue 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// N sockets, one distinct user each, on a table with an owner-only RLS policy;
    /// writers insert (and optionally update) rows for random owners.
    RealtimeOwner,
    /// N sockets on a table without RLS; every change goes to every socket.
    RealtimePublic,
    /// `realtime-public` plus K sockets that never read.
    SlowClients,
    /// N connections opened at C/s; each subscribes; measures time to ack.
    ConnectStorm,
    /// HTTP requests against a configurable path.
    Rest,
    /// `connections` clients signing up and signing in at once (password hashing).
    Auth,
    /// The same N sockets fed by a bare WebSocket broadcast loop in a child process of
    /// the harness: the most this machine pushes to N sockets, to state `realtime-public`
    /// as a fraction of it.
    WsCeiling,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::RealtimeOwner => "realtime-owner",
            Scenario::RealtimePublic => "realtime-public",
            Scenario::SlowClients => "slow-clients",
            Scenario::ConnectStorm => "connect-storm",
            Scenario::Rest => "rest",
            Scenario::Auth => "auth",
            Scenario::WsCeiling => "ws-ceiling",
        }
    }

    /// Whether the scenario needs `database_url` (its own table).
    pub fn needs_database(self) -> bool {
        self.writes_rows() || self == Scenario::ConnectStorm
    }

    /// Whether the scenario writes rows.
    pub fn writes_rows(self) -> bool {
        matches!(
            self,
            Scenario::RealtimeOwner | Scenario::RealtimePublic | Scenario::SlowClients
        )
    }

    /// Whether the scenario opens realtime sockets.
    pub fn opens_sockets(self) -> bool {
        !matches!(self, Scenario::Rest | Scenario::Auth)
    }
}

/// What a `rest` run asks for, with the tables it seeds (issue 12's cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestCase {
    /// One row by primary key under owner RLS (`?id=eq.N`).
    GetByKey,
    /// 100 of the caller's rows, ordered, each with its list embedded (many-to-one).
    ListEmbed,
    /// `rows_per_commit` rows inserted in one request (one transaction).
    Insert,
}

impl RestCase {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            RestCase::GetByKey => "get-by-key",
            RestCase::ListEmbed => "list-embed",
            RestCase::Insert => "insert",
        }
    }
}

/// Who a `rest` case is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// The server's REST API over HTTP.
    #[default]
    Http,
    /// The same transaction the server runs for the request, sent straight to PostgreSQL
    /// (pipelined, prepared) over as many connections: what REST is a ratio of.
    Sql,
    /// The same HTTP requests to the thinnest HTTP server on the server's stack (see
    /// [`crate::floor`]), which verifies the token and runs the SQL baseline's transaction
    /// on a pool of its own: the floor any server on this stack stands on.
    HttpFloor,
}

/// Which of the server's two REST mounts a case uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestApi {
    /// `/rest/v1/{table}`: PostgREST's paths, `apikey` + `Authorization: Bearer`.
    #[default]
    PostgRest,
    /// `/api/v1/tables/{table}`: Fluxbase's paths, `Authorization: Bearer`.
    Fluxbase,
}

/// Everything a run needs. Build with [`ScenarioConfig::new`] and adjust fields.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioConfig {
    pub scenario: Scenario,
    /// `http://host:port`, loopback only.
    pub server_url: String,
    /// More instances of one scaled-out cluster (`--spread`): sockets are spread round
    /// robin over `server_url` and these. Loopback only.
    pub spread_urls: Vec<String>,
    /// PostgreSQL URL for the harness's own tables and writes; loopback or unix socket.
    #[serde(serialize_with = "redact_url")]
    pub database_url: Option<String>,
    /// The server's JWT secret, to mint user tokens. Never serialized.
    #[serde(skip)]
    pub jwt_secret: Option<String>,
    /// Local server pid, to sample CPU and RSS from `/proc`.
    pub server_pid: Option<u32>,
    /// Subscribed (fast) sockets; for `connect-storm`, connections to open.
    pub sockets: usize,
    /// `slow-clients`: sockets that subscribe and then never read.
    pub slow_sockets: usize,
    /// Writes/s (realtime) or requests/s (`rest`, 0 = as fast as possible).
    pub rate: f64,
    /// Writer connections to PostgreSQL; the rate is split between them.
    pub writers: usize,
    /// Share of writes that update an existing row of the owner instead of inserting.
    pub update_percent: u8,
    /// Bytes of the `payload` column of each write.
    pub payload_bytes: usize,
    /// The measured phase (writes, requests, or holding the storm's sockets open).
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// After the measured phase, how long to wait for in-flight events.
    #[serde(serialize_with = "secs")]
    pub drain: Duration,
    /// Sockets opened per second (0 = bounded by `connect_concurrency` only).
    pub connect_rate: f64,
    /// Handshakes in flight at once.
    pub connect_concurrency: usize,
    #[serde(serialize_with = "secs")]
    pub connect_timeout: Duration,
    /// Bound on waiting for all subscriptions to be acknowledged before writing.
    #[serde(serialize_with = "secs")]
    pub ack_timeout: Duration,
    /// Sockets are bound to 127.0.0.1 … 127.0.0.N round robin (IPv4 targets only).
    pub source_addrs: u8,
    /// `realtime-public` / `slow-clients` / `connect-storm`: subscribe without a token.
    pub anon: bool,
    /// `realtime-owner`: also send the filter `user_id=eq.<uuid>` (filter index path).
    pub owner_filter: bool,
    /// Event the subscriptions ask for (`*`, `INSERT`, `UPDATE`, `DELETE`).
    pub event: String,
    /// Suffix of the harness's table names; random when `None`.
    pub table_suffix: Option<String>,
    /// Keep the tables after the run (default: drop them).
    pub keep_tables: bool,
    #[serde(serialize_with = "secs")]
    pub heartbeat_interval: Duration,
    /// `rest`: path template; `{table}` → the seeded table, `{id}` → a random seeded id.
    pub rest_path: String,
    /// `rest`: `GET` or `POST`.
    pub rest_method: String,
    /// `rest`: body template for `POST` (`{seq}` and `{uuid}` substituted).
    pub rest_body: Option<String>,
    /// `rest`: rows seeded when the path names `{table}`.
    pub rest_rows: u64,
    /// `rest`: keep-alive connections (closed loop, one request in flight each).
    pub connections: usize,
    /// Rows each writer commits per transaction (realtime scenarios), or rows per
    /// request (`rest --case insert`); the rate stays in rows/s.
    pub rows_per_commit: usize,
    /// `rest`: a case of issue 12 instead of the `rest_path` template.
    pub rest_case: Option<RestCase>,
    /// `rest --case`: the server over HTTP, or the same SQL straight to PostgreSQL.
    pub baseline: Baseline,
    /// `rest --case` over HTTP: which mount.
    pub rest_api: RestApi,
    /// `rest --case`: signed-in users — a row of `auth.users` and a live session in
    /// `auth.sessions` each, their tokens naming it — so the server's in-transaction
    /// session probe runs (and the SQL baseline runs the same probe). Without it the
    /// tokens name no session and the probe does not run.
    pub rest_sessions: bool,
    /// `ws-ceiling`: the harness binary to start as the bare WebSocket server; `None` is
    /// this process's own executable (the `fluxbase-loadtest` binary).
    pub ceiling_exe: Option<std::path::PathBuf>,
    /// Print a progress line on stderr.
    pub progress: bool,
    #[serde(serialize_with = "secs")]
    pub sample_interval: Duration,
}

impl ScenarioConfig {
    /// A config with the defaults of every key.
    pub fn new(scenario: Scenario) -> Self {
        ScenarioConfig {
            scenario,
            server_url: DEFAULT_SERVER_URL.to_owned(),
            spread_urls: Vec::new(),
            database_url: None,
            jwt_secret: None,
            server_pid: None,
            sockets: DEFAULT_SOCKETS,
            slow_sockets: if scenario == Scenario::SlowClients {
                DEFAULT_SLOW_SOCKETS
            } else {
                0
            },
            rate: DEFAULT_RATE,
            writers: DEFAULT_WRITERS,
            update_percent: 0,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            duration: DEFAULT_DURATION,
            drain: DEFAULT_DRAIN,
            connect_rate: DEFAULT_CONNECT_RATE,
            connect_concurrency: DEFAULT_CONNECT_CONCURRENCY,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            source_addrs: DEFAULT_SOURCE_ADDRS,
            anon: false,
            owner_filter: false,
            event: "*".to_owned(),
            table_suffix: None,
            keep_tables: false,
            heartbeat_interval: DEFAULT_HEARTBEAT,
            rest_path: DEFAULT_REST_PATH.to_owned(),
            rest_method: "GET".to_owned(),
            rest_body: None,
            rest_rows: DEFAULT_REST_ROWS,
            connections: DEFAULT_CONNECTIONS,
            rows_per_commit: DEFAULT_ROWS_PER_COMMIT,
            rest_case: None,
            baseline: Baseline::Http,
            rest_api: RestApi::PostgRest,
            rest_sessions: false,
            ceiling_exe: None,
            progress: false,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
        }
    }

    /// Checks bounds and required keys; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let s = self.scenario;
        if s.opens_sockets() && self.sockets == 0 {
            return Err(Error::config("sockets", "must be at least 1"));
        }
        if self.sockets + self.slow_sockets > MAX_SOCKETS {
            return Err(Error::config(
                "sockets",
                format!("at most {MAX_SOCKETS} in all"),
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(Error::config("duration", "must be between 1s and 3600s"));
        }
        if self.drain > MAX_DRAIN {
            return Err(Error::config("drain", "at most 300s"));
        }
        if !(self.rate.is_finite() && (0.0..=MAX_RATE).contains(&self.rate)) {
            return Err(Error::config("rate", "must be between 0 and 1,000,000"));
        }
        if s.writes_rows() && self.rate <= 0.0 {
            return Err(Error::config(
                "rate",
                "realtime scenarios need a positive write rate",
            ));
        }
        self.validate_rows_per_commit()?;
        if !(self.connect_rate.is_finite() && self.connect_rate >= 0.0) {
            return Err(Error::config("connect_rate", "must be 0 or positive"));
        }
        if self.connect_concurrency == 0 {
            return Err(Error::config("connect_concurrency", "must be at least 1"));
        }
        if self.source_addrs == 0 || self.source_addrs > 254 {
            return Err(Error::config("source_addrs", "must be between 1 and 254"));
        }
        if s.writes_rows() && (self.writers == 0 || self.writers > 64) {
            return Err(Error::config("writers", "must be between 1 and 64"));
        }
        if self.update_percent > 100 {
            return Err(Error::config("update_percent", "must be between 0 and 100"));
        }
        if self.payload_bytes > 1 << 20 {
            return Err(Error::config("payload_bytes", "at most 1 MiB"));
        }
        if s == Scenario::SlowClients && self.slow_sockets == 0 {
            return Err(Error::config(
                "slow_sockets",
                "slow-clients needs at least 1",
            ));
        }
        if matches!(s, Scenario::Rest | Scenario::Auth)
            && (self.connections == 0 || self.connections > 10_000)
        {
            return Err(Error::config("connections", "must be between 1 and 10,000"));
        }
        if !matches!(self.event.as_str(), "*" | "INSERT" | "UPDATE" | "DELETE") {
            return Err(Error::config("event", "one of *, INSERT, UPDATE, DELETE"));
        }
        if !matches!(self.rest_method.as_str(), "GET" | "POST") {
            return Err(Error::config("rest_method", "GET or POST"));
        }
        if !self.rest_path.starts_with('/') || self.rest_path.contains(char::is_whitespace) {
            return Err(Error::config(
                "rest_path",
                "an absolute path without spaces",
            ));
        }
        if let Some(suffix) = &self.table_suffix {
            let ok = !suffix.is_empty()
                && suffix.len() <= 24
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(Error::config("table_suffix", "1–24 of [a-z0-9_]"));
            }
        }
        self.validate_rest_case()?;
        let needs_db = s.needs_database()
            || (s == Scenario::Rest
                && (self.rest_path.contains("{table}") || self.rest_case.is_some()));
        if needs_db && self.database_url.is_none() {
            return Err(Error::config(
                "database_url",
                format!("{} needs its own table: give --database-url", s.name()),
            ));
        }
        let needs_token = match s {
            Scenario::RealtimeOwner => true,
            Scenario::RealtimePublic | Scenario::SlowClients | Scenario::ConnectStorm => !self.anon,
            // REST cases over HTTP are sent as their users, to the server or to the floor
            // (which verifies them); the SQL baseline sets the same claims without a token.
            Scenario::Rest => self.rest_case.is_some() && self.baseline != Baseline::Sql,
            Scenario::Auth | Scenario::WsCeiling => false,
        };
        if needs_token && self.jwt_secret.as_deref().is_none_or(str::is_empty) {
            return Err(Error::config(
                "jwt_secret",
                "needed to mint user tokens: give --jwt-secret or FLUXBASE_JWT_SECRET (or --anon)",
            ));
        }
        if s == Scenario::RealtimeOwner && self.anon {
            return Err(Error::config(
                "anon",
                "realtime-owner needs one authenticated user per socket",
            ));
        }
        Ok(())
    }

    /// `--rows-per-commit`: bounded, only where rows are written, and small enough that
    /// every writer commits at least one full transaction during the run.
    fn validate_rows_per_commit(&self) -> Result<()> {
        let n = self.rows_per_commit;
        if !(1..=MAX_ROWS_PER_COMMIT).contains(&n) {
            return Err(Error::config(
                "rows_per_commit",
                format!("--rows-per-commit must be between 1 and {MAX_ROWS_PER_COMMIT}, got {n}"),
            ));
        }
        let insert_case =
            self.scenario == Scenario::Rest && self.rest_case == Some(RestCase::Insert);
        if n > 1 && !self.scenario.writes_rows() && !insert_case {
            return Err(Error::config(
                "rows_per_commit",
                format!(
                    "--rows-per-commit applies to realtime-owner, realtime-public, slow-clients and `rest --case insert`, not {}",
                    self.scenario.name()
                ),
            ));
        }
        if self.scenario.writes_rows() && self.writers > 0 {
            // Seconds one writer takes to have a full transaction due.
            let fill = n as f64 * self.writers as f64 / self.rate;
            if fill > self.duration.as_secs_f64() {
                return Err(Error::config(
                    "rows_per_commit",
                    format!(
                        "--rows-per-commit {n} at --rate {} rows/s over {} writers fills one transaction every {fill:.1}s, longer than --duration: raise --rate or lower --rows-per-commit or --writers",
                        self.rate, self.writers
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `--case`, `--baseline`: only for `rest`, and not mixed with a `--path` template.
    fn validate_rest_case(&self) -> Result<()> {
        let rest = self.scenario == Scenario::Rest;
        if self.rest_case.is_some() && !rest {
            return Err(Error::config(
                "rest_case",
                "--case applies to the rest scenario only",
            ));
        }
        if self.baseline != Baseline::Http && self.rest_case.is_none() {
            return Err(Error::config(
                "baseline",
                "--baseline sql and http-floor need --case (get-by-key, list-embed or insert): a baseline runs the SQL of a known request",
            ));
        }
        if self.rest_sessions && self.rest_case.is_none() {
            return Err(Error::config(
                "rest_sessions",
                "--sessions needs --case: the cases' users are the ones given sessions",
            ));
        }
        if self.rest_case.is_some() && self.rest_path != DEFAULT_REST_PATH {
            return Err(Error::config(
                "rest_path",
                "--path and --case exclude each other: a case builds its own paths",
            ));
        }
        Ok(())
    }
}

/// Durations as seconds in reports.
fn secs<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The database URL without its password.
fn redact_url<S: Serializer>(url: &Option<String>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match url {
        None => s.serialize_none(),
        Some(url) => s.serialize_str(&redact_password(url)),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; key-value strings
/// lose their `password=` value.
pub(crate) fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> ScenarioConfig {
        let mut c = ScenarioConfig::new(Scenario::RealtimeOwner);
        c.database_url = Some("postgres://u:pw@127.0.0.1/db".into());
        c.jwt_secret = Some("secret".into());
        c
    }

    #[test]
    fn defaults_validate_once_required_keys_are_given() {
        owner().validate().unwrap();
        ScenarioConfig::new(Scenario::Rest).validate().unwrap();
        let mut storm = ScenarioConfig::new(Scenario::ConnectStorm);
        storm.anon = true;
        storm.database_url = Some("postgres://u@localhost/db".into());
        storm.validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = owner();
        c.jwt_secret = None;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                key: "jwt_secret",
                ..
            })
        ));
        let mut c = owner();
        c.database_url = None;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                key: "database_url",
                ..
            })
        ));
        let mut c = owner();
        c.duration = Duration::from_secs(7200);
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                key: "duration",
                ..
            })
        ));
        let mut c = owner();
        c.table_suffix = Some("x; drop".into());
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                key: "table_suffix",
                ..
            })
        ));
    }

    #[test]
    fn sessions_go_with_a_case() {
        let mut c = ScenarioConfig::new(Scenario::Rest);
        c.rest_sessions = true;
        assert!(matches!(
            c.validate(),
            Err(Error::Config {
                key: "rest_sessions",
                ..
            })
        ));
        c.rest_case = Some(RestCase::GetByKey);
        c.database_url = Some("postgres://u@127.0.0.1/db".into());
        c.jwt_secret = Some("secret".into());
        c.validate().unwrap();
        assert!(
            serde_json::to_string(&c)
                .unwrap()
                .contains("\"rest_sessions\":true")
        );
    }

    #[test]
    fn secrets_stay_out_of_reports() {
        let json = serde_json::to_string(&owner()).unwrap();
        assert!(!json.contains("pw@"), "{json}");
        assert!(!json.contains("\"secret\""), "{json}");
        assert!(json.contains("u:***@127.0.0.1"));
        assert_eq!(
            redact_password("host=/tmp password=x user=y"),
            "host=/tmp password=*** user=y"
        );
    }
}
