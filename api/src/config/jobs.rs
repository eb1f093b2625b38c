//! `jobs.*`: the background job system — how much one instance runs, leases and
//! heartbeats, retries, the bounds of `http` and `sql` jobs, the signing secret — and the
//! engine's settings built from them.

use serde::{Deserialize, Serialize};

use super::{ByteSize, Dur};

/// Default `jobs.max_concurrent_per_worker` (the operational runbook: "Up from 5").
pub const DEFAULT_JOBS_CONCURRENCY: u32 = 5;
/// Largest `jobs.max_concurrent_per_worker`: each running job may hold a pool connection.
pub const MAX_JOBS_CONCURRENCY: u32 = 1000;
/// Largest `jobs.max_payload_size` and `jobs.http_max_response_size`: both are held in
/// memory and stored in `jsonb`.
pub const MAX_JOBS_PAYLOAD_SIZE: u64 = 64 << 20;
/// Shortest `jobs.signing_secret`, in bytes (the engine's own floor).
pub const MIN_SIGNING_SECRET_LEN: usize = 16;

/// `jobs.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs one instance runs at once.
    pub max_concurrent_per_worker: u32,
    /// Largest job payload, in bytes of JSON (a bigger submit is refused naming `payload`).
    pub max_payload_size: ByteSize,
    /// Let `http` jobs and webhooks reach private, loopback and link-local addresses (off:
    /// refused at submit and again at connect, so users cannot reach the internal network).
    pub allow_private_urls: bool,
    /// A running job whose worker stopped heart-beating is re-queued this long after the
    /// worker's last beat.
    pub lease: Dur,
    /// How often a worker beats, renews its jobs' leases and reaps expired ones.
    pub heartbeat_interval: Dur,
    /// Safety-net poll for due jobs (workers are woken by NOTIFY; this only bounds what a
    /// lost notification could delay).
    pub poll_interval: Dur,
    /// Delay before the first retry; doubles per attempt, with jitter.
    pub backoff_base: Dur,
    /// Longest delay between two attempts.
    pub backoff_max: Dur,
    /// One whole outbound request of an `http` job (connect, send, read the answer).
    pub http_timeout: Dur,
    /// Bytes of a receiver's answer read and kept as the job's result.
    pub http_max_response_size: ByteSize,
    /// `statement_timeout` of a `sql` job.
    pub sql_timeout: Dur,
    /// On shutdown, how long running jobs may finish before they are put back in the queue.
    pub shutdown_timeout: Dur,
    /// HMAC-SHA256 key of the signatures of outbound requests (`FLUXBASE_JOBS_SIGNING_SECRET`,
    /// at least 16 bytes). Unset: generated once and kept in `.fluxbase/jobs-signing-secret`
    /// in embedded mode; derived from the JWT secret with a real database.
    pub signing_secret: Option<String>,
    /// How long rows of stopped workers stay in `jobs.workers`.
    pub stopped_worker_retention: Dur,
}

impl Default for JobsConfig {
    fn default() -> Self {
        let engine = fluxbase_engine::jobs::JobsSettings::default();
        JobsConfig {
            max_concurrent_per_worker: DEFAULT_JOBS_CONCURRENCY,
            max_payload_size: ByteSize(engine.max_payload_size as u64),
            allow_private_urls: engine.allow_private_urls,
            lease: Dur(engine.lease),
            heartbeat_interval: Dur(engine.heartbeat_interval),
            poll_interval: Dur(engine.poll_interval),
            backoff_base: Dur(engine.backoff_base),
            backoff_max: Dur(engine.backoff_max),
            http_timeout: Dur(engine.http_timeout),
            http_max_response_size: ByteSize(engine.http_max_response_size as u64),
            sql_timeout: Dur(engine.sql_timeout),
            shutdown_timeout: Dur(engine.shutdown_timeout),
            signing_secret: None,
            stopped_worker_retention: Dur(engine.stopped_worker_retention),
        }
    }
}

impl JobsConfig {
    /// The rules of `jobs.*`, each error naming its key.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, msg: String| {
            if !ok {
                errors.push((key.to_string(), msg));
            }
        };
        check(
            (1..=MAX_JOBS_CONCURRENCY).contains(&self.max_concurrent_per_worker),
            "jobs.max_concurrent_per_worker",
            format!("must be between 1 and {MAX_JOBS_CONCURRENCY}"),
        );
        check(
            (1..=MAX_JOBS_PAYLOAD_SIZE).contains(&self.max_payload_size.0),
            "jobs.max_payload_size",
            format!("must be between 1 byte and {MAX_JOBS_PAYLOAD_SIZE} (64MB)"),
        );
        check(
            self.http_max_response_size.0 <= MAX_JOBS_PAYLOAD_SIZE,
            "jobs.http_max_response_size",
            format!("must be at most {MAX_JOBS_PAYLOAD_SIZE} (64MB)"),
        );
        for (value, key) in [
            (self.lease, "jobs.lease"),
            (self.heartbeat_interval, "jobs.heartbeat_interval"),
            (self.poll_interval, "jobs.poll_interval"),
            (self.backoff_base, "jobs.backoff_base"),
            (self.http_timeout, "jobs.http_timeout"),
            (self.sql_timeout, "jobs.sql_timeout"),
        ] {
            check(!value.get().is_zero(), key, "must be more than 0s".into());
        }
        check(
            self.heartbeat_interval < self.lease,
            "jobs.heartbeat_interval",
            format!(
                "{} is not shorter than jobs.lease ({}): leases would expire between beats",
                self.heartbeat_interval, self.lease
            ),
        );
        check(
            self.backoff_max >= self.backoff_base,
            "jobs.backoff_max",
            format!(
                "{} is shorter than jobs.backoff_base ({})",
                self.backoff_max, self.backoff_base
            ),
        );
        if let Some(secret) = &self.signing_secret {
            check(
                secret.len() >= MIN_SIGNING_SECRET_LEN,
                "jobs.signing_secret",
                format!(
                    "must be at least {MIN_SIGNING_SECRET_LEN} bytes, e.g. `openssl rand -hex 32`"
                ),
            );
        }
        errors
    }
}

