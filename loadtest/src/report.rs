//! The result of a run: serialized to JSON (`--out`) and rendered as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{Scenario, ScenarioConfig};
use crate::latency::Percentiles;
use crate::ledger::SequenceCounts;
use crate::process::ProcessStats;

/// Everything one scenario run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    /// Unix seconds at the start of the run.
    pub started_at: u64,
    /// Whole run, setup to teardown.
    pub elapsed_secs: f64,
    /// The measured phase (writes / requests / hold), which throughput divides by.
    pub measured_secs: f64,
    /// The configuration, without secrets.
    pub config: ScenarioConfig,
    /// The harness's table, if it made one.
    pub table: Option<String>,
    pub sockets: Option<SocketStats>,
    /// Sequence accounting summed over fast subscribers that were acknowledged.
    pub events: Option<EventStats>,
    pub writes: Option<WriteStats>,
    /// `ws-ceiling`: what the bare server's broadcast loop sent.
    pub broadcast: Option<BroadcastStats>,
    pub requests: Option<RequestStats>,
    /// Commit → receive (realtime) or request → response (`rest`).
    pub latency: Option<Percentiles>,
    /// TCP connect + WebSocket handshake.
    pub connect_latency: Option<Percentiles>,
    /// Subscribe → ack.
    pub ack_latency: Option<Percentiles>,
    /// The server process, when `server_pid` was given.
    pub server: Option<ProcessStats>,
    /// Server RSS divided by subscribed sockets, at the end of the ack phase.
    pub server_rss_per_socket_bytes: Option<f64>,
    /// The harness itself (it shares the machine's cores with the server).
    pub harness: Option<ProcessStats>,
    /// `GET /api/v1/monitoring/metrics` before and after, as the server returned it.
    pub server_metrics_before: Option<serde_json::Value>,
    pub server_metrics_after: Option<serde_json::Value>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// The harness's RLIMIT_NOFILE soft limit during the run.
    pub nofile_limit: u64,
}

/// Socket counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SocketStats {
    pub planned: usize,
    pub connected: usize,
    pub acked: usize,
    pub failed: usize,
    /// Fast sockets the server closed (or reset) during the run.
    pub closed_early: usize,
    /// `slow-clients`: sockets that never read.
    pub slow: usize,
    /// How the slow sockets ended (`close:4008`, `read:reset`, `still_open`).
    pub slow_outcomes: BTreeMap<String, usize>,
}

/// Event accounting.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventStats {
    #[serde(flatten)]
    pub counts: SequenceCounts,
    /// Subscribers that lost at least one event.
    pub subscribers_with_loss: usize,
    /// Delivered events (duplicates excluded) per second of the measured phase.
    pub delivered_per_sec: f64,
    /// Mean size of an event frame as received, in bytes (to check that `ws-ceiling` and
    /// `realtime-public` push frames of the same size).
    pub frame_bytes_mean: f64,
}

/// Writes to PostgreSQL.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteStats {
    pub target_rate: f64,
    pub committed: u64,
    pub failed: u64,
    pub committed_per_sec: f64,
}

/// The ceiling server's broadcast.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BroadcastStats {
    /// Messages/s offered to every socket (0 = as fast as the sockets drain).
    pub target_rate: f64,
    /// Messages broadcast; each to every socket.
    pub messages: u64,
    /// Sockets the loop fed.
    pub sockets: usize,
    pub messages_per_sec: f64,
    /// Bytes of one frame as the server wrote it.
    pub frame_bytes: usize,
}

/// HTTP requests of the `rest` scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestStats {
    pub target_rate: f64,
    pub sent: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Responses by status code (the SQL baseline counts a transaction as 200).
    pub by_status: BTreeMap<u16, u64>,
    pub per_sec: f64,
    /// Rows each request reads or writes (`rest --case`; 0 for a `--path` template).
    pub rows_per_request: u64,
    /// Rows of successful requests per second.
    pub rows_per_sec: f64,
}

