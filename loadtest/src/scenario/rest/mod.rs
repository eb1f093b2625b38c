//! `rest`: connections sending requests at a target rate, closed loop (one request in
//! flight per connection). Either a `--path` template (any endpoint), or one of issue 12's
//! cases (`--case`) on seeded todo tables, sent to the server over HTTP or — as the
//! baselines REST is a ratio of — the same transaction straight to PostgreSQL
//! (`--baseline sql`), or the same HTTP requests to the thinnest server on the server's
//! stack running that transaction (`--baseline http-floor`). With `--sessions` the cases'
//! users are signed in: each has a row in `auth.users` and a live session in
//! `auth.sessions` that its token names.

mod case;
mod floor;
mod sessions;
mod sql;
pub mod txn;

pub use case::Shape;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use uuid::Uuid;

use self::sessions::Sessions;
use super::{Context, Samplers};
use crate::config::{Baseline, RestCase, ScenarioConfig};
use crate::error::{Error, Result};
use crate::http::HttpConnection;
use crate::latency::LatencyRecorder;
use crate::progress::Progress;
use crate::report::{Report, RequestStats};
use crate::table::{self, TableKind};
use crate::tally::{ErrorTally, io_kind};
use crate::target::check_database_url;
use crate::todos::TodoTables;
use crate::token::TokenMinter;

/// Rows the list case reads per request (`limit=100`), so each user needs at least these.
pub const LIST_ROWS: u64 = 100;

/// Runs `rest`.
pub async fn run(config: &ScenarioConfig, ctx: Context) -> Result<Report> {
    let users: Vec<Uuid> = (0..config.connections).map(|_| Uuid::new_v4()).collect();
    if let Some(case) = config.rest_case {
        return run_case(config, &ctx, case, &users).await;
    }
    if !config.rest_path.contains("{table}") {
        return run_path(config, &ctx, None, &users).await;
    }
    // The path names `{table}`: an owner-RLS table is created and seeded, row `id`
    // belonging to connection `(id - 1) % connections`, and each connection asks only for
    // its own user's rows (GET by primary key under RLS).
    let db_config = check_database_url(config.database_url.as_deref().unwrap_or_default())?;
    let client = table::connect(&db_config).await?;
    let name = table::table_name("rest", &suffix(config));
    table::create(&client, &name, TableKind::Owner).await?;
    let seeded = seed(&client, &name, config, &users).await;
    let result = match seeded {
        Ok(()) => run_path(config, &ctx, Some(&name), &users).await,
        Err(err) => Err(err),
    };
    if !config.keep_tables {
        table::drop_table(&client, &name).await;
    }
    result
}

/// The run's table suffix.
fn suffix(config: &ScenarioConfig) -> String {
    config
        .table_suffix
        .clone()
        .unwrap_or_else(table::random_suffix)
}

async fn seed(
    client: &tokio_postgres::Client,
    name: &str,
    config: &ScenarioConfig,
    users: &[Uuid],
) -> Result<()> {
    let sql = format!(
        "INSERT INTO public.{name} (user_id, seq, payload)
         SELECT ($3::uuid[])[((g - 1) % array_length($3::uuid[], 1)) + 1], g, repeat('x', $2::int)
         FROM generate_series(1, $1::bigint) g"
    );
    client
        .execute(
            &sql,
            &[
                &(config.rest_rows as i64),
                &(config.payload_bytes as i32),
                &users.to_vec(),
            ],
        )
        .await
        .map_err(Error::database("seeding the rest table"))?;
    Ok(())
}

/// A `--path` template run.
async fn run_path(
    config: &ScenarioConfig,
    ctx: &Context,
    table: Option<&str>,
    users: &[Uuid],
) -> Result<Report> {
    let minter = config
        .jwt_secret
        .as_deref()
        .map(|secret| TokenMinter::new(secret, config.duration.as_secs() + 3600));
    let mut requesters = Vec::with_capacity(users.len());
    for (c, user) in users.iter().enumerate() {
        requesters.push(PathRequester {
            http: HttpConnection::new(ctx.target.clone()),
            token: match &minter {
                Some(m) => Some(m.user(*user)?),
                None => None,
            },
            path: config.rest_path.clone(),
            method: config.rest_method.clone(),
            body: config.rest_body.clone(),
            table: table.unwrap_or("").to_owned(),
            connection: c as u64,
            connections: config.connections as u64,
            rows: config.rest_rows.max(1),
        });
    }
    let mut report = ctx.report(config);
    report.table = table.map(str::to_owned);
    drive(config, ctx, &mut report, requesters, 0).await;
    Ok(report)
}

