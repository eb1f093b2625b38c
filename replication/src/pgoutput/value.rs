//! Text-format column values to typed JSON, chosen by type OID.
//!
//! Choices: integers and finite floats become JSON numbers; `numeric` stays a **string** so
//! no precision is lost (serde_json numbers are f64/i64); json/jsonb are parsed into JSON;
//! timestamps become RFC 3339 (`2024-01-02T03:04:05.123+00:00`); bytea is PostgreSQL's hex
//! text (`\x…`); arrays become JSON arrays of converted elements; everything else, including
//! enums, is the server's text output.

use serde_json::{Number, Value};

use super::array;

/// How a type's text output becomes JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    /// `t` / `f`.
    Bool,
    /// int2/int4/int8/oid: a JSON integer.
    Integer,
    /// float4/float8: a JSON number, or the text for NaN and infinities.
    Float,
    /// numeric: kept as text to preserve precision.
    Numeric,
    /// json/jsonb: parsed.
    Json,
    /// timestamp without time zone: `T` separator.
    Timestamp,
    /// timestamptz: `T` separator and a `+HH:MM` offset.
    TimestampTz,
    /// Anything else: the text as is.
    Text,
    /// An array of elements of the inner kind.
    Array(Box<ValueKind>),
}

/// Name and conversion of a built-in type, `None` for types this crate does not know
/// (user types, or built-ins converted as text by the caller).
pub fn builtin(oid: u32) -> Option<(&'static str, ValueKind)> {
    use ValueKind::*;
    let scalar = |oid| -> Option<(&'static str, ValueKind)> {
        Some(match oid {
            16 => ("bool", Bool),
            17 => ("bytea", Text),
            18 => ("char", Text),
            19 => ("name", Text),
            20 => ("int8", Integer),
            21 => ("int2", Integer),
            23 => ("int4", Integer),
            25 => ("text", Text),
            26 => ("oid", Integer),
            114 => ("json", Json),
            142 => ("xml", Text),
            700 => ("float4", Float),
            701 => ("float8", Float),
            790 => ("money", Text),
            869 => ("inet", Text),
            650 => ("cidr", Text),
            1042 => ("bpchar", Text),
            1043 => ("varchar", Text),
            1082 => ("date", Text),
            1083 => ("time", Text),
            1114 => ("timestamp", Timestamp),
            1184 => ("timestamptz", TimestampTz),
            1186 => ("interval", Text),
            1266 => ("timetz", Text),
            1700 => ("numeric", Numeric),
            2950 => ("uuid", Text),
            3802 => ("jsonb", Json),
            _ => return None,
        })
    };
    if let Some(found) = scalar(oid) {
        return Some(found);
    }
    let (name, elem) = match oid {
        1000 => ("_bool", 16),
        1001 => ("_bytea", 17),
        1002 => ("_char", 18),
        1003 => ("_name", 19),
        1016 => ("_int8", 20),
        1005 => ("_int2", 21),
        1007 => ("_int4", 23),
        1009 => ("_text", 25),
        1028 => ("_oid", 26),
        199 => ("_json", 114),
        143 => ("_xml", 142),
        1021 => ("_float4", 700),
        1022 => ("_float8", 701),
        791 => ("_money", 790),
        1041 => ("_inet", 869),
        651 => ("_cidr", 650),
        1014 => ("_bpchar", 1042),
        1015 => ("_varchar", 1043),
        1182 => ("_date", 1082),
        1183 => ("_time", 1083),
        1115 => ("_timestamp", 1114),
        1185 => ("_timestamptz", 1184),
        1187 => ("_interval", 1186),
        1270 => ("_timetz", 1266),
        1231 => ("_numeric", 1700),
        2951 => ("_uuid", 2950),
        3807 => ("_jsonb", 3802),
        _ => return None,
    };
    let (_, kind) = scalar(elem)?;
    Some((name, Array(Box::new(kind))))
}

/// Converts one text value. Never fails: text that does not parse as its type is kept as a
/// string rather than dropped or invented.
pub fn to_json(kind: &ValueKind, text: &str) -> Value {
    match kind {
        ValueKind::Bool => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        ValueKind::Integer => match text.parse::<i64>() {
            Ok(n) => Value::Number(n.into()),
            Err(_) => match text.parse::<u64>() {
                Ok(n) => Value::Number(n.into()),
                Err(_) => Value::String(text.to_owned()),
            },
        },
        ValueKind::Float => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(text.to_owned()), Value::Number),
        ValueKind::Json => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        ValueKind::Timestamp => Value::String(rfc3339(text, false)),
        ValueKind::TimestampTz => Value::String(rfc3339(text, true)),
        ValueKind::Numeric | ValueKind::Text => Value::String(text.to_owned()),
        ValueKind::Array(elem) => {
            array::parse(text, elem).unwrap_or_else(|| Value::String(text.to_owned()))
        }
    }
}

