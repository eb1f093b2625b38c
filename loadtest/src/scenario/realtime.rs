//! Realtime scenarios: sockets subscribe to the harness's table, writers insert rows at
//! a target rate, and every subscriber's deliveries are checked against what it was
//! entitled to see. `connect-storm` is the same without writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Context, Samplers, sockets};
use crate::config::{Scenario, ScenarioConfig};
use crate::error::Result;
use crate::progress::Progress;
use crate::report::{EventStats, Report, SocketStats, WriteStats};
use crate::socket::{SocketOutcome, SocketPlan};
use crate::table::{self, TableKind};
use crate::tally::ErrorTally;
use crate::target::check_database_url;
use crate::token::TokenMinter;
use crate::writer::{WriteLog, WritePlan, run_writer};

/// Runs `realtime-owner`, `realtime-public`, `slow-clients` or `connect-storm`.
pub async fn run(config: &ScenarioConfig, ctx: Context) -> Result<Report> {
    let db_config = check_database_url(config.database_url.as_deref().unwrap_or_default())?;
    let client = table::connect(&db_config).await?;
    let suffix = config
        .table_suffix
        .clone()
        .unwrap_or_else(table::random_suffix);
    let (prefix, kind) = match config.scenario {
        Scenario::RealtimeOwner => ("owner", TableKind::Owner),
        _ => ("public", TableKind::Public),
    };
    let table = table::table_name(prefix, &suffix);
    table::create(&client, &table, kind).await?;
    let result = measure(config, &ctx, &db_config, &table).await;
    if !config.keep_tables {
        table::drop_table(&client, &table).await;
    }
    result
}

