//! `rest`: keep-alive connections sending requests to a path template at a target rate,
//! closed loop (one request in flight per connection).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Context, Samplers};
use crate::config::ScenarioConfig;
use crate::error::{Error, Result};
use crate::http::HttpConnection;
use crate::latency::LatencyRecorder;
use crate::progress::Progress;
use crate::report::{Report, RequestStats};
use crate::table::{self, TableKind};
use crate::tally::{ErrorTally, io_kind};
use crate::target::check_database_url;
use crate::token::TokenMinter;

/// Runs `rest`. When the path names `{table}`, an owner-RLS table is created and seeded,
/// row `id` belonging to connection `(id - 1) % connections`, and each connection asks
/// only for its own user's rows (GET by primary key under RLS).
pub async fn run(config: &ScenarioConfig, ctx: Context) -> Result<Report> {
    let configured;
    let config = match config.rest_workload {
        Some(workload) => {
            configured = super::rest_workload::configured(config, workload);
            &configured
        }
        None => config,
    };
    let users: Vec<Uuid> = (0..config.connections).map(|_| Uuid::new_v4()).collect();
    if !config.rest_path.contains("{table}") {
        return measure(config, &ctx, None, &users, None).await;
    }
    let db_config = check_database_url(config.database_url.as_deref().unwrap_or_default())?;
    let client = table::connect(&db_config).await?;
    let suffix = config
        .table_suffix
        .clone()
        .unwrap_or_else(table::random_suffix);
    let name = table::table_name("rest", &suffix);
    table::create(&client, &name, TableKind::Owner).await?;
    let seeded = seed(&client, &name, config, &users).await;
    let result = match (seeded, config.rest_workload) {
        (Ok(()), Some(workload)) => {
            super::rest_workload::run(config, &ctx, &client, &name, &users, workload).await
        }
        (Ok(()), None) => measure(config, &ctx, Some(&name), &users, None).await,
        (Err(err), _) => Err(err),
    };
    if !config.keep_tables {
        table::drop_table(&client, &name).await;
        if config.rest_workload.is_some() {
            super::rest_workload::drop_lists(&client, &name).await;
        }
    }
    result
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

/// Shared counters of the request loop.
#[derive(Default)]
struct Tallies {
    sent: AtomicU64,
    ok: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    latency: LatencyRecorder,
    errors: ErrorTally,
}

/// The HTTP run: one connection per user, with `tokens` (one per user) or tokens minted
/// with `jwt_secret`.
pub(super) async fn measure(
    config: &ScenarioConfig,
    ctx: &Context,
    table: Option<&str>,
    users: &[Uuid],
    tokens: Option<&[String]>,
) -> Result<Report> {
    let mut report = ctx.report(config);
    report.table = table.map(str::to_owned);
    let minter = config
        .jwt_secret
        .as_deref()
        .map(|secret| TokenMinter::new(secret, config.duration.as_secs() + 3600));
    report.server_metrics_before = ctx.metrics().await;
    let samplers = Samplers::start(config);
    let tallies = Arc::new(Tallies::default());
    let started = Instant::now();
    let deadline = started + config.duration;
    let per_connection_rate = config.rate / config.connections as f64;
    let connections = config.connections as u64;
    let rows = config.rest_rows.max(1);

    let mut tasks = Vec::new();
    for (c, user) in users.iter().enumerate() {
        let token = match (tokens, &minter) {
            (Some(tokens), _) => Some(tokens[c].clone()),
            (None, Some(m)) => Some(m.user(*user)?),
            (None, None) => None,
        };
        let mut http = HttpConnection::new(ctx.target.clone());
        let tallies = tallies.clone();
        let (path, method, body) = (
            config.rest_path.clone(),
            config.rest_method.clone(),
            config.rest_body.clone(),
        );
        let table = table.unwrap_or("").to_owned();
        let timeout = config.connect_timeout;
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
                // An id owned by this connection's user: c+1, c+1+connections, …
                let owned = (rows.saturating_sub(c as u64 + 1)) / connections + 1;
                let id = c as u64 + 1 + connections * rand::rng().random_range(0..owned);
                let seq = k.to_string();
                let target_path = path
                    .replace("{table}", &table)
                    .replace("{id}", &id.to_string());
                let body = body.as_ref().map(|b| {
                    b.replace("{seq}", &seq)
                        .replace("{uuid}", &Uuid::new_v4().to_string())
                });
                let sent_at = Instant::now();
                tallies.sent.fetch_add(1, Ordering::Relaxed);
                let result = tokio::time::timeout(
                    timeout,
                    http.request(
                        &method,
                        &target_path,
                        token.as_deref(),
                        body.as_deref().map(str::as_bytes),
                    ),
                )
                .await;
                match result {
                    Ok(Ok(response)) => {
                        tallies
                            .latency
                            .record(c, sent_at.elapsed().as_micros() as u64);
                        *tallies
                            .by_status
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(response.status)
                            .or_default() += 1;
                        if (200..300).contains(&response.status) {
                            tallies.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tallies.errors.add(format!("http:{}", response.status));
                        }
                    }
                    Ok(Err(err)) => {
                        tallies.errors.add(format!("http:io_{}", io_kind(&err)));
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => {
                        tallies.errors.add("http:timeout");
                        http = HttpConnection::new(http_target(&http));
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
    report.requests = Some(RequestStats {
        target_rate: config.rate,
        sent,
        ok: tallies.ok.load(Ordering::Relaxed),
        by_status: tallies
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        per_sec: sent as f64 / measured,
    });
    report.latency = tallies.latency.percentiles();
    report.errors = tallies.errors.snapshot();
    report.measured_secs = measured;
    report.elapsed_secs = ctx.started.elapsed().as_secs_f64();
    Ok(report)
}

/// The target of a connection, to reopen it after a timeout left it mid-response.
fn http_target(http: &HttpConnection) -> crate::target::Target {
    http.target().clone()
}
