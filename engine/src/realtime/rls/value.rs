//! Typed values for in-process policy evaluation: SQL types, datums read from decoded rows
//! and claims, the casts the compiled subset allows, and comparisons that agree with
//! PostgreSQL's operators.
//!
//! Every conversion here either produces exactly what PostgreSQL would, or reports
//! [`Undecided`]: an input PostgreSQL would reject (its cast would raise an error) or one
//! whose PostgreSQL result we cannot reproduce exactly (float text output, `NaN`…) is never
//! guessed; the decision then goes to SQL.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

pub use super::input::{
    Decimal, format_uuid, parse_date, parse_float, parse_timestamp, parse_uuid,
};
use super::input::{parse_plain_int, special_float};

/// The value cannot be computed in-process exactly: decide with SQL instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided;

/// SQL types the compiled subset understands; everything else is [`SqlType::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    /// `boolean`
    Bool,
    /// `smallint`
    Int2,
    /// `integer`
    Int4,
    /// `bigint`
    Int8,
    /// `numeric` without a type modifier.
    Numeric,
    /// `real`
    Float4,
    /// `double precision`
    Float8,
    /// `text` and unbounded `character varying` (same comparison semantics).
    Text,
    /// `uuid`
    Uuid,
    /// `jsonb`
    Jsonb,
    /// `timestamp without time zone`
    Timestamp,
    /// `timestamp with time zone`
    TimestampTz,
    /// `date`
    Date,
    /// Any other type, by name: only `IS NULL` tests are compiled on it.
    Other(String),
}

impl SqlType {
    /// The type a type OID denotes (built-in OIDs are fixed across PostgreSQL versions).
    pub fn from_oid(oid: u32, name: &str) -> SqlType {
        match oid {
            16 => SqlType::Bool,
            21 => SqlType::Int2,
            23 => SqlType::Int4,
            20 => SqlType::Int8,
            1700 => SqlType::Numeric,
            700 => SqlType::Float4,
            701 => SqlType::Float8,
            25 | 1043 => SqlType::Text,
            2950 => SqlType::Uuid,
            3802 => SqlType::Jsonb,
            1114 => SqlType::Timestamp,
            1184 => SqlType::TimestampTz,
            1082 => SqlType::Date,
            _ => SqlType::Other(name.to_string()),
        }
    }

    /// The type a cast's type name denotes as printed by `pg_get_expr`; a type modifier
    /// (`numeric(10,2)`, `character varying(5)`) changes values, so it is `Other`.
    pub fn from_cast_name(name: &str, has_modifier: bool, array_dims: usize) -> SqlType {
        if has_modifier || array_dims > 0 {
            return SqlType::Other(name.to_string());
        }
        match name {
            "boolean" => SqlType::Bool,
            "smallint" => SqlType::Int2,
            "integer" => SqlType::Int4,
            "bigint" => SqlType::Int8,
            "numeric" => SqlType::Numeric,
            "real" => SqlType::Float4,
            "double precision" => SqlType::Float8,
            "text" | "character varying" => SqlType::Text,
            "uuid" => SqlType::Uuid,
            "jsonb" => SqlType::Jsonb,
            "timestamp without time zone" => SqlType::Timestamp,
            "timestamp with time zone" => SqlType::TimestampTz,
            "date" => SqlType::Date,
            other => SqlType::Other(other.to_string()),
        }
    }

    /// Whether values compare as numbers.
    pub fn is_number(&self) -> bool {
        matches!(
            self,
            SqlType::Int2
                | SqlType::Int4
                | SqlType::Int8
                | SqlType::Numeric
                | SqlType::Float4
                | SqlType::Float8
        )
    }

    fn is_int(&self) -> bool {
        matches!(self, SqlType::Int2 | SqlType::Int4 | SqlType::Int8)
    }

    fn is_float(&self) -> bool {
        matches!(self, SqlType::Float4 | SqlType::Float8)
    }

    /// Inclusive range of an integer type.
    fn int_range(&self) -> (i64, i64) {
        match self {
            SqlType::Int2 => (i16::MIN as i64, i16::MAX as i64),
            SqlType::Int4 => (i32::MIN as i64, i32::MAX as i64),
            _ => (i64::MIN, i64::MAX),
        }
    }
}

