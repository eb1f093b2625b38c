//! The scenarios: realtime (owner, public, slow clients, connect storm), REST, and the
//! sign-in/sign-up storm (`auth`).

pub mod auth;
pub mod ceiling;
pub mod realtime;
pub mod rest;
pub mod sockets;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::ScenarioConfig;
use crate::error::{Error, Result};
use crate::http;
use crate::process::{ProcessSampler, ProcessStats};
use crate::report::Report;
use crate::target::Target;

/// What every scenario starts from.
pub struct Context {
    pub target: Target,
    pub started: std::time::Instant,
    pub started_at: u64,
    pub nofile_limit: u64,
}

impl Context {
    /// Checks the target and that the server answers `/health`.
    pub async fn prepare(config: &ScenarioConfig, nofile_limit: u64) -> Result<Self> {
        let target = Target::parse(&config.server_url)?;
        // The other instances must be loopback servers too.
        for url in &config.spread_urls {
            Target::parse(url)?;
        }
        let health =
            tokio::time::timeout(config.connect_timeout, http::get(&target, "/health")).await;
        match health {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(Error::Io {
                    context: "the server does not answer GET /health",
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Io {
                    context: "the server does not answer GET /health",
                    source: std::io::ErrorKind::TimedOut.into(),
                });
            }
        }
        Ok(Context {
            target,
            started: std::time::Instant::now(),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            nofile_limit,
        })
    }

    /// An empty report for this run, filled in by the scenario.
    pub fn report(&self, config: &ScenarioConfig) -> Report {
        Report {
            scenario: config.scenario,
            started_at: self.started_at,
            elapsed_secs: 0.0,
            measured_secs: 0.0,
            config: config.clone(),
            table: None,
            sockets: None,
            events: None,
            writes: None,
            broadcast: None,
            requests: None,
            latency: None,
            connect_latency: None,
            ack_latency: None,
            server: None,
            server_rss_per_socket_bytes: None,
            harness: None,
            server_metrics_before: None,
            server_metrics_after: None,
            errors: Default::default(),
            nofile_limit: self.nofile_limit,
        }
    }

    /// `GET /api/v1/monitoring/metrics` as JSON, or `None` if the server has none yet.
    pub async fn metrics(&self) -> Option<serde_json::Value> {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            http::get(&self.target, "/api/v1/monitoring/metrics"),
        )
        .await
        .ok()?
        .ok()?;
        if response.status != 200 {
            return None;
        }
        serde_json::from_slice(&response.body).ok()
    }
}

/// Samplers of the server (when its pid is known) and of the harness itself.
pub struct Samplers {
    pub server: Option<ProcessSampler>,
    pub harness: Option<ProcessSampler>,
}

impl Samplers {
    /// Starts sampling; warns when the server pid cannot be read.
    pub fn start(config: &ScenarioConfig) -> Self {
        let server = config.server_pid.and_then(|pid| {
            let sampler = ProcessSampler::start(pid, config.sample_interval);
            if sampler.is_none() {
                eprintln!("warning: cannot read /proc/{pid}: no server cpu/rss figures");
            }
            sampler
        });
        Samplers {
            server,
            harness: ProcessSampler::start(std::process::id(), config.sample_interval),
        }
    }

    /// Stops and summarizes both.
    pub async fn finish(self) -> (Option<ProcessStats>, Option<ProcessStats>) {
        let server = match self.server {
            Some(s) => Some(s.finish().await),
            None => None,
        };
        let harness = match self.harness {
            Some(s) => Some(s.finish().await),
            None => None,
        };
        (server, harness)
    }
}
