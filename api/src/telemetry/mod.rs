//! Logging (JSON lines in the runbook's shape, or text; written by a non-blocking [`pipe`])
//! and the Prometheus recorder.

pub mod pipe;

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat, LogLevel};

/// Latency buckets (seconds) of every `*_duration_seconds` histogram: 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global logger. `RUST_LOG` refines `log.level` when set.
pub fn init_logging(config: &LogConfig) {
    let level = match config.level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // Our crates at the configured level; noisy dependencies only from warn.
    let directives = format!(
        "warn,fluxbase={level},fluxbase_api={level},fluxbase_migrations={level},\
         fluxbase_replication={level},fluxbase_engine={level},fluxbase_auth={level},\
         fluxbase_storage={level}"
    );
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(pipe::NonBlocking(pipe::stdout()));
    let result = match config.format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_target(false)
            .try_init(),
    };
    // A second init (tests building several apps) keeps the first logger.
    let _ = result;
}

/// One JSON object per event: `timestamp`, `level` (lower case), `message`, the event's
/// fields at the top level (so `jq 'select(.slow_query==true)'` works), `target`.
#[derive(Debug, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut map = Map::new();
        map.insert("timestamp".into(), Value::String(rfc3339_now()));
        map.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_ascii_lowercase()),
        );
        event.record(&mut JsonVisitor(&mut map));
        map.insert("target".into(), Value::String(meta.target().to_string()));
        writeln!(writer, "{}", Value::Object(map))
    }
}

/// Collects an event's fields into a JSON map with their native types.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// Current UTC time as `2026-11-22T17:46:44.123Z`, without a date-time dependency.
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then metrics go there.
            let _ = metrics::set_global_recorder(recorder);
            describe_metrics();
            handle
        })
        .clone()
}

/// Help texts, and zero values so the series exist before their first event.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "fluxbase_http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "fluxbase_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    describe_counter!("fluxbase_db_queries_total", "Database queries by result");
    describe_histogram!(
        "fluxbase_db_query_duration_seconds",
        metrics::Unit::Seconds,
        "Database query latency"
    );
    describe_gauge!(
        "fluxbase_db_connections",
        "Open database connections in the pool"
    );
    describe_gauge!(
        "fluxbase_db_connections_idle",
        "Idle database connections in the pool"
    );
    describe_gauge!(
        "fluxbase_db_connections_max",
        "Pool size limit (database.max_connections)"
    );
    describe_gauge!(
        "fluxbase_db_connections_waiting",
        "Requests waiting for a database connection"
    );
    describe_gauge!(
        "fluxbase_system_uptime_seconds",
        "Seconds since the server started"
    );
    describe_counter!(
        "fluxbase_log_lines_dropped_total",
        "Log lines dropped because stdout could not keep up (logging never blocks)"
    );
    metrics::counter!("fluxbase_log_lines_dropped_total").increment(0);
    metrics::counter!("fluxbase_db_queries_total", "status" => "ok").increment(0);
    metrics::counter!("fluxbase_db_queries_total", "status" => "error").increment(0);
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_shape() {
        let ts = super::rfc3339_now();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.starts_with("20") && ts.ends_with('Z'), "{ts}");
    }
}
