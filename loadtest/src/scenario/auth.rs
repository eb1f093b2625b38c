//! `auth`: `connections` clients at once, half signing up new accounts and half signing in
//! to existing ones, each in a closed loop for the duration — the password-hashing storm of
//! issue 11 (400 concurrent sign-ups took a server from 10 MB to 6.9 GB). A shed request
//! (503 `overloaded`) is retried after its `Retry-After`, as a polite client does. The
//! report's server RSS (start, max, end) is the figure: growth must stay bounded by the
//! hashing slots, whatever the number of clients.
//!
//! The server must run with `security.rate_limit.enabled: false` (the login limit would
//! otherwise answer most sign-ins with 429 before any hash).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Context, Samplers};
use crate::config::ScenarioConfig;
use crate::error::Result;
use crate::http::HttpConnection;
use crate::latency::LatencyRecorder;
use crate::progress::Progress;
use crate::report::{Report, RequestStats};
use crate::tally::{ErrorTally, io_kind};

/// The password of every account of the run.
const PASSWORD: &str = "loadtest-password-0123";

/// Accounts signed up before the storm, for the sign-in half.
const SIGN_IN_ACCOUNTS: usize = 16;

/// How long a shed client waits: the `Retry-After` the server sends with 503 `overloaded`
/// (always one second; the harness's response keeps only status and body).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Shared counters of the request loop.
#[derive(Default)]
struct Tallies {
    sent: AtomicU64,
    ok: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    latency: LatencyRecorder,
    errors: ErrorTally,
}

/// The JSON body of a sign-up or sign-in.
fn body(email: &str) -> Vec<u8> {
    serde_json::json!({"email": email, "password": PASSWORD})
        .to_string()
        .into_bytes()
}

/// Signs up the accounts the sign-in half uses, retrying shed attempts.
async fn seed(ctx: &Context, config: &ScenarioConfig, run: &str) -> Result<Vec<String>> {
    let mut http = HttpConnection::new(ctx.target.clone());
    let mut emails = Vec::new();
    for i in 0..SIGN_IN_ACCOUNTS {
        let email = format!("lt-{run}-seed-{i}@example.com");
        let deadline = Instant::now() + config.connect_timeout * 3;
        loop {
            let response = http
                .request("POST", "/api/v1/auth/signup", None, Some(&body(&email)))
                .await
                .map_err(|source| crate::error::Error::Io {
                    context: "signing up the sign-in accounts",
                    source,
                })?;
            match response.status {
                200 => break,
                503 if Instant::now() < deadline => tokio::time::sleep(RETRY_AFTER).await,
                status => {
                    return Err(crate::error::Error::config(
                        "server_url",
                        format!(
                            "signing up a sign-in account answered {status}: {}",
                            String::from_utf8_lossy(&response.body)
                        ),
                    ));
                }
            }
        }
        emails.push(email);
    }
    Ok(emails)
}

/// Runs `auth`.
pub async fn run(config: &ScenarioConfig, ctx: Context) -> Result<Report> {
    // Sampling starts before any account exists: the first sample is the idle server.
    let samplers = Samplers::start(config);
    let run = format!("{:x}", ctx.started_at ^ u64::from(std::process::id()));
    let accounts = Arc::new(seed(&ctx, config, &run).await?);
    let mut report = ctx.report(config);
    report.server_metrics_before = ctx.metrics().await;
    let tallies = Arc::new(Tallies::default());
    let started = Instant::now();
    let deadline = started + config.duration;
    let start_line = Arc::new(tokio::sync::Barrier::new(config.connections));

    let mut tasks = Vec::new();
    for c in 0..config.connections {
        let mut http = HttpConnection::new(ctx.target.clone());
        let (tallies, accounts, start_line) =
            (tallies.clone(), accounts.clone(), start_line.clone());
        let (run, timeout) = (run.clone(), config.connect_timeout);
        tasks.push(tokio::spawn(async move {
            // Everyone starts at once: the storm, not a ramp.
            start_line.wait().await;
            let mut k: u64 = 0;
            while Instant::now() < deadline {
                k += 1;
                let (path, email) = if c % 2 == 0 {
                    (
                        "/api/v1/auth/signup",
                        format!("lt-{run}-{c}-{k}@example.com"),
                    )
                } else {
                    (
                        "/api/v1/auth/signin",
                        accounts[(c / 2 + k as usize) % accounts.len()].clone(),
                    )
                };
                let sent_at = Instant::now();
                tallies.sent.fetch_add(1, Ordering::Relaxed);
                let result = tokio::time::timeout(
                    timeout,
                    http.request("POST", path, None, Some(&body(&email))),
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
                        match response.status {
                            200..300 => {
                                tallies.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            // Shed: wait as told, then try again.
                            503 => tokio::time::sleep(RETRY_AFTER).await,
                            status => tallies.errors.add(format!("http:{status}")),
                        }
                    }
                    Ok(Err(err)) => {
                        tallies.errors.add(format!("http:io_{}", io_kind(&err)));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => {
                        tallies.errors.add("http:timeout");
                        http = HttpConnection::new(http.target().clone());
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
            format!(
                "[{t:>5.1}/{duration:.0}s] requests {} ok {} errors {}",
                tallies.sent.load(Ordering::Relaxed),
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
        target_rate: 0.0,
        sent,
        ok: tallies.ok.load(Ordering::Relaxed),
        by_status: tallies
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        per_sec: sent as f64 / measured,
        ..RequestStats::default()
    });
    report.latency = tallies.latency.percentiles();
    report.errors = tallies.errors.snapshot();
    report.measured_secs = measured;
    report.elapsed_secs = ctx.started.elapsed().as_secs_f64();
    Ok(report)
}