/// `rest --case … --baseline http-floor`: the case's requests to the HTTP floor (a child
/// process the run starts), not to the server; no Fluxbase server is needed, only its
/// database.
pub async fn run_floor(config: &ScenarioConfig, nofile_limit: u64) -> Result<Report> {
    let Some(case) = config.rest_case else {
        return Err(Error::config(
            "baseline",
            "--baseline http-floor needs --case",
        ));
    };
    let users: Vec<Uuid> = (0..config.connections).map(|_| Uuid::new_v4()).collect();
    let seed = Seed::create(config, case, &users).await?;
    let result = floor::run(config, nofile_limit, &seed, &users).await;
    seed.remove(config, &users).await;
    result
}

/// An issue-12 case: seed the todo tables, then run it over HTTP or as SQL.
async fn run_case(
    config: &ScenarioConfig,
    ctx: &Context,
    case: RestCase,
    users: &[Uuid],
) -> Result<Report> {
    let seed = Seed::create(config, case, users).await?;
    let mut report = ctx.report(config);
    report.table = Some(seed.table_names());
    let sessions = seed.sessions.as_ref();
    let result = match config.baseline {
        Baseline::Http => case::run(config, ctx, &mut report, &seed.shape, users, sessions).await,
        Baseline::Sql => {
            let db = &seed.db_config;
            sql::run(config, ctx, &mut report, &seed.shape, users, sessions, db).await
        }
        Baseline::HttpFloor => Err(Error::config(
            "baseline",
            "the http floor runs without the server (run_floor)",
        )),
    };
    seed.remove(config, users).await;
    result.map(|()| report)
}

/// A case's seeded tables (and with `--sessions` its users' sessions), removed after the
/// run whatever its outcome.
pub(crate) struct Seed {
    /// `--database-url`, parsed (the SQL baseline opens its connections with it).
    db_config: tokio_postgres::Config,
    /// The connection that seeded, kept to clean up.
    client: tokio_postgres::Client,
    /// The case and its tables.
    shape: Shape,
    /// With `--sessions`: the users' sessions.
    sessions: Option<Sessions>,
}

impl Seed {
    /// Creates and seeds the todo tables for `users`, and their sessions with `--sessions`.
    async fn create(config: &ScenarioConfig, case: RestCase, users: &[Uuid]) -> Result<Self> {
        let db_config = check_database_url(config.database_url.as_deref().unwrap_or_default())?;
        let client = table::connect(&db_config).await?;
        let tables = TodoTables::new(&suffix(config));
        let rows = seeded_rows(config, case);
        tables.create(&client, users, rows).await?;
        let sessions = if config.rest_sessions {
            match Sessions::create(&client, users).await {
                Ok(sessions) => Some(sessions),
                Err(err) => {
                    if !config.keep_tables {
                        tables.drop_tables(&client).await;
                    }
                    return Err(err);
                }
            }
        } else {
            None
        };
        let shape = Shape {
            case,
            tables,
            users: users.len() as u64,
            rows,
            rows_per_request: match case {
                RestCase::GetByKey => 1,
                RestCase::ListEmbed => LIST_ROWS,
                RestCase::Insert => config.rows_per_commit as u64,
            },
        };
        Ok(Seed {
            db_config,
            client,
            shape,
            sessions,
        })
    }

    /// The report's `table`.
    fn table_names(&self) -> String {
        let tables = &self.shape.tables;
        format!("{} (+ {})", tables.todos, tables.lists)
    }

    /// Drops the tables (unless `--keep-tables`) and the sessions' users.
    async fn remove(self, config: &ScenarioConfig, users: &[Uuid]) {
        if !config.keep_tables {
            self.shape.tables.drop_tables(&self.client).await;
        }
        if self.sessions.is_some() {
            Sessions::remove(&self.client, users).await;
        }
    }
}

/// Todos to seed: `--rows`, but at least one per user, and for the list case enough for
/// every user's page of [`LIST_ROWS`].
fn seeded_rows(config: &ScenarioConfig, case: RestCase) -> u64 {
    let users = config.connections as u64;
    let floor = match case {
        RestCase::ListEmbed => LIST_ROWS * users,
        RestCase::GetByKey | RestCase::Insert => users,
    };
    config.rest_rows.max(floor)
}

/// What one request came back with.
pub(crate) enum Answer {
    /// Answered with this status; 2xx counts as ok.
    Status(u16),
    /// Answered with this status, but not with what the case expects (a body with the
    /// wrong number of rows): counted under the error kind, not as ok.
    Wrong(u16, String),
    /// No answer: an I/O or database failure, by kind.
    Failed(String),
}

/// One connection's way of sending request `k`.
pub(crate) trait Requester: Send + 'static {
    /// Sends one request and waits for its answer.
    fn send(&mut self, k: u64) -> impl Future<Output = Answer> + Send;
    /// The request timed out mid-way: start afresh (a new connection) for the next one.
    fn reset(&mut self) {}
}

/// Shared counters of the request loop.
#[derive(Default)]
struct Tallies {
    sent: AtomicU64,
    ok: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    latency: LatencyRecorder,
    errors: ErrorTally,
}