async fn measure(
    config: &ScenarioConfig,
    ctx: &Context,
    db_config: &tokio_postgres::Config,
    table: &str,
) -> Result<Report> {
    let mut report = ctx.report(config);
    report.table = Some(table.to_owned());
    let owner = config.scenario == Scenario::RealtimeOwner;
    let fast = config.sockets;
    let slow = if config.scenario == Scenario::SlowClients {
        config.slow_sockets
    } else {
        0
    };
    let users: Vec<Uuid> = (0..fast + slow).map(|_| Uuid::new_v4()).collect();

    // Tokens outlive the run by an hour, so none expires mid-test.
    let ttl = (config.duration + config.drain + config.ack_timeout).as_secs() + 3600;
    let minter = match (&config.jwt_secret, config.anon) {
        (Some(secret), false) => Some(TokenMinter::new(secret, ttl)),
        _ => None,
    };
    let mut plans = Vec::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        let path = match &minter {
            Some(minter) => format!("/realtime?token={}", minter.user(*user)?),
            None => "/realtime".to_owned(),
        };
        let filter = (owner && config.owner_filter).then(|| format!("user_id=eq.{user}"));
        plans.push(SocketPlan {
            index,
            path,
            subscribe: sockets::subscribe_frame(config, table, filter),
            slow: index >= fast,
        });
    }

    let settings = sockets::settings(config, ctx);
    report.server_metrics_before = ctx.metrics().await;
    let samplers = Samplers::start(config);

    // Phase 1: open and subscribe every socket.
    let opened = match sockets::open(config, plans, settings).await {
        Ok(opened) => opened,
        Err(err) => {
            let _ = samplers.finish().await;
            return Err(err);
        }
    };
    let sockets::Opened {
        fleet,
        acked_fast,
        open_secs,
        server_rss_per_socket_bytes,
    } = opened;
    report.server_rss_per_socket_bytes = server_rss_per_socket_bytes;

    // Phase 2: write (or, for a storm, hold the sockets open).
    let errors = Arc::new(ErrorTally::default());
    let phase_started = Instant::now();
    let mut logs = Vec::new();
    if config.scenario.writes_rows() {
        let owners: Arc<Vec<Uuid>> = if owner {
            Arc::new(users[..fast].to_vec())
        } else {
            Arc::new(vec![Uuid::new_v4()])
        };
        let seq = Arc::new(AtomicU64::new(1));
        let issued = Arc::new(AtomicU64::new(0));
        let payload = Arc::new("x".repeat(config.payload_bytes));
        let (stop, stop_rx) = watch::channel(false);
        let mut writers = Vec::new();
        for _ in 0..config.writers {
            let client = table::connect(db_config).await?;
            let plan = WritePlan {
                table: table.to_owned(),
                owners: owners.clone(),
                rate: config.rate / config.writers as f64,
                update_percent: config.update_percent,
                rows_per_commit: config.rows_per_commit,
                payload: payload.clone(),
                seq: seq.clone(),
                issued: issued.clone(),
                errors: errors.clone(),
            };
            writers.push(tokio::spawn(run_writer(client, plan, stop_rx.clone())));
        }
        let progress = {
            let (state, issued, errors) = (fleet.state.clone(), issued.clone(), errors.clone());
            let duration = config.duration.as_secs_f64();
            Progress::start(config.progress, move || {
                let t = phase_started.elapsed().as_secs_f64().max(0.001);
                let written = issued.load(Ordering::Relaxed);
                let received = state.received.load(Ordering::Relaxed);
                let phase = if t <= duration {
                    format!("{t:>5.1}/{duration:.0}s")
                } else {
                    format!("drain +{:.1}s", t - duration)
                };
                format!(
                    "[{phase}] writes {written} ({:.0}/s) events {received} ({:.0}/s) closed {} errors {}",
                    written as f64 / t,
                    received as f64 / t,
                    state.closed_early.load(Ordering::Relaxed),
                    state.errors.total() + errors.total(),
                )
            })
        };
        tokio::time::sleep(config.duration).await;
        let _ = stop.send(true);
        for writer in writers {
            match writer.await {
                Ok(log) => logs.push(log),
                Err(_) => errors.add("harness:writer_panicked"),
            }
        }
        let write_secs = phase_started.elapsed().as_secs_f64();

        // Phase 3: wait, bounded, for the events still in flight.
        let due = events_due(owner, &logs, &acked_fast);
        let drain_started = Instant::now();
        while fleet.state.received.load(Ordering::Relaxed) < due
            && drain_started.elapsed() < config.drain
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain_secs = drain_started.elapsed().as_secs_f64();
        progress.finish().await;
        let committed: u64 = logs.iter().map(|l| l.committed.len() as u64).sum();
        report.writes = Some(WriteStats {
            target_rate: config.rate,
            committed,
            failed: logs.iter().map(|l| l.failed).sum(),
            committed_per_sec: committed as f64 / write_secs,
        });
        report.measured_secs = write_secs + drain_secs;
    } else {
        let progress = {
            let state = fleet.state.clone();
            let duration = config.duration.as_secs_f64();
            Progress::start(config.progress, move || {
                format!(
                    "[hold {:>5.1}/{duration:.0}s] acked {} closed {}",
                    phase_started.elapsed().as_secs_f64(),
                    state.acked.load(Ordering::Relaxed),
                    state.closed_early.load(Ordering::Relaxed),
                )
            })
        };
        tokio::time::sleep(config.duration).await;
        progress.finish().await;
        // For a storm, the figure of merit is the opening phase.
        report.measured_secs = open_secs;
    }

    report.server_metrics_after = ctx.metrics().await;
    let state = fleet.state.clone();
    let planned = fleet.total;
    let outcomes = fleet.finish().await;
    let (server, harness) = samplers.finish().await;
    report.server = server;
    report.harness = harness;

    let mut sockets = SocketStats {
        planned,
        connected: state.connected.load(Ordering::Relaxed),
        acked: state.acked.load(Ordering::Relaxed),
        failed: state.failed.load(Ordering::Relaxed),
        closed_early: state.closed_early.load(Ordering::Relaxed),
        slow,
        slow_outcomes: BTreeMap::new(),
    };
    for outcome in outcomes.iter().filter(|o| o.slow) {
        let how = outcome.closed_by_server.clone().unwrap_or_else(|| {
            if outcome.acked {
                "still_open".to_owned()
            } else {
                "never_subscribed".to_owned()
            }
        });
        *sockets.slow_outcomes.entry(how).or_default() += 1;
    }
    if config.scenario.writes_rows() {
        let events = settle(owner, fast, &logs, outcomes);
        report.events = Some(EventStats {
            delivered_per_sec: events.counts.delivered as f64 / report.measured_secs.max(0.001),
            ..events
        });
        report.latency = state.latency.percentiles();
    }
    report.sockets = Some(sockets);
    report.connect_latency = state.connect_latency.percentiles();
    report.ack_latency = state.ack_latency.percentiles();
    let mut all_errors = state.errors.snapshot();
    for (kind, n) in errors.snapshot() {
        *all_errors.entry(kind).or_default() += n;
    }
    report.errors = all_errors;
    report.elapsed_secs = ctx.started.elapsed().as_secs_f64();
    Ok(report)
}