/// Whether a column's text output is the JSON `null` literal of a json/jsonb value: a value,
/// not SQL NULL, though both convert to JSON `null` (the caller records which columns hold
/// it). `json` keeps the input's whitespace, hence the trim.
pub fn is_json_null(kind: &ValueKind, text: &str) -> bool {
    *kind == ValueKind::Json && text.trim_matches([' ', '\t', '\n', '\r']) == "null"
}

/// `2024-01-02 03:04:05.5+00` → `2024-01-02T03:04:05.5+00:00`. Infinities and BC dates are
/// left as PostgreSQL wrote them.
fn rfc3339(text: &str, with_zone: bool) -> String {
    if text.len() < 19
        || !text.is_char_boundary(10)
        || text.as_bytes()[10] != b' '
        || text.ends_with(" BC")
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 3);
    out.push_str(&text[..10]);
    out.push('T');
    out.push_str(&text[11..]);
    if with_zone {
        // The zone is the last `+`/`-` after the time; PostgreSQL omits `:MM` when it is zero.
        if let Some(pos) = out[11..].rfind(['+', '-']).map(|p| p + 11)
            && out.len() - pos == 3
        {
            out.push_str(":00");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(oid: u32, text: &str) -> Value {
        to_json(&builtin(oid).unwrap().1, text)
    }

    #[test]
    fn converts_scalars() {
        assert_eq!(conv(23, "-42"), json!(-42));
        assert_eq!(
            conv(20, "9223372036854775807"),
            json!(9223372036854775807i64)
        );
        assert_eq!(conv(16, "t"), json!(true));
        assert_eq!(
            conv(1700, "12345678901234567890.123456789"),
            json!("12345678901234567890.123456789")
        );
        assert_eq!(conv(701, "1.5"), json!(1.5));
        assert_eq!(conv(701, "NaN"), json!("NaN"));
        assert_eq!(conv(3802, r#"{"a": [1, "é"]}"#), json!({"a": [1, "é"]}));
        assert_eq!(
            conv(1184, "2024-01-02 03:04:05.123+00"),
            json!("2024-01-02T03:04:05.123+00:00")
        );
        assert_eq!(
            conv(1184, "2024-01-02 03:04:05+05:30"),
            json!("2024-01-02T03:04:05+05:30")
        );
        assert_eq!(
            conv(1184, "-2024-01-02 03:04:05+05:30"),
            json!("-2024-01-02 03:04:05+05:30")
        );
        assert_eq!(
            conv(1114, "2024-01-02 03:04:05"),
            json!("2024-01-02T03:04:05")
        );
        assert_eq!(conv(1184, "infinity"), json!("infinity"));
        assert_eq!(conv(17, "\\x00ff"), json!("\\x00ff"));
    }

    #[test]
    fn json_null_is_told_apart() {
        let json = builtin(114).unwrap().1;
        let jsonb = builtin(3802).unwrap().1;
        assert!(is_json_null(&jsonb, "null"));
        assert!(is_json_null(&json, " null\n"));
        assert!(!is_json_null(&jsonb, "\"null\""));
        assert!(!is_json_null(&jsonb, "{}"));
        assert!(!is_json_null(&builtin(25).unwrap().1, "null"));
    }

    #[test]
    fn converts_arrays() {
        assert_eq!(conv(1007, "{1,2,NULL}"), json!([1, 2, null]));
        assert_eq!(
            conv(1009, r#"{a,"b,c","d\"e",NULL,"NULL"}"#),
            json!(["a", "b,c", "d\"e", null, "NULL"])
        );
        assert_eq!(conv(1007, "{{1,2},{3,4}}"), json!([[1, 2], [3, 4]]));
        assert_eq!(conv(1007, "[0:1]={5,6}"), json!([5, 6]));
        assert_eq!(
            conv(3807, r#"{"{\"a\": 1}",null}"#),
            json!([{"a": 1}, null])
        );
        assert_eq!(conv(1007, "{}"), json!([]));
        assert_eq!(conv(1007, "{1,2"), json!("{1,2"));
    }
}
