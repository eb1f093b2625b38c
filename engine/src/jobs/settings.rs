//! The `jobs.*` settings, with their defaults and a `validate()` naming the key.

use std::time::Duration;

/// Default `jobs.max_concurrent_per_worker` (the runbook: "Up from 5").
pub const DEFAULT_MAX_CONCURRENT: usize = 5;
/// Default `jobs.max_payload_size`: 1 MiB of JSON.
pub const DEFAULT_MAX_PAYLOAD_SIZE: usize = 1024 * 1024;
/// Default `max_attempts` of a job that does not say.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Largest `max_attempts` accepted: more is a mistake, not a policy.
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Settings of the jobs service.
#[derive(Clone)]
pub struct JobsSettings {
    /// `jobs.max_concurrent_per_worker`: jobs this instance runs at once (0: this instance
    /// submits and schedules but runs nothing).
    pub max_concurrent_per_worker: usize,
    /// `jobs.max_payload_size`: largest payload, in bytes of JSON.
    pub max_payload_size: usize,
    /// `jobs.allow_private_urls`: let `http` jobs reach private, loopback, link-local and
    /// unique-local addresses (off: such URLs are refused, at submit and again at connect).
    pub allow_private_urls: bool,
    /// `jobs.lease`: how long a claimed job stays with its worker without a heartbeat; a
    /// job whose worker stopped heart-beating is re-queued this long after the last beat.
    pub lease: Duration,
    /// `jobs.heartbeat_interval`: how often a worker beats, renews its leases and reaps
    /// expired ones (well under `lease`).
    pub heartbeat_interval: Duration,
    /// `jobs.poll_interval`: the safety-net poll for due jobs (NOTIFY wakes workers at once;
    /// this only bounds what a lost notification could delay).
    pub poll_interval: Duration,
    /// `jobs.backoff_base`: delay before the first retry; doubles per attempt, with jitter.
    pub backoff_base: Duration,
    /// `jobs.backoff_max`: longest delay between attempts.
    pub backoff_max: Duration,
    /// `jobs.http_timeout`: one whole outbound request (connect, send, read the answer).
    pub http_timeout: Duration,
    /// `jobs.http_max_response_size`: bytes of a receiver's answer read and kept.
    pub http_max_response_size: usize,
    /// `jobs.sql_timeout`: `statement_timeout` of a `sql` job.
    pub sql_timeout: Duration,
    /// `jobs.shutdown_timeout`: how long running jobs may finish after shutdown begins;
    /// jobs still running then are put back in the queue.
    pub shutdown_timeout: Duration,
    /// `jobs.signing_secret`: the per-server HMAC-SHA256 key of outbound signatures.
    pub signing_secret: String,
    /// The host name shown in `jobs.workers`.
    pub hostname: String,
    /// How long `stopped` rows stay in `jobs.workers` before they are deleted.
    pub stopped_worker_retention: Duration,
}

impl std::fmt::Debug for JobsSettings {
    /// Everything but the signing secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsSettings")
            .field("max_concurrent_per_worker", &self.max_concurrent_per_worker)
            .field("max_payload_size", &self.max_payload_size)
            .field("allow_private_urls", &self.allow_private_urls)
            .field("lease", &self.lease)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("poll_interval", &self.poll_interval)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("http_timeout", &self.http_timeout)
            .field("http_max_response_size", &self.http_max_response_size)
            .field("sql_timeout", &self.sql_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

impl Default for JobsSettings {
    fn default() -> Self {
        JobsSettings {
            max_concurrent_per_worker: DEFAULT_MAX_CONCURRENT,
            max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE,
            allow_private_urls: false,
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(30),
            http_max_response_size: 64 * 1024,
            sql_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            signing_secret: String::new(),
            hostname: local_hostname(),
            stopped_worker_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl JobsSettings {
    /// Checks the settings, naming the first bad key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            (self.lease, "jobs.lease"),
            (self.heartbeat_interval, "jobs.heartbeat_interval"),
            (self.poll_interval, "jobs.poll_interval"),
            (self.backoff_base, "jobs.backoff_base"),
            (self.http_timeout, "jobs.http_timeout"),
            (self.sql_timeout, "jobs.sql_timeout"),
        ];
        for (value, key) in positive {
            if value.is_zero() {
                return Err(format!("{key} must be greater than zero"));
            }
        }
        if self.heartbeat_interval >= self.lease {
            return Err(
                "jobs.heartbeat_interval must be shorter than jobs.lease (leases would expire \
                 between beats)"
                    .into(),
            );
        }
        if self.backoff_max < self.backoff_base {
            return Err("jobs.backoff_max must not be shorter than jobs.backoff_base".into());
        }
        if self.max_payload_size == 0 {
            return Err("jobs.max_payload_size must be greater than zero".into());
        }
        if self.signing_secret.len() < 16 {
            return Err("jobs.signing_secret must be at least 16 bytes".into());
        }
        Ok(())
    }
}

/// The message of [`derive_signing_secret`]'s HMAC: names the purpose, so the derived key
/// is useless for anything else.
pub const SIGNING_SECRET_CONTEXT: &str = "fluxbase-jobs-signing-secret-v1";

/// A signing secret derived from another secret (the server's JWT secret): the hex
/// HMAC-SHA256 of [`SIGNING_SECRET_CONTEXT`] under `master`. One way: a receiver that holds
/// it can verify signatures but learns nothing of `master` (it cannot mint tokens). Every
/// instance with the same `master` derives the same key. Reproducible with
/// `printf %s fluxbase-jobs-signing-secret-v1 | openssl dgst -sha256 -hmac "$SECRET"`.
pub fn derive_signing_secret(master: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, master);
    hex::encode(ring::hmac::sign(&key, SIGNING_SECRET_CONTEXT.as_bytes()).as_ref())
}

/// The kernel's host name, or `unknown`.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_secret_is_the_documented_hmac() {
        // `printf %s fluxbase-jobs-signing-secret-v1 | openssl dgst -sha256 -hmac key`
        // (the value openssl 3 printed, kept so the README's command stays true).
        let derived = derive_signing_secret(b"key");
        assert_eq!(
            derived,
            "e2ac9439e6db8d30a88be14bbce982a794cd409c36d2d3625687479eaad02a6b"
        );
        assert_ne!(derived, derive_signing_secret(b"other key"));
    }

    #[test]
    fn defaults_need_only_a_secret_and_bad_keys_are_named() {
        let mut s = JobsSettings::default();
        assert!(s.validate().unwrap_err().contains("jobs.signing_secret"));
        s.signing_secret = "0123456789abcdef".into();
        s.validate().unwrap();
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        s.heartbeat_interval = s.lease;
        assert!(
            s.validate()
                .unwrap_err()
                .contains("jobs.heartbeat_interval")
        );
    }
}
