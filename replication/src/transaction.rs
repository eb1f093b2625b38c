//! What the stream emits: whole committed transactions of typed row changes.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::lsn::Lsn;
use crate::protocol::PG_EPOCH_OFFSET_MICROS;

/// A committed transaction, delivered whole and in commit order.
#[derive(Debug, Clone, Serialize)]
pub struct Transaction {
    /// Transaction id; 0 for a non-transactional logical message.
    pub xid: u32,
    /// WAL position of the Begin message.
    pub begin_lsn: Lsn,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// LSN just past the commit: what the consumer acknowledges, and the deduplication key.
    pub end_lsn: Lsn,
    /// Commit time.
    pub commit_timestamp: Timestamp,
    /// Row changes in WAL order.
    pub changes: Vec<Change>,
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Op {
    /// New row.
    Insert,
    /// Changed row.
    Update,
    /// Removed row.
    Delete,
    /// Table emptied.
    Truncate,
    /// `pg_logical_emit_message` payload.
    Message,
}

impl Op {
    /// Lower-case name, used as the `op` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
            Op::Message => "message",
        }
    }
}

/// Name and type of a column, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type name (`int4`, `_text`, an enum's name…).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// A payload of `pg_logical_emit_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalMessage {
    /// Prefix given by the emitter.
    pub prefix: String,
    /// Content as text when it is UTF-8, else `\x` hex.
    pub content: String,
}

/// One row change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// What happened.
    pub op: Op,
    /// Schema of the table (empty for messages).
    #[serde(serialize_with = "serialize_deref")]
    pub schema: Arc<str>,
    /// Table name (empty for messages).
    #[serde(serialize_with = "serialize_deref")]
    pub table: Arc<str>,
    /// Table OID.
    pub relation_id: u32,
    /// The table's columns; shared by every change of one relation version.
    #[serde(serialize_with = "serialize_deref")]
    pub columns: Arc<[Column]>,
    /// New row (insert, update). Unchanged TOAST columns are absent, see `unchanged_toast`.
    pub record: Option<Map<String, Value>>,
    /// Old row (delete; update when the server sent one): the key columns, or every column
    /// under REPLICA IDENTITY FULL.
    pub old_record: Option<Map<String, Value>>,
    /// Primary-key columns and values (from the new row, or the old one for deletes).
    pub primary_key: Option<Map<String, Value>>,
    /// Columns whose TOASTed value did not change and was not sent: absent from `record`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchanged_toast: Vec<String>,
    /// json/jsonb columns of `record` whose value is the JSON `null` literal, which is a
    /// value (`IS NOT NULL`), unlike SQL NULL. Both are `null` in `record`: plain JSON for
    /// clients; this list is what tells them apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub json_nulls: Vec<String>,
    /// The same for `old_record`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub old_json_nulls: Vec<String>,
    /// The payload when `op` is `Message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<LogicalMessage>,
}

/// Serializes an `Arc` as its contents (serde's `rc` feature is not enabled workspace-wide).
fn serialize_deref<T: ?Sized + Serialize, S: Serializer>(
    value: &Arc<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    (**value).serialize(s)
}

/// A point in time, microseconds since the Unix epoch; serialized as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From PostgreSQL's wire form, microseconds since 2000-01-01.
    pub fn from_pg_micros(micros: i64) -> Self {
        Timestamp(micros.saturating_add(PG_EPOCH_OFFSET_MICROS))
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        self.0
    }

    /// From PostgreSQL's ISO text output of a `timestamptz`
    /// (`2024-01-02 03:04:05.123456+05:30`, zone `+HH`, `+HH:MM` or `+HH:MM:SS`, fraction
    /// optional), as wal2json writes commit times. `None` for anything else (BC dates,
    /// infinities, other date styles).
    pub fn from_pg_text(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits = |from: usize, len: usize| -> Option<i64> {
            let part = b.get(from..from + len)?;
            part.iter()
                .all(u8::is_ascii_digit)
                .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        };
        if b.len() < 22
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b' '
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut pos = 19;
        let mut micros = 0i64;
        if b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            let len = pos - start;
            if len == 0 || len > 6 {
                return None;
            }
            micros = digits(start, len)? * 10i64.pow(6 - len as u32);
        }
        let sign = match b.get(pos)? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let mut offset = digits(pos + 1, 2)? * 3600;
        pos += 3;
        for unit in [60, 1] {
            if pos == b.len() {
                break;
            }
            if b[pos] != b':' {
                return None;
            }
            offset += digits(pos + 1, 2)? * unit;
            pos += 3;
        }
        if pos != b.len() {
            return None;
        }
        let days = days_from_civil(year, month as u32, day as u32);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - sign * offset;
        Some(Timestamp(secs * 1_000_000 + micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (days, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            tod / 3600,
            tod % 3600 / 60,
            tod % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01 (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Timestamp::from_pg_micros(0).to_string(),
            "2000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp(1_709_251_200_000_001).to_string(),
            "2024-03-01T00:00:00.000001Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn parses_timestamptz_text() {
        let parse = |s| Timestamp::from_pg_text(s).map(|t| t.to_string());
        assert_eq!(
            parse("2024-03-01 00:00:00.000001+00").as_deref(),
            Some("2024-03-01T00:00:00.000001Z")
        );
        assert_eq!(
            parse("2026-11-23 00:28:26.30612+05:30").as_deref(),
            Some("2026-11-22T18:58:26.306120Z")
        );
        assert_eq!(
            parse("1969-12-31 20:00:00-04").as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            parse("2000-01-01 00:00:00+00:00:30").as_deref(),
            Some("1999-12-31T23:59:30.000000Z")
        );
        for bad in [
            "infinity",
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:05.+00",
            "2024-13-02 03:04:05+00",
            "2024-01-02 03:04:05+00x",
            "２０２４-01-02 03:04:05+00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
