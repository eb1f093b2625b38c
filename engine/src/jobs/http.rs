//! The `http` kind: POST a JSON body to a URL, signed so the receiver can verify it came
//! from this server.
//!
//! Payload: `{"url": "https://…", "body": <any JSON>, "headers": {"name": "value"}}`
//! (`body` defaults to `null`, `headers` to none). The request carries
//! `Content-Type: application/json`, `X-Fluxbase-Timestamp: <unix seconds>`,
//! `X-Fluxbase-Signature: v1=<hex HMAC-SHA256(jobs.signing_secret, "<timestamp>.<body>")>`,
//! `X-Fluxbase-Job-Id` and `X-Fluxbase-Attempt`. A receiver recomputes the HMAC over the
//! timestamp, a dot and the raw body, compares in constant time, and refuses old timestamps.
//!
//! Outcome: 2xx completes (the status and up to `jobs.http_max_response_size` bytes of the
//! answer are the result); 3xx fails for good (redirects are not followed); 408 and 429 are
//! retried after `Retry-After` (or the backoff); other 4xx fail for good; 5xx, timeouts and
//! connection failures are retried. The whole exchange is bounded by `jobs.http_timeout`, and
//! no more of an answer than the limit is read: a receiver that hangs, answers 10 MB or
//! redirects forever costs one bounded request.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode, Url, redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::address::{GuardedResolver, RefusedAddress, is_local_name, is_refused};
use super::error::JobError;
use super::handler::{FailureReason, JobFailure, JobHandler, JobRun, Retry, RunResult};

/// Header with the signature (`v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-fluxbase-signature";
/// Header with the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-fluxbase-timestamp";
/// Header with the job id (the same on every attempt: receivers may deduplicate on it).
pub const JOB_ID_HEADER: &str = "x-fluxbase-job-id";
/// Header with the attempt number.
pub const ATTEMPT_HEADER: &str = "x-fluxbase-attempt";
/// Most extra headers a payload may set.
const MAX_HEADERS: usize = 50;
/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;

/// The payload of an `http` job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPayload {
    /// Where to POST.
    pub url: String,
    /// What to POST, as JSON.
    #[serde(default)]
    pub body: Value,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The signature of `body` sent at `timestamp`: `v1=<hex HMAC-SHA256(secret, "ts.body")>`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Checks a URL an `http` job or webhook will POST to, naming `field`: http(s), a host, no
/// credentials, and (unless private URLs are allowed) no literal private address or
/// localhost name. Host names are checked again, resolved, at connect time.
pub fn check_url(text: &str, allow_private: bool, field: &'static str) -> Result<Url, JobError> {
    parse_url(text, allow_private).map_err(|problem| match problem {
        UrlProblem::Invalid(message) => JobError::invalid(field, message),
        UrlProblem::Refused => JobError::invalid(
            field,
            "points to a private, loopback or reserved address (jobs.allow_private_urls is off)",
        ),
    })
}

/// What is wrong with a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlProblem {
    /// Not an http(s) URL a job may use.
    Invalid(String),
    /// Its literal host is a refused address (or a localhost name).
    Refused,
}