/// Events the acknowledged fast subscribers should receive in all.
fn events_due(owner: bool, logs: &[WriteLog], acked_fast: &[usize]) -> u64 {
    if owner {
        logs.iter()
            .flat_map(|l| &l.committed)
            .filter(|(_, o)| acked_fast.binary_search(&(*o as usize)).is_ok())
            .count() as u64
    } else {
        let committed: usize = logs.iter().map(|l| l.committed.len()).sum();
        (committed * acked_fast.len()) as u64
    }
}

/// Compares every acknowledged fast subscriber's ledger with what it was entitled to.
fn settle(owner: bool, fast: usize, logs: &[WriteLog], outcomes: Vec<SocketOutcome>) -> EventStats {
    let mut all: Vec<u64> = Vec::new();
    let mut by_owner: Vec<Vec<u64>> = if owner {
        vec![Vec::new(); fast]
    } else {
        Vec::new()
    };
    for &(seq, o) in logs.iter().flat_map(|l| &l.committed) {
        if owner {
            by_owner[o as usize].push(seq);
        } else {
            all.push(seq);
        }
    }
    all.sort_unstable();
    for seqs in &mut by_owner {
        seqs.sort_unstable();
    }
    sockets::settle(
        outcomes,
        |index| {
            if owner { &by_owner[index] } else { &all }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    fn outcome(index: usize, seqs: &[u64]) -> SocketOutcome {
        let mut ledger = Ledger::default();
        for &s in seqs {
            ledger.record(s, 0);
        }
        SocketOutcome {
            index,
            acked: true,
            ledger,
            ..SocketOutcome::default()
        }
    }

    #[test]
    fn owner_accounting_counts_only_own_rows() {
        let logs = vec![WriteLog {
            committed: vec![(1, 0), (2, 1), (3, 0), (4, 1)],
            failed: 0,
        }];
        assert_eq!(events_due(true, &logs, &[0, 1]), 4);
        assert_eq!(events_due(true, &logs, &[1]), 2);
        // Subscriber 0 got its rows and a leak (2); subscriber 1 lost 4.
        let stats = settle(
            true,
            2,
            &logs,
            vec![outcome(0, &[1, 3, 2]), outcome(1, &[2])],
        );
        assert_eq!(stats.counts.expected, 4);
        assert_eq!(stats.counts.delivered, 3);
        assert_eq!(stats.counts.lost, 1);
        assert_eq!(stats.counts.unexpected, 1);
        assert_eq!(stats.subscribers_with_loss, 1);
    }

    #[test]
    fn public_accounting_expects_every_row_everywhere() {
        let logs = vec![
            WriteLog {
                committed: vec![(1, 0), (3, 0)],
                failed: 1,
            },
            WriteLog {
                committed: vec![(2, 0)],
                failed: 0,
            },
        ];
        assert_eq!(events_due(false, &logs, &[0, 1, 2]), 9);
        let mut slow = outcome(2, &[]);
        slow.slow = true;
        let stats = settle(
            false,
            2,
            &logs,
            vec![outcome(0, &[1, 2, 3]), outcome(1, &[3, 1, 2, 2]), slow],
        );
        assert_eq!(stats.counts.expected, 6);
        assert_eq!(stats.counts.delivered, 6);
        assert_eq!(stats.counts.duplicated, 1);
        assert_eq!(stats.counts.lost, 0);
    }
}
