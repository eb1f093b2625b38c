//! The opening phase every socket scenario shares: the subscribe frame, the socket
//! settings, and opening the fleet until every subscription is acknowledged or failed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Context;
use crate::config::ScenarioConfig;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::ledger::SequenceCounts;
use crate::process::read_rss_bytes;
use crate::progress::Progress;
use crate::report::EventStats;
use crate::socket::{SocketOutcome, SocketPlan, SocketSettings};

/// The `subscribe` frame for `table` (with an optional `filter`).
pub fn subscribe_frame(config: &ScenarioConfig, table: &str, filter: Option<String>) -> String {
    let mut sub = serde_json::json!({
        "event": config.event,
        "schema": "public",
        "table": table,
    });
    if let Some(filter) = filter {
        sub["filter"] = filter.into();
    }
    serde_json::json!({"type": "subscribe", "channel": "c1", "config": sub}).to_string()
}

/// Socket settings of a run against `ctx`'s target.
pub fn settings(config: &ScenarioConfig, ctx: &Context) -> Arc<SocketSettings> {
    let mut targets = Vec::new();
    if !config.spread_urls.is_empty() {
        targets.push(ctx.target.clone());
        // Checked in `Context::new` (loopback only).
        targets.extend(
            config
                .spread_urls
                .iter()
                .filter_map(|url| crate::target::Target::parse(url).ok()),
        );
    }
    Arc::new(SocketSettings {
        targets,
        target: ctx.target.clone(),
        source_addrs: config.source_addrs,
        connect_timeout: config.connect_timeout,
        ack_timeout: config.ack_timeout,
        heartbeat_interval: config.heartbeat_interval,
        drain: config.drain,
    })
}

/// A fleet whose sockets are all acknowledged or failed.
pub struct Opened {
    pub fleet: Fleet,
    /// Indexes of the acknowledged fast sockets, sorted.
    pub acked_fast: Vec<usize>,
    /// Seconds from the first connect until every socket settled.
    pub open_secs: f64,
    /// Server RSS growth during the opening, per acknowledged socket.
    pub server_rss_per_socket_bytes: Option<f64>,
}

/// Opens and subscribes every socket of `plans`, bounded by the connect pacing and the
/// connect and ack timeouts. Fails with [`Error::NoSubscriber`] if none was acknowledged
/// (the fleet is shut down first).
pub async fn open(
    config: &ScenarioConfig,
    plans: Vec<SocketPlan>,
    settings: Arc<SocketSettings>,
) -> Result<Opened> {
    let rss_before = config.server_pid.and_then(read_rss_bytes);
    let open_started = Instant::now();
    let fleet = Fleet::launch(
        plans,
        settings,
        config.connect_rate,
        config.connect_concurrency,
    );
    let progress = {
        let state = fleet.state.clone();
        let total = fleet.total;
        Progress::start(config.progress, move || {
            format!(
                "[open {:>5.1}s] connected {}/{total} acked {} failed {}",
                open_started.elapsed().as_secs_f64(),
                state.connected.load(Ordering::Relaxed),
                state.acked.load(Ordering::Relaxed),
                state.failed.load(Ordering::Relaxed),
            )
        })
    };
    let pacing = if config.connect_rate > 0.0 {
        Duration::from_secs_f64(fleet.total as f64 / config.connect_rate)
    } else {
        Duration::ZERO
    };
    fleet
        .wait_settled(pacing + config.connect_timeout + config.ack_timeout)
        .await;
    progress.finish().await;
    let open_secs = open_started.elapsed().as_secs_f64();
    let acked_fast: Vec<usize> = {
        let mut v = fleet
            .state
            .acked_indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        v.sort_unstable();
        v
    };
    if acked_fast.is_empty() {
        let failed = fleet.state.failed.load(Ordering::Relaxed);
        for (kind, n) in fleet.state.errors.snapshot() {
            eprintln!("  {kind}: {n}");
        }
        let _ = fleet.finish().await;
        return Err(Error::NoSubscriber { failed });
    }
    let mut server_rss_per_socket_bytes = None;
    if let (Some(pid), Some(before)) = (config.server_pid, rss_before)
        && let Some(after) = read_rss_bytes(pid)
    {
        let acked = fleet.state.acked.load(Ordering::Relaxed).max(1);
        server_rss_per_socket_bytes = Some(after.saturating_sub(before) as f64 / acked as f64);
    }
    Ok(Opened {
        fleet,
        acked_fast,
        open_secs,
        server_rss_per_socket_bytes,
    })
}

/// Compares every acknowledged fast socket's ledger with `expected(index)`, the sorted
/// sequence numbers that socket was entitled to. `delivered_per_sec` is left to the caller
/// (it knows the measured phase).
pub fn settle<'a>(
    outcomes: Vec<SocketOutcome>,
    expected: impl Fn(usize) -> &'a [u64],
) -> EventStats {
    let mut stats = EventStats::default();
    let mut total = SequenceCounts::default();
    let (mut bytes, mut frames) = (0u64, 0u64);
    for outcome in outcomes.into_iter().filter(|o| !o.slow && o.acked) {
        bytes += outcome.ledger.bytes();
        frames += outcome.ledger.received();
        let counts = outcome.ledger.settle(expected(outcome.index));
        if counts.lost > 0 {
            stats.subscribers_with_loss += 1;
        }
        total.add(&counts);
    }
    stats.counts = total;
    if frames > 0 {
        stats.frame_bytes_mean = bytes as f64 / frames as f64;
    }
    stats
}
