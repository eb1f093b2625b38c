//! Latency recording (hdrhistogram, microseconds) and the percentile summary reports carry.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable latency: one minute, in microseconds. Larger values are clamped.
const MAX_MICROS: u64 = 60_000_000;
/// Shards, so thousands of socket tasks rarely contend on one lock.
const SHARDS: usize = 32;

/// A latency recorder shared by many tasks.
///
/// Sharded std `Mutex`es: a lock is held for one `record` only, never across `.await`,
/// and a task picks its shard by its own index, so contention stays low.
pub struct LatencyRecorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder (1 µs – 60 s, 3 significant digits).
    pub fn new() -> Self {
        LatencyRecorder {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }

    /// Records `micros` in the shard of task `index`.
    pub fn record(&self, index: usize, micros: u64) {
        let mut shard = self.shards[index % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shard.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut total = new_histogram();
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Same bounds on both sides, so adding cannot fail.
            let _ = total.add(&*shard);
        }
        total
    }

    /// The summary of everything recorded, or `None` if nothing was.
    pub fn percentiles(&self) -> Option<Percentiles> {
        Percentiles::of(&self.merged())
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarizes a microsecond histogram; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Percentiles {
            count: histogram.len(),
            min_ms: ms(histogram.min()),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

/// Now, in microseconds since the unix epoch (the clock `commit_timestamp` uses).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Parses an RFC 3339 timestamp (`2026-11-22T18:00:00.123456Z`, `…+01:00`, or
/// PostgreSQL's `2026-11-22 18:00:00.123456+00`) into microseconds since the epoch.
pub fn parse_timestamp_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() {
            return None;
        }
        // Keep microsecond precision: pad or truncate to 6 digits.
        let mut scaled = String::with_capacity(6);
        scaled.extend(digits.chars().take(6));
        while scaled.len() < 6 {
            scaled.push('0');
        }
        micros = scaled.parse().ok()?;
    }
    let offset_secs = match &text[i..] {
        "Z" | "z" | "" => 0,
        tz => {
            let sign = match tz.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = &tz[1..];
            let (h, m) = match tz.len() {
                2 => (tz.parse::<i64>().ok()?, 0),
                4 => (tz[..2].parse::<i64>().ok()?, tz[2..].parse::<i64>().ok()?),
                5 if tz.as_bytes()[2] == b':' => {
                    (tz[..2].parse::<i64>().ok()?, tz[3..].parse::<i64>().ok()?)
                }
                _ => return None,
            };
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// Formats microseconds since the epoch as the server writes `commit_timestamp`
/// (`2026-11-22T18:00:00.123456Z`), for the frames of the bare broadcast server.
pub fn format_timestamp_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let (days, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        micros.rem_euclid(1_000_000)
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commit_timestamps() {
        assert_eq!(parse_timestamp_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_micros("2026-11-22T18:00:00.123456Z"),
            Some(1_795_370_400_123_456)
        );
        assert_eq!(
            parse_timestamp_micros("2026-11-22T19:00:00.123456+01:00"),
            Some(1_795_370_400_123_456)
        );
        assert_eq!(
            parse_timestamp_micros("2026-11-22 18:00:00.1234+00"),
            Some(1_795_370_400_123_400)
        );
        assert_eq!(
            parse_timestamp_micros("2000-02-29T12:00:00.5Z"),
            Some(951_825_600_500_000)
        );
        assert_eq!(parse_timestamp_micros("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp_micros("yesterday"), None);
        assert_eq!(parse_timestamp_micros("2026-11-22T18:00:00.Z"), None);
    }

    #[test]
    fn formatted_timestamps_parse_back() {
        assert_eq!(
            format_timestamp_micros(1_795_370_400_123_456),
            "2026-11-22T18:00:00.123456Z"
        );
        for micros in [0, 951_825_600_500_000, 1_795_370_400_000_001, now_micros()] {
            assert_eq!(
                parse_timestamp_micros(&format_timestamp_micros(micros)),
                Some(micros)
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let recorder = LatencyRecorder::new();
        assert!(recorder.percentiles().is_none());
        // 1..=1000 ms, one sample each, spread over shards.
        for (i, ms) in (1..=1000u64).enumerate() {
            recorder.record(i, ms * 1000);
        }
        let p = recorder.percentiles().unwrap();
        assert_eq!(p.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(p.min_ms, 1.0), "{p:?}");
        assert!(close(p.p50_ms, 500.0), "{p:?}");
        assert!(close(p.p95_ms, 950.0), "{p:?}");
        assert!(close(p.p99_ms, 990.0), "{p:?}");
        assert!(close(p.p999_ms, 999.0), "{p:?}");
        assert!(close(p.max_ms, 1000.0), "{p:?}");
        assert!(close(p.mean_ms, 500.5), "{p:?}");
    }

    #[test]
    fn out_of_range_latencies_are_clamped() {
        let recorder = LatencyRecorder::new();
        recorder.record(0, 0);
        recorder.record(0, 10 * MAX_MICROS);
        let p = recorder.percentiles().unwrap();
        assert_eq!(p.count, 2);
        assert!(p.min_ms <= 0.002);
        assert!(p.max_ms >= 59_000.0);
    }
}