/// A runtime value. Borrowed from the row or the claims where possible.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum<'a> {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// An exact `numeric`.
    Numeric(Decimal<'a>),
    /// `real` (already widened exactly) or `double precision`.
    Float(f64),
    /// Text.
    Text(Cow<'a, str>),
    /// A uuid as its 128-bit big-endian value (PostgreSQL orders uuids bytewise).
    Uuid(u128),
    /// A jsonb value.
    Json(Cow<'a, Value>),
    /// A timestamp (with time zone: UTC), microseconds since 1970-01-01; `-infinity` and
    /// `infinity` are `i64::MIN` and `i64::MAX`.
    Time(i64),
    /// A date, days since 1970-01-01; infinities as `i32::MIN` / `i32::MAX`.
    Date(i32),
}

/// How two values of compatible types are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpKind {
    /// Exact comparison of integers and `numeric`.
    Exact,
    /// Comparison as `double precision`.
    Float,
    /// Bytewise text comparison: PostgreSQL's `C` collation. Equality is bytewise under
    /// every deterministic collation; ordering only under `C`/`POSIX` (other collations
    /// order differently), which the compiler checks before choosing this kind for `<`,
    /// `>`, `<=`, `>=`.
    Text,
    /// uuid comparison (case and hyphenation are normalized by parsing).
    Uuid,
    /// `false < true`.
    Bool,
    /// Timestamps of one kind (both with or both without time zone): their instants.
    Time,
    /// Dates.
    Date,
}

impl CmpKind {
    /// The kind used to compare two types, if the subset can compare them.
    pub fn for_types(left: &SqlType, right: &SqlType) -> Option<CmpKind> {
        if left.is_number() && right.is_number() {
            return Some(if left.is_float() || right.is_float() {
                CmpKind::Float
            } else {
                CmpKind::Exact
            });
        }
        match (left, right) {
            (SqlType::Text, SqlType::Text) => Some(CmpKind::Text),
            (SqlType::Uuid, SqlType::Uuid) => Some(CmpKind::Uuid),
            (SqlType::Bool, SqlType::Bool) => Some(CmpKind::Bool),
            // Mixed timestamp kinds compare through the session's TimeZone: SQL only.
            (SqlType::Timestamp, SqlType::Timestamp)
            | (SqlType::TimestampTz, SqlType::TimestampTz) => Some(CmpKind::Time),
            (SqlType::Date, SqlType::Date) => Some(CmpKind::Date),
            _ => None,
        }
    }

    /// Compares two non-null values; `Undecided` when a value is not of the expected kind
    /// or cannot be ordered exactly (NaN).
    pub fn compare(self, left: &Datum<'_>, right: &Datum<'_>) -> Result<Ordering, Undecided> {
        match self {
            CmpKind::Exact => match (left, right) {
                (Datum::Int(a), Datum::Int(b)) => Ok(a.cmp(b)),
                _ => Ok(to_decimal(left)?.cmp(&to_decimal(right)?)),
            },
            CmpKind::Float => Ok(float_cmp(to_f64(left)?, to_f64(right)?)),
            CmpKind::Text => match (left, right) {
                (Datum::Text(a), Datum::Text(b)) => Ok(a.as_bytes().cmp(b.as_bytes())),
                _ => Err(Undecided),
            },
            CmpKind::Uuid => match (left, right) {
                (Datum::Uuid(a), Datum::Uuid(b)) => Ok(a.cmp(b)),
                _ => Err(Undecided),
            },
            CmpKind::Bool => match (left, right) {
                (Datum::Bool(a), Datum::Bool(b)) => Ok(a.cmp(b)),
                _ => Err(Undecided),
            },
            CmpKind::Time => match (left, right) {
                (Datum::Time(a), Datum::Time(b)) => Ok(a.cmp(b)),
                _ => Err(Undecided),
            },
            CmpKind::Date => match (left, right) {
                (Datum::Date(a), Datum::Date(b)) => Ok(a.cmp(b)),
                _ => Err(Undecided),
            },
        }
    }
}

/// PostgreSQL's float ordering: `NaN` equals `NaN` and is greater than every other value;
/// `-0` equals `0`.
pub fn float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn to_decimal<'a>(datum: &Datum<'a>) -> Result<Decimal<'a>, Undecided> {
    match datum {
        Datum::Int(i) => Ok(Decimal::from_i64(*i)),
        Datum::Numeric(d) => Ok(d.clone()),
        _ => Err(Undecided),
    }
}