/// [`check_url`] without the field.
fn parse_url(text: &str, allow_private: bool) -> Result<Url, UrlProblem> {
    let invalid = |message: String| Err(UrlProblem::Invalid(message));
    if text.len() > MAX_URL_LEN {
        return invalid(format!("must be at most {MAX_URL_LEN} bytes"));
    }
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(err) => return invalid(format!("is not a valid URL: {err}")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return invalid(format!(
            "must be an http or https URL, got scheme {:?}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return invalid("must not carry credentials; send them in headers".into());
    }
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return invalid("must have a host".into()),
    };
    // IPv6 literals come bracketed (`[::1]`).
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let refused = match literal.parse::<std::net::IpAddr>() {
        Ok(ip) => is_refused(ip),
        Err(_) => is_local_name(host),
    };
    if refused && !allow_private {
        return Err(UrlProblem::Refused);
    }
    Ok(url)
}

/// Checks extra headers, naming `field`: valid names and values, and none the server sets.
pub fn check_headers(
    headers: &BTreeMap<String, String>,
    field: &'static str,
) -> Result<HeaderMap, JobError> {
    if headers.len() > MAX_HEADERS {
        return Err(JobError::invalid(
            field,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| JobError::invalid(field, format!("{name:?} is not a header name")))?;
        let reserved = header.as_str().starts_with("x-fluxbase-")
            || matches!(
                header.as_str(),
                "host" | "content-type" | "content-length" | "transfer-encoding" | "connection"
            );
        if reserved {
            return Err(JobError::invalid(
                field,
                format!("{name:?} is set by the server"),
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| JobError::invalid(field, format!("the value of {name:?} is not valid")))?;
        map.insert(header, value);
    }
    Ok(map)
}

/// Runs `http` jobs with one shared client.
pub struct HttpHandler {
    client: Client,
    secret: Vec<u8>,
    allow_private: bool,
    timeout: Duration,
    max_response: usize,
    backoff_max: Duration,
}

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHandler")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpHandler {
    /// A handler with its client: no redirects, no proxies, every host resolved through the
    /// [`GuardedResolver`].
    pub fn new(
        secret: &str,
        allow_private: bool,
        timeout: Duration,
        max_response: usize,
        backoff_max: Duration,
    ) -> Result<HttpHandler, reqwest::Error> {
        // reqwest is built without a bundled crypto provider: ring (already built for the
        // database's TLS) is the process default. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver { allow_private })
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("fluxbase-jobs/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpHandler {
            client,
            secret: secret.as_bytes().to_vec(),
            allow_private,
            timeout,
            max_response,
            backoff_max,
        })
    }

    /// One POST, classified.
    async fn post(&self, job: &JobRun) -> RunResult {
        let payload: HttpPayload = serde_json::from_value(job.payload.clone()).map_err(|err| {
            JobFailure::permanent(FailureReason::InvalidPayload, format!("payload: {err}"))
        })?;
        let invalid =
            |err: JobError| JobFailure::permanent(FailureReason::InvalidPayload, err.to_string());
        let url = match parse_url(&payload.url, self.allow_private) {
            Ok(url) => url,
            Err(UrlProblem::Refused) => {
                return Err(JobFailure::permanent(
                    FailureReason::PrivateAddress,
                    "payload.url points to a private, loopback or reserved address \
                     (jobs.allow_private_urls is off)",
                ));
            }
            Err(UrlProblem::Invalid(message)) => {
                return Err(JobFailure::permanent(
                    FailureReason::InvalidPayload,
                    format!("payload.url {message}"),
                ));
            }
        };
        let mut headers = check_headers(&payload.headers, "payload.headers").map_err(invalid)?;
        let body = serde_json::to_vec(&payload.body).expect("a JSON value serializes");
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let signature = sign(&self.secret, timestamp, &body);
        let fixed = [
            ("content-type", "application/json".to_string()),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, signature),
            (JOB_ID_HEADER, job.id.to_string()),
            (ATTEMPT_HEADER, job.attempt.to_string()),
        ];
        for (name, value) in fixed {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).expect("ASCII header value"),
            );
        }
        let exchange = async {
            let response = self
                .client
                .post(url)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|err| self.classify(err))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let (body, truncated) = read_bounded(response, self.max_response)
                .await
                .map_err(|err| self.classify(err))?;
            Ok::<_, JobFailure>((status, retry_after, body, truncated))
        };
        // reqwest's own timeout covers the whole exchange; this is the same bound again,
        // so nothing a receiver does can hold a worker slot longer.
        let (status, retry_after, body, truncated) =
            match tokio::time::timeout(self.timeout + Duration::from_secs(1), exchange).await {
                Ok(result) => result?,
                Err(_) => return Err(timed_out(self.timeout)),
            };
        outcome(
            status,
            retry_after.map(|d| d.min(self.backoff_max)),
            &body,
            truncated,
        )
    }

    /// A failed exchange: refused address, timeout, or connection failure.
    fn classify(&self, err: reqwest::Error) -> JobFailure {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<RefusedAddress>() {
                return JobFailure::permanent(FailureReason::PrivateAddress, refused.to_string());
            }
            source = e.source();
        }
        if err.is_timeout() {
            return timed_out(self.timeout);
        }
        // The text without the URL (it may carry a token in its query).
        let what = if err.is_connect() {
            "could not connect to the receiver"
        } else if err.is_body() || err.is_decode() {
            "the receiver's answer broke off"
        } else {
            "the request failed"
        };
        let cause = std::error::Error::source(&err)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        JobFailure::retry(FailureReason::Connect, format!("{what}{cause}"))
    }
}

/// The failure of a request that ran past `timeout`.
fn timed_out(timeout: Duration) -> JobFailure {
    JobFailure::retry(
        FailureReason::Timeout,
        format!("no complete answer within {} ms", timeout.as_millis()),
    )
}

