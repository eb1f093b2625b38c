//! `ws-ceiling`: the same sockets as `realtime-public`, fed by the bare broadcast server
//! (see [`crate::ceiling`]) instead of the engine. Every socket must receive every message
//! once and in order, as in `realtime-public`; the figure is messages/s delivered.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Context, Samplers, sockets};
use crate::ceiling::Broadcast;
use crate::ceiling::child::CeilingServer;
use crate::config::ScenarioConfig;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::{BroadcastStats, EventStats, Report, SocketStats};
use crate::socket::SocketPlan;
use crate::table;

/// Starts the ceiling server, runs the scenario against it, and ends it.
pub async fn run(config: &ScenarioConfig, nofile_limit: u64) -> Result<Report> {
    let exe = match &config.ceiling_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().map_err(|source| Error::Io {
            context: "locating this executable for the ws-ceiling server (give --ceiling-exe)",
            source,
        })?,
    };
    let server = CeilingServer::start(&exe).await?;
    // The run's target is the child: the report shows where the sockets went.
    let mut config = config.clone();
    config.server_url = format!("http://{}", server.addr);
    config.server_pid = Some(server.pid);
    config.ceiling_exe = Some(PathBuf::from(&exe));
    match Context::prepare(&config, nofile_limit).await {
        Ok(ctx) => measure(&config, &ctx, server).await,
        Err(err) => {
            server.shutdown().await;
            Err(err)
        }
    }
}

async fn measure(
    config: &ScenarioConfig,
    ctx: &Context,
    mut server: CeilingServer,
) -> Result<Report> {
    let mut report = ctx.report(config);
    // A name as long as `realtime-public`'s table, so the frames are the same size.
    let table = table::table_name(
        "public",
        &config
            .table_suffix
            .clone()
            .unwrap_or_else(table::random_suffix),
    );
    let subscribe = sockets::subscribe_frame(config, &table, None);
    let plans = (0..config.sockets)
        .map(|index| SocketPlan {
            index,
            path: "/realtime".to_owned(),
            subscribe: subscribe.clone(),
            slow: false,
        })
        .collect();
    let settings = sockets::settings(config, ctx);
    let samplers = Samplers::start(config);
    let opened = match sockets::open(config, plans, settings).await {
        Ok(opened) => opened,
        Err(err) => {
            let _ = samplers.finish().await;
            server.shutdown().await;
            return Err(err);
        }
    };
    let sockets::Opened {
        fleet,
        acked_fast,
        server_rss_per_socket_bytes,
        ..
    } = opened;
    report.server_rss_per_socket_bytes = server_rss_per_socket_bytes;

    // Broadcast for the duration, then wait (bounded) for what is still in flight.
    let phase_started = Instant::now();
    let broadcast = Broadcast {
        rate: config.rate,
        payload_bytes: config.payload_bytes,
        table: table.clone(),
    };
    let sent = match server.go(broadcast).await {
        Ok(()) => {
            let progress = {
                let state = fleet.state.clone();
                let duration = config.duration.as_secs_f64();
                Progress::start(config.progress, move || {
                    let t = phase_started.elapsed().as_secs_f64().max(0.001);
                    let received = state.received.load(Ordering::Relaxed);
                    format!(
                        "[{t:>5.1}/{duration:.0}s] events {received} ({:.0}/s) closed {}",
                        received as f64 / t,
                        state.closed_early.load(Ordering::Relaxed),
                    )
                })
            };
            tokio::time::sleep(config.duration).await;
            let sent = server.stop().await;
            if let Ok(sent) = &sent {
                let due = sent.messages * acked_fast.len() as u64;
                let drain_started = Instant::now();
                while fleet.state.received.load(Ordering::Relaxed) < due
                    && drain_started.elapsed() < config.drain
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            progress.finish().await;
            sent
        }
        Err(err) => Err(err),
    };
    report.measured_secs = phase_started.elapsed().as_secs_f64();
    let state = fleet.state.clone();
    let planned = fleet.total;
    let outcomes = fleet.finish().await;
    let (server_stats, harness) = samplers.finish().await;
    server.shutdown().await;
    let sent = sent?;
    report.server = server_stats;
    report.harness = harness;
    report.broadcast = Some(BroadcastStats {
        target_rate: config.rate,
        messages: sent.messages,
        sockets: sent.sockets,
        messages_per_sec: sent.messages as f64 / sent.secs.max(0.001),
        frame_bytes: sent.frame_bytes,
    });
    report.sockets = Some(SocketStats {
        planned,
        connected: state.connected.load(Ordering::Relaxed),
        acked: state.acked.load(Ordering::Relaxed),
        failed: state.failed.load(Ordering::Relaxed),
        closed_early: state.closed_early.load(Ordering::Relaxed),
        ..SocketStats::default()
    });
    let expected: Vec<u64> = (1..=sent.messages).collect();
    let events = sockets::settle(outcomes, |_| &expected);
    report.events = Some(EventStats {
        delivered_per_sec: events.counts.delivered as f64 / report.measured_secs.max(0.001),
        ..events
    });
    report.latency = state.latency.percentiles();
    report.connect_latency = state.connect_latency.percentiles();
    report.ack_latency = state.ack_latency.percentiles();
    report.errors = state.errors.snapshot();
    report.elapsed_secs = ctx.started.elapsed().as_secs_f64();
    Ok(report)
}