fn to_f64(datum: &Datum<'_>) -> Result<f64, Undecided> {
    match datum {
        // NaN included: [`float_cmp`] orders it as PostgreSQL does.
        Datum::Float(f) => Ok(*f),
        // The same correctly rounded conversion PostgreSQL's int8 → float8 cast does.
        Datum::Int(i) => Ok(*i as f64),
        Datum::Numeric(d) => d.to_f64(),
        _ => Err(Undecided),
    }
}

/// Reads a decoded row value of a column of type `ty` (the replication crate's JSON
/// encoding: numbers as JSON numbers, `numeric` as a string, uuids as strings…).
pub fn datum_from_json<'a>(value: &'a Value, ty: &SqlType) -> Result<Datum<'a>, Undecided> {
    if value.is_null() {
        return Ok(Datum::Null);
    }
    match ty {
        SqlType::Bool => value.as_bool().map(Datum::Bool).ok_or(Undecided),
        SqlType::Int2 | SqlType::Int4 | SqlType::Int8 => {
            value.as_i64().map(Datum::Int).ok_or(Undecided)
        }
        SqlType::Numeric => match value {
            Value::String(s) => Decimal::parse(s).map(Datum::Numeric),
            Value::Number(n) => n
                .as_i64()
                .map(|i| Datum::Numeric(Decimal::from_i64(i)))
                .ok_or(Undecided),
            _ => Err(Undecided),
        },
        // NaN and the infinities are decoded as their text.
        SqlType::Float8 => match value {
            Value::String(s) => parse_float(s, false).or_else(|_| special_float(s)),
            _ => value.as_f64().ok_or(Undecided),
        }
        .map(Datum::Float),
        // The decoded real went through f64; narrowing recovers the stored f32 exactly,
        // and widening it is what PostgreSQL does before comparing with float8.
        SqlType::Float4 => match value {
            Value::String(s) => special_float(s),
            _ => value.as_f64().map(|f| f as f32 as f64).ok_or(Undecided),
        }
        .map(Datum::Float),
        SqlType::Timestamp | SqlType::TimestampTz => value
            .as_str()
            .ok_or(Undecided)
            .and_then(|s| parse_timestamp(s, *ty == SqlType::TimestampTz))
            .map(Datum::Time),
        SqlType::Date => value
            .as_str()
            .ok_or(Undecided)
            .and_then(parse_date)
            .map(Datum::Date),
        SqlType::Text => value
            .as_str()
            .map(|s| Datum::Text(Cow::Borrowed(s)))
            .ok_or(Undecided),
        SqlType::Uuid => value
            .as_str()
            .and_then(parse_uuid)
            .map(Datum::Uuid)
            .ok_or(Undecided),
        SqlType::Jsonb => Ok(Datum::Json(Cow::Borrowed(value))),
        SqlType::Other(_) => Err(Undecided),
    }
}

/// The text `->>` yields for a jsonb value: `None` for JSON null (SQL NULL).
pub fn json_as_text(value: &Value) -> Result<Option<Cow<'_, str>>, Undecided> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Cow::Borrowed(s))),
        Value::Bool(b) => Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" }))),
        // Integers print the same in jsonb; a float's original digits are lost in f64.
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(Cow::Owned(n.to_string()))),
        _ => Err(Undecided),
    }
}

/// Whether the subset can cast `from` to `to` (checked when compiling).
pub fn cast_supported(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    if from == to {
        return !matches!(from, Other(_));
    }
    matches!(
        (from, to),
        (
            Int2 | Int4 | Int8,
            Int2 | Int4 | Int8 | Numeric | Float4 | Float8 | Text
        ) | (Numeric, Int2 | Int4 | Int8 | Float8 | Text)
            | (Float4, Float8)
            | (Text, Int2 | Int4 | Int8 | Numeric | Uuid | Bool)
            | (Uuid | Bool, Text)
            | (Jsonb, Bool | Int2 | Int4 | Int8 | Numeric)
    )
}

