//! The baseline of the `rest` workloads (`--baseline`): the transaction the server runs
//! for a request, sent straight to PostgreSQL over as many connections as the HTTP run
//! uses, closed loop, pipelined as the server pipelines it (one round trip):
//!
//! ```text
//! BEGIN ISOLATION LEVEL READ COMMITTED [READ ONLY]
//! SELECT …set_config('role', $1, true), …('request.jwt.claims', $2, true),
//!        …('statement_timeout', $3, true)       -- sql-session: + the session probe
//! <the workload's statement>                    -- prepared once per connection
//! COMMIT
//! ```
//!
//! Requests are counted as a 200 when the transaction committed; its latency is the
//! round trip. The report has the shape of the HTTP run's, so the two compare directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join4;
use rand::Rng;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;

use super::rest_workload::statement;
use super::{Context, Samplers};
use crate::config::{RestBaseline, RestWorkload, ScenarioConfig};
use crate::error::{Error, Result};
use crate::latency::LatencyRecorder;
use crate::report::{Report, RequestStats};
use crate::tally::ErrorTally;
use crate::target::check_database_url;

/// The server's role switch (`api/src/rest/exec.rs`, `ACT`).
const ACT: &str = "SELECT true, true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true)";

/// The server's role switch for an application user's token (`ACT_SESSION`): the same,
/// asserting the session its claims name is live.
const ACT_SESSION: &str = "SELECT 1 / (EXISTS (SELECT 1 FROM auth.sessions s \
     WHERE s.id = (($2::text)::pg_catalog.json ->> 'session_id')::uuid \
     AND s.user_id = (($2::text)::pg_catalog.json ->> 'sub')::uuid))::int = 1, true, \
     pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true)";

/// The server's default `rest.statement_timeout`, in milliseconds, as it sends it.
const STATEMENT_TIMEOUT_MS: &str = "10000";

/// Shared counters.
#[derive(Default)]
struct Tallies {
    sent: AtomicU64,
    ok: AtomicU64,
    latency: LatencyRecorder,
    errors: ErrorTally,
}

/// Runs `workload`'s transaction on `table` for `claims` (one connection per entry: the
/// JSON claims of that connection's user) and reports it like an HTTP run.
pub async fn measure(
    config: &ScenarioConfig,
    ctx: &Context,
    table: &str,
    workload: RestWorkload,
    kind: RestBaseline,
    claims: &[String],
) -> Result<Report> {
    let db_config = check_database_url(config.database_url.as_deref().unwrap_or_default())?;
    let mut report = ctx.report(config);
    report.table = Some(table.to_owned());
    let act_sql = match kind {
        RestBaseline::Sql => ACT,
        RestBaseline::SqlSession => ACT_SESSION,
    };
    let main_sql = statement(workload, table);
    let read_only = matches!(workload, RestWorkload::GetByPk | RestWorkload::ListEmbed);
    let begin = if read_only {
        "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
    } else {
        "BEGIN ISOLATION LEVEL READ COMMITTED"
    };
    let mut clients = Vec::with_capacity(claims.len());
    for _ in claims {
        let client = crate::table::connect(&db_config).await?;
        let act = client
            .prepare(act_sql)
            .await
            .map_err(Error::database("preparing the baseline's role switch"))?;
        let main = client
            .prepare(&main_sql)
            .await
            .map_err(Error::database("preparing the baseline's statement"))?;
        clients.push((client, act, main));
    }

    let samplers = Samplers::start(config);
    let tallies = Arc::new(Tallies::default());
    let started = Instant::now();
    let deadline = started + config.duration;
    let per_connection_rate = config.rate / claims.len() as f64;
    let connections = claims.len() as u64;
    let rows = config.rest_rows.max(1);
    let body = config.rest_body.clone().unwrap_or_default();
    let mut tasks = Vec::new();
    for (c, ((client, act, main), claims)) in clients.into_iter().zip(claims).enumerate() {
        let tallies = tallies.clone();
        let claims = claims.clone();
        let body = body.clone();
        let embed = format!("{table}_lists");
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
                // The same choice of row as the HTTP run: one the connection's user owns.
                let owned = (rows.saturating_sub(c as u64 + 1)) / connections + 1;
                let id = (c as u64 + 1 + connections * rand::rng().random_range(0..owned)) as i64;
                let json = body.replace("{seq}", &k.to_string());
                // The object keys the server binds: three columns, the embed, its column.
                let keys = ["id", "seq", "payload", embed.as_str(), "title"];
                let limit: i64 = 100;
                let params: Vec<&(dyn ToSql + Sync)> = match workload {
                    RestWorkload::GetByPk => vec![&id],
                    RestWorkload::ListEmbed => {
                        vec![&keys[0], &keys[1], &keys[2], &keys[3], &keys[4], &limit]
                    }
                    RestWorkload::InsertOne | RestWorkload::Insert1000 => vec![&json],
                };
                let act_params: [&(dyn ToSql + Sync); 3] =
                    [&"authenticated", &claims, &STATEMENT_TIMEOUT_MS];
                let sent_at = Instant::now();
                tallies.sent.fetch_add(1, Ordering::Relaxed);
                let (begun, acted, ran, ended) = join4(
                    client.batch_execute(begin),
                    client.query(&act, &act_params),
                    client.query(&main, &params),
                    client.batch_execute("COMMIT"),
                )
                .await;
                let outcome = begun.and(acted).and(ran).and(ended);
                match outcome {
                    Ok(_) => {
                        tallies
                            .latency
                            .record(c, sent_at.elapsed().as_micros() as u64);
                        tallies.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        let code = err.code().map_or("io", |c| c.code()).to_owned();
                        tallies.errors.add(format!("pg:{code}"));
                        if client.is_closed() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        if task.await.is_err() {
            tallies.errors.add("harness:baseline_task_panicked");
        }
    }
    let measured = started.elapsed().as_secs_f64();
    let (server, harness) = samplers.finish().await;
    report.server = server;
    report.harness = harness;
    let sent = tallies.sent.load(Ordering::Relaxed);
    let ok = tallies.ok.load(Ordering::Relaxed);
    report.requests = Some(RequestStats {
        target_rate: config.rate,
        sent,
        ok,
        by_status: BTreeMap::from([(200, ok)]),
        per_sec: sent as f64 / measured,
    });
    report.latency = tallies.latency.percentiles();
    report.errors = tallies.errors.snapshot();
    report.measured_secs = measured;
    report.elapsed_secs = ctx.started.elapsed().as_secs_f64();
    Ok(report)
}