impl Report {
    /// True when no event was lost, duplicated, leaked or reordered, every socket
    /// subscribed and stayed, and every request got a 2xx: the correctness check of the
    /// CI runs (no timing involved).
    pub fn is_clean(&self) -> bool {
        let events_ok = self.events.as_ref().is_none_or(|e| {
            e.counts.lost == 0
                && e.counts.duplicated == 0
                && e.counts.unexpected == 0
                && e.counts.reordered == 0
        });
        let sockets_ok = self
            .sockets
            .as_ref()
            .is_none_or(|s| s.failed == 0 && s.closed_early == 0);
        let requests_ok = self.requests.as_ref().is_none_or(|r| {
            if self.scenario == Scenario::Auth {
                // Shedding (503 with Retry-After) is the designed answer to the storm.
                r.ok > 0
                    && r.by_status
                        .keys()
                        .all(|s| *s == 503 || (200..300).contains(s))
            } else {
                r.ok == r.sent
            }
        });
        let errors_ok = self.scenario != Scenario::Auth || self.errors.is_empty();
        events_ok && sockets_ok && requests_ok && errors_ok
    }

    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, "  {k:<26} {v}");
        };
        row("scenario", self.scenario.name().to_owned());
        row(
            "measured / elapsed",
            format!("{:.1} s / {:.1} s", self.measured_secs, self.elapsed_secs),
        );
        if let Some(table) = &self.table {
            row("table", format!("public.{table}"));
        }
        if let Some(s) = &self.sockets {
            row(
                "sockets",
                format!(
                    "planned {} connected {} acked {} failed {} closed early {}",
                    s.planned, s.connected, s.acked, s.failed, s.closed_early
                ),
            );
            if s.slow > 0 {
                row(
                    "slow sockets",
                    format!("{} → {:?}", s.slow, s.slow_outcomes),
                );
            }
        }
        if let Some(w) = &self.writes {
            row(
                "writes",
                format!(
                    "committed {} failed {} ({:.0}/s, target {:.0}/s)",
                    w.committed, w.failed, w.committed_per_sec, w.target_rate
                ),
            );
        }
        if let Some(e) = &self.events {
            let c = &e.counts;
            row(
                "events",
                format!(
                    "expected {} delivered {} lost {} duplicated {} unexpected {} reordered {}",
                    c.expected, c.delivered, c.lost, c.duplicated, c.unexpected, c.reordered
                ),
            );
            row("delivered/s", format!("{:.0}", e.delivered_per_sec));
            row("frame bytes (mean)", format!("{:.0}", e.frame_bytes_mean));
            if e.subscribers_with_loss > 0 {
                row("subscribers with loss", e.subscribers_with_loss.to_string());
            }
        }
        if let Some(b) = &self.broadcast {
            row(
                "broadcast",
                format!(
                    "{} messages to {} sockets ({:.0}/s, target {}), frame {} bytes",
                    b.messages,
                    b.sockets,
                    b.messages_per_sec,
                    if b.target_rate > 0.0 {
                        format!("{:.0}/s", b.target_rate)
                    } else {
                        "max".into()
                    },
                    b.frame_bytes
                ),
            );
        }
        if let Some(r) = &self.requests {
            row(
                "requests",
                format!(
                    "sent {} ok {} ({:.0}/s, target {}) by status {:?}",
                    r.sent,
                    r.ok,
                    r.per_sec,
                    if r.target_rate > 0.0 {
                        format!("{:.0}/s", r.target_rate)
                    } else {
                        "max".into()
                    },
                    r.by_status
                ),
            );
            if r.rows_per_request > 0 {
                row(
                    "rows",
                    format!(
                        "{} per request, {:.0}/s",
                        r.rows_per_request, r.rows_per_sec
                    ),
                );
            }
        }
        let latency = |p: &Option<Percentiles>| match p {
            Some(p) => format!(
                "p50 {:.2} p95 {:.2} p99 {:.2} p999 {:.2} max {:.2} ms (n={})",
                p.p50_ms, p.p95_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
            ),
            None => "-".to_owned(),
        };
        let label = match self.scenario {
            Scenario::Rest | Scenario::Auth => "latency (request)",
            Scenario::WsCeiling => "latency (send→client)",
            _ => "latency (commit→client)",
        };
        if self.latency.is_some() || self.events.is_some() || self.requests.is_some() {
            row(label, latency(&self.latency));
        }
        if self.sockets.is_some() {
            row("connect (tcp+ws)", latency(&self.connect_latency));
            row("subscribe → ack", latency(&self.ack_latency));
        }
        for (name, stats) in [("server", &self.server), ("harness", &self.harness)] {
            if let Some(p) = stats {
                row(
                    &format!("{name} cpu (pid {})", p.pid),
                    format!(
                        "avg {:.0}% max {:.0}%",
                        p.cpu_avg_percent, p.cpu_max_percent
                    ),
                );
                row(
                    &format!("{name} rss"),
                    format!(
                        "start {} max {} end {}",
                        mib(p.rss_start_bytes),
                        mib(p.rss_max_bytes),
                        mib(p.rss_end_bytes)
                    ),
                );
            }
        }
        if let Some(p) = self
            .server
            .as_ref()
            .filter(|_| self.scenario == Scenario::Auth)
        {
            row(
                "server rss growth",
                mib(p.rss_max_bytes.saturating_sub(p.rss_start_bytes)),
            );
        }
        if let Some(per) = self.server_rss_per_socket_bytes {
            row("server rss per socket", format!("{:.1} KiB", per / 1024.0));
        }
        if self.errors.is_empty() {
            row("errors", "none".to_owned());
        } else {
            for (kind, n) in &self.errors {
                row(&format!("error {kind}"), n.to_string());
            }
        }
        row(
            "verdict",
            if self.is_clean() {
                "clean".into()
            } else {
                "NOT CLEAN".into()
            },
        );
        out
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