impl Tallies {
    fn status(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }
}

/// Runs every requester in a closed loop for the duration (paced when `rate` > 0) and
/// fills the report's requests, latency, errors and process figures.
pub(crate) async fn drive<R: Requester>(
    config: &ScenarioConfig,
    ctx: &Context,
    report: &mut Report,
    requesters: Vec<R>,
    rows_per_request: u64,
) {
    report.server_metrics_before = ctx.metrics().await;
    let samplers = Samplers::start(config);
    let tallies = Arc::new(Tallies::default());
    let started = Instant::now();
    let deadline = started + config.duration;
    let per_connection_rate = config.rate / requesters.len().max(1) as f64;
    let timeout = config.connect_timeout;
    let mut tasks = Vec::new();
    for (c, mut requester) in requesters.into_iter().enumerate() {
        let tallies = tallies.clone();
        tasks.push(tokio::spawn(async move {
            let mut k: u64 = 0;
            while Instant::now() < deadline {
                if per_connection_rate > 0.0 {
                    let at = started + Duration::from_secs_f64(k as f64 / per_connection_rate);
                    if at >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                }
                k += 1;
                let sent_at = Instant::now();
                tallies.sent.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(timeout, requester.send(k)).await {
                    Ok(Answer::Status(status)) => {
                        tallies
                            .latency
                            .record(c, sent_at.elapsed().as_micros() as u64);
                        tallies.status(status);
                        if (200..300).contains(&status) {
                            tallies.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tallies.errors.add(format!("http:{status}"));
                        }
                    }
                    Ok(Answer::Wrong(status, kind)) => {
                        tallies
                            .latency
                            .record(c, sent_at.elapsed().as_micros() as u64);
                        tallies.status(status);
                        tallies.errors.add(kind);
                    }
                    Ok(Answer::Failed(kind)) => {
                        tallies.errors.add(kind);
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => {
                        tallies.errors.add("request:timeout");
                        requester.reset();
                    }
                }
            }
        }));
    }
    let progress = {
        let tallies = tallies.clone();
        let duration = config.duration.as_secs_f64();
        Progress::start(config.progress, move || {
            let t = started.elapsed().as_secs_f64().max(0.001);
            let sent = tallies.sent.load(Ordering::Relaxed);
            format!(
                "[{t:>5.1}/{duration:.0}s] requests {sent} ({:.0}/s) ok {} errors {}",
                sent as f64 / t,
                tallies.ok.load(Ordering::Relaxed),
                tallies.errors.total()
            )
        })
    };
    for task in tasks {
        if task.await.is_err() {
            tallies.errors.add("harness:request_task_panicked");
        }
    }
    progress.finish().await;
    let measured = started.elapsed().as_secs_f64();
    report.server_metrics_after = ctx.metrics().await;
    let (server, harness) = samplers.finish().await;
    report.server = server;
    report.harness = harness;
    let sent = tallies.sent.load(Ordering::Relaxed);
    let ok = tallies.ok.load(Ordering::Relaxed);
    report.requests = Some(RequestStats {
        target_rate: config.rate,
        sent,
        ok,
        by_status: tallies
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        per_sec: sent as f64 / measured,
        rows_per_request,
        rows_per_sec: (ok * rows_per_request) as f64 / measured,
    });
    report.latency = tallies.latency.percentiles();
    report.errors = tallies.errors.snapshot();
    report.measured_secs = measured;
    report.elapsed_secs = ctx.started.elapsed().as_secs_f64();
}

/// A `--path` template request: `{table}` → the seeded table, `{id}` → one of this
/// connection's user's rows; a POST body template gets `{seq}` and `{uuid}`.
struct PathRequester {
    http: HttpConnection,
    token: Option<String>,
    path: String,
    method: String,
    body: Option<String>,
    table: String,
    connection: u64,
    connections: u64,
    rows: u64,
}

impl Requester for PathRequester {
    async fn send(&mut self, k: u64) -> Answer {
        // An id owned by this connection's user: c+1, c+1+connections, …
        let c = self.connection;
        let owned = (self.rows.saturating_sub(c + 1)) / self.connections + 1;
        let id = c + 1 + self.connections * rand::rng().random_range(0..owned);
        let path = self
            .path
            .replace("{table}", &self.table)
            .replace("{id}", &id.to_string());
        let body = self.body.as_ref().map(|b| {
            b.replace("{seq}", &k.to_string())
                .replace("{uuid}", &Uuid::new_v4().to_string())
        });
        match self
            .http
            .request(
                &self.method,
                &path,
                self.token.as_deref(),
                body.as_deref().map(str::as_bytes),
            )
            .await
        {
            Ok(response) => Answer::Status(response.status),
            Err(err) => Answer::Failed(format!("http:io_{}", io_kind(&err))),
        }
    }

    fn reset(&mut self) {
        self.http = HttpConnection::new(self.http.target().clone());
    }
}