impl super::Config {
    /// The engine's job settings from `jobs.*`, with the resolved signing secret.
    pub fn jobs_settings(&self, signing_secret: String) -> fluxbase_engine::jobs::JobsSettings {
        let j = &self.jobs;
        fluxbase_engine::jobs::JobsSettings {
            max_concurrent_per_worker: j.max_concurrent_per_worker as usize,
            max_payload_size: usize::try_from(j.max_payload_size.0).unwrap_or(usize::MAX),
            allow_private_urls: j.allow_private_urls,
            lease: j.lease.get(),
            heartbeat_interval: j.heartbeat_interval.get(),
            poll_interval: j.poll_interval.get(),
            backoff_base: j.backoff_base.get(),
            backoff_max: j.backoff_max.get(),
            http_timeout: j.http_timeout.get(),
            http_max_response_size: usize::try_from(j.http_max_response_size.0)
                .unwrap_or(usize::MAX),
            sql_timeout: j.sql_timeout.get(),
            shutdown_timeout: j.shutdown_timeout.get(),
            signing_secret,
            stopped_worker_retention: j.stopped_worker_retention.get(),
            ..fluxbase_engine::jobs::JobsSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, load};

    #[test]
    fn defaults_are_valid_and_match_the_engine() {
        let config = Config::default();
        assert!(config.jobs.validate().is_empty());
        let settings = config.jobs_settings("0123456789abcdef".into());
        settings.validate().unwrap();
        assert_eq!(settings.max_concurrent_per_worker, 5);
        let engine = fluxbase_engine::jobs::JobsSettings::default();
        assert_eq!(settings.lease, engine.lease);
        assert_eq!(settings.max_payload_size, engine.max_payload_size);
    }

    #[test]
    fn every_key_is_an_environment_variable_and_bad_values_name_their_key() {
        let env = |vars: &[(&str, &str)]| {
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let loaded = load(
            Some(std::path::Path::new("/dev/null")),
            env(&[
                ("FLUXBASE_JOBS_MAX_CONCURRENT_PER_WORKER", "10"),
                ("FLUXBASE_JOBS_MAX_PAYLOAD_SIZE", "2MB"),
                ("FLUXBASE_JOBS_ALLOW_PRIVATE_URLS", "true"),
                ("FLUXBASE_JOBS_LEASE", "2s"),
                ("FLUXBASE_JOBS_HEARTBEAT_INTERVAL", "250ms"),
                (
                    "FLUXBASE_JOBS_SIGNING_SECRET",
                    "a-signing-secret-of-32-bytes-ok!",
                ),
                ("FLUXBASE_JOBS_HTTP_TIMEOUT", "1m"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(loaded.jobs.max_concurrent_per_worker, 10);
        assert_eq!(loaded.jobs.max_payload_size.0, 2 << 20);
        assert!(loaded.jobs.allow_private_urls);
        assert_eq!(loaded.jobs.lease, Dur::secs(2));
        assert_eq!(
            loaded.jobs.heartbeat_interval.get(),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(loaded.jobs.http_timeout, Dur::secs(60));
        assert!(
            !loaded.redacted().to_string().contains("a-signing-secret"),
            "the signing secret is redacted"
        );

        let errors = load(
            Some(std::path::Path::new("/dev/null")),
            env(&[
                ("FLUXBASE_JOBS_MAX_CONCURRENT_PER_WORKER", "0"),
                ("FLUXBASE_JOBS_LEASE", "1s"),
                ("FLUXBASE_JOBS_HEARTBEAT_INTERVAL", "5s"),
                ("FLUXBASE_JOBS_BACKOFF_MAX", "1ms"),
                ("FLUXBASE_JOBS_SIGNING_SECRET", "short"),
                ("FLUXBASE_JOBS_MAX_PAYLOAD_SIZE", "1TB"),
                ("FLUXBASE_JOBS_SQL_TIMEOUT", "0"),
                ("FLUXBASE_JOBS_POLL_INTERVAL", "soon"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "jobs.max_concurrent_per_worker",
            "jobs.heartbeat_interval",
            "jobs.backoff_max",
            "jobs.signing_secret",
            "jobs.max_payload_size",
            "jobs.sql_timeout",
            "jobs.poll_interval",
        ] {
            assert!(keys.contains(&key), "{key} not in {errors:?}");
        }
        let secret = errors
            .iter()
            .find(|e| e.key == "jobs.signing_secret")
            .unwrap();
        assert!(
            !secret.to_string().contains("short"),
            "a secret is never echoed: {secret}"
        );
    }
}