/// Reads at most `limit` bytes of the answer; whether more was left unread.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            // Dropping the response closes the connection: the rest is never read.
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// `Retry-After`: delay-seconds or an HTTP-date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(wait.max(0) as u64))
}

/// The job's outcome from the receiver's status.
fn outcome(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    truncated: bool,
) -> RunResult {
    let code = status.as_u16();
    if status.is_success() {
        let body = serde_json::from_slice::<Value>(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        return Ok(Some(
            json!({"status": code, "body": body, "truncated": truncated}),
        ));
    }
    if status.is_redirection() {
        return Err(JobFailure::permanent(
            FailureReason::Redirect,
            format!("the receiver answered {code}; redirects are not followed"),
        ));
    }
    let message = format!("the receiver answered {code}");
    if code == 408 || code == 429 {
        return Err(JobFailure {
            reason: FailureReason::HttpStatus,
            message,
            retry: retry_after.map_or(Retry::Backoff, Retry::After),
        });
    }
    if status.is_client_error() {
        Err(JobFailure::permanent(FailureReason::HttpStatus, message))
    } else {
        Err(JobFailure::retry(FailureReason::HttpStatus, message))
    }
}

impl JobHandler for HttpHandler {
    fn kind(&self) -> &str {
        "http"
    }

    fn open_to_users(&self) -> bool {
        true
    }

    fn validate(&self, payload: &Value) -> Result<(), JobError> {
        let payload: HttpPayload = serde_json::from_value(payload.clone()).map_err(|err| {
            JobError::invalid(
                "payload",
                format!("an http job needs {{\"url\", \"body\", \"headers\"}}: {err}"),
            )
        })?;
        check_url(&payload.url, self.allow_private, "payload.url")?;
        check_headers(&payload.headers, "payload.headers")?;
        Ok(())
    }

    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(self.post(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_public_host() {
        for (url, needle) in [
            ("ftp://example.com/x", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("not a url", "valid URL"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://127.0.0.1:8080/", "private"),
            ("http://[::1]/", "private"),
            ("http://169.254.169.254/latest/meta-data", "private"),
            ("http://localhost/", "private"),
            ("http://10.0.0.5/", "private"),
        ] {
            let err = check_url(url, false, "payload.url").unwrap_err();
            assert_eq!(err.field(), Some("payload.url"));
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
        check_url("https://example.com/hook?x=1", false, "payload.url").unwrap();
        check_url("http://127.0.0.1:8080/", true, "payload.url").unwrap();
    }

    #[test]
    fn headers_set_by_the_server_are_refused() {
        let headers = |k: &str| BTreeMap::from([(k.to_string(), "v".to_string())]);
        check_headers(&headers("authorization"), "h").unwrap();
        for bad in ["X-Fluxbase-Signature", "content-type", "host", "bad header"] {
            assert!(check_headers(&headers(bad), "h").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_dot_body() {
        // RFC 4231-style check against an independent computation.
        let sig = sign(b"secret", 1_700_000_000, b"{\"a\":1}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let expected = ring::hmac::sign(&key, b"1700000000.{\"a\":1}");
        assert_eq!(sig, format!("v1={}", hex::encode(expected.as_ref())));
    }

    #[test]
    fn statuses_decide_retries() {
        let ok = outcome(StatusCode::OK, None, b"{\"ok\":true}", false).unwrap();
        assert_eq!(
            ok,
            Some(json!({"status": 200, "body": {"ok": true}, "truncated": false}))
        );
        let redirect = outcome(StatusCode::FOUND, None, b"", false).unwrap_err();
        assert_eq!(
            (redirect.reason, redirect.retry),
            (FailureReason::Redirect, Retry::No)
        );
        assert_eq!(
            outcome(StatusCode::NOT_FOUND, None, b"", false)
                .unwrap_err()
                .retry,
            Retry::No
        );
        assert_eq!(
            outcome(StatusCode::SERVICE_UNAVAILABLE, None, b"", false)
                .unwrap_err()
                .retry,
            Retry::Backoff
        );
        assert_eq!(
            outcome(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(7)),
                b"",
                false
            )
            .unwrap_err()
            .retry,
            Retry::After(Duration::from_secs(7))
        );
        assert_eq!(
            outcome(StatusCode::REQUEST_TIMEOUT, None, b"", false)
                .unwrap_err()
                .retry,
            Retry::Backoff
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