/// Casts a value the way PostgreSQL's cast between these types does. A cast PostgreSQL
/// would reject with an error (bad input, out of range) is `Undecided`: SQL will decide
/// (and the error makes the row invisible there).
pub fn cast<'a>(datum: Datum<'a>, to: &SqlType) -> Result<Datum<'a>, Undecided> {
    if matches!(datum, Datum::Null) {
        return Ok(Datum::Null);
    }
    match (datum, to) {
        (Datum::Int(i), t) if t.is_int() => {
            let (min, max) = t.int_range();
            if (min..=max).contains(&i) {
                Ok(Datum::Int(i))
            } else {
                Err(Undecided)
            }
        }
        (Datum::Int(i), SqlType::Numeric) => Ok(Datum::Numeric(Decimal::from_i64(i))),
        (Datum::Int(i), SqlType::Float8) => Ok(Datum::Float(i as f64)),
        (Datum::Int(i), SqlType::Float4) => Ok(Datum::Float(i as f32 as f64)),
        (Datum::Int(i), SqlType::Text) => Ok(Datum::Text(Cow::Owned(i.to_string()))),
        (Datum::Numeric(d), SqlType::Numeric) => Ok(Datum::Numeric(d)),
        // Integral values only: PostgreSQL rounds fractions, which is left to SQL.
        (Datum::Numeric(d), t) if t.is_int() => cast(Datum::Int(d.to_i64().ok_or(Undecided)?), t),
        (Datum::Numeric(d), SqlType::Float8) => d.to_f64().map(Datum::Float),
        // numeric's text output keeps the scale ("1.50"), which the normalized digits
        // lost: only integral values print predictably.
        (Datum::Numeric(d), SqlType::Text) => d
            .frac
            .is_empty()
            .then(|| {
                Datum::Text(Cow::Owned(
                    d.to_i64().map_or_else(|| d.text(), |i| i.to_string()),
                ))
            })
            .ok_or(Undecided),
        (Datum::Float(f), SqlType::Float8) => Ok(Datum::Float(f)),
        (Datum::Text(s), SqlType::Text) => Ok(Datum::Text(s)),
        (Datum::Text(s), t) if t.is_int() => {
            cast(Datum::Int(parse_plain_int(&s).ok_or(Undecided)?), t)
        }
        (Datum::Text(s), SqlType::Numeric) => Ok(Datum::Numeric(
            Decimal::parse(&s).map_err(|_| Undecided)?.into_owned(),
        )),
        (Datum::Text(s), SqlType::Uuid) => parse_uuid(&s).map(Datum::Uuid).ok_or(Undecided),
        (Datum::Text(s), SqlType::Float8) => parse_float(&s, false).map(Datum::Float),
        (Datum::Text(s), SqlType::Float4) => parse_float(&s, true).map(Datum::Float),
        (Datum::Text(s), SqlType::Timestamp) => parse_timestamp(&s, false).map(Datum::Time),
        (Datum::Text(s), SqlType::TimestampTz) => parse_timestamp(&s, true).map(Datum::Time),
        (Datum::Text(s), SqlType::Date) => parse_date(&s).map(Datum::Date),
        (Datum::Time(t), SqlType::Timestamp | SqlType::TimestampTz) => Ok(Datum::Time(t)),
        (Datum::Date(d), SqlType::Date) => Ok(Datum::Date(d)),
        // The exact spellings; PostgreSQL also takes prefixes and whitespace ("tr", " t"),
        // which are left to SQL.
        (Datum::Text(s), SqlType::Bool) => match s.to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Ok(Datum::Bool(true)),
            "f" | "false" | "n" | "no" | "off" | "0" => Ok(Datum::Bool(false)),
            _ => Err(Undecided),
        },
        (Datum::Uuid(u), SqlType::Uuid) => Ok(Datum::Uuid(u)),
        (Datum::Uuid(u), SqlType::Text) => Ok(Datum::Text(Cow::Owned(format_uuid(u)))),
        (Datum::Bool(b), SqlType::Bool) => Ok(Datum::Bool(b)),
        (Datum::Bool(b), SqlType::Text) => {
            Ok(Datum::Text(Cow::Borrowed(if b { "true" } else { "false" })))
        }
        (Datum::Json(v), SqlType::Jsonb) => Ok(Datum::Json(v)),
        // jsonb casts raise errors for JSON null and for values of another JSON type.
        (Datum::Json(v), SqlType::Bool) => v.as_bool().map(Datum::Bool).ok_or(Undecided),
        (Datum::Json(v), t) if t.is_int() => cast(Datum::Int(v.as_i64().ok_or(Undecided)?), t),
        (Datum::Json(v), SqlType::Numeric) => v
            .as_i64()
            .map(|i| Datum::Numeric(Decimal::from_i64(i)))
            .ok_or(Undecided),
        _ => Err(Undecided),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal<'_> {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(dec("1.50"), dec("1.5"));
        assert_eq!(dec("-0.0"), dec("0"));
        assert_eq!(dec("1e3"), dec("1000"));
        assert_eq!(dec("15e-1"), dec("1.5"));
        assert_eq!(dec("0.05"), dec("5e-2"));
        assert!(dec("10.5") > dec("9.99999"));
        assert!(dec("-10.5") < dec("-9"));
        assert!(dec("0.05") < dec("0.5"));
        assert!(dec("-0.05") > dec("-0.5"));
        assert!(dec("123456789012345678901234567890.1") > dec("123456789012345678901234567890"));
        assert!(Decimal::parse("NaN").is_err());
        assert!(Decimal::parse(" 1").is_err());
        assert!(Decimal::parse(".").is_err());
        assert_eq!(dec("007").to_i64(), Some(7));
    }

    #[test]
    fn uuids_parse_like_postgres() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let v = parse_uuid(canonical).unwrap();
        assert_eq!(format_uuid(v), canonical);
        assert_eq!(parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), Some(v));
        assert_eq!(
            parse_uuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
            Some(v)
        );
        assert_eq!(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11"), Some(v));
        assert_eq!(
            parse_uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"),
            Some(v)
        );
        assert_eq!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"), None);
        assert_eq!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-"), None);
        assert_eq!(parse_uuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), None);
        assert_eq!(parse_uuid("user-1"), None);
        assert_eq!(parse_uuid(""), None);
    }

    #[test]
    fn casts_follow_postgres_or_give_up() {
        let t = |s: &'static str| Datum::Text(Cow::Borrowed(s));
        assert_eq!(cast(t("42"), &SqlType::Int4), Ok(Datum::Int(42)));
        assert_eq!(cast(t("3000000000"), &SqlType::Int4), Err(Undecided));
        assert_eq!(cast(t("4x"), &SqlType::Int8), Err(Undecided));
        assert_eq!(cast(t("true"), &SqlType::Bool), Ok(Datum::Bool(true)));
        assert_eq!(cast(t("maybe"), &SqlType::Bool), Err(Undecided));
        assert_eq!(cast(Datum::Int(7), &SqlType::Text), Ok(t("7")));
        assert_eq!(cast(Datum::Null, &SqlType::Uuid), Ok(Datum::Null));
        let js = json!(true);
        assert_eq!(
            cast(Datum::Json(Cow::Borrowed(&js)), &SqlType::Bool),
            Ok(Datum::Bool(true))
        );
        let js = json!(null);
        assert_eq!(
            cast(Datum::Json(Cow::Borrowed(&js)), &SqlType::Bool),
            Err(Undecided)
        );
        assert_eq!(
            cast(Datum::Numeric(dec("1.5")), &SqlType::Int4),
            Err(Undecided)
        );
    }

    #[test]
    fn comparisons() {
        let cmp = |k: CmpKind, a: Datum<'_>, b: Datum<'_>| k.compare(&a, &b);
        assert_eq!(
            cmp(CmpKind::Exact, Datum::Int(10), Datum::Numeric(dec("10.0"))),
            Ok(Ordering::Equal)
        );
        assert_eq!(
            cmp(
                CmpKind::Float,
                Datum::Float(1.5),
                Datum::Numeric(dec("1.5"))
            ),
            Ok(Ordering::Equal)
        );
        // PostgreSQL: NaN = NaN, NaN above everything, -0 = 0.
        assert_eq!(
            cmp(CmpKind::Float, Datum::Float(f64::NAN), Datum::Float(1.0)),
            Ok(Ordering::Greater)
        );
        assert_eq!(
            cmp(
                CmpKind::Float,
                Datum::Float(f64::NAN),
                Datum::Float(f64::NAN)
            ),
            Ok(Ordering::Equal)
        );
        assert_eq!(
            cmp(CmpKind::Float, Datum::Float(-0.0), Datum::Float(0.0)),
            Ok(Ordering::Equal)
        );
        assert_eq!(
            parse_timestamp("2024-01-02T03:04:05.5+01:00", true),
            parse_timestamp("2024-01-02 02:04:05.5+00", true)
        );
        assert_eq!(parse_timestamp("2024-01-02T03:04:05", true), Err(Undecided));
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(
            cmp(
                CmpKind::Text,
                Datum::Text("B".into()),
                Datum::Text("a".into())
            ),
            Ok(Ordering::Less)
        );
        let decoded = json!(0.1);
        let real = datum_from_json(&decoded, &SqlType::Float4).unwrap();
        assert_eq!(
            cmp(CmpKind::Float, real, Datum::Float(0.1)),
            Ok(Ordering::Greater)
        );
    }
}
