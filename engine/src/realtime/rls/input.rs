//! Type input, as PostgreSQL reads text into values: exact decimals, floats, timestamps,
//! dates and uuids in the spellings the engine meets (decoded rows, `pg_get_expr`
//! constants, filter operands). Anything else is [`Undecided`]: PostgreSQL decides.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::value::Undecided;

/// `float8in`/`float4in` of a canonical spelling: a Rust float literal (correctly rounded,
/// like `strtod`), `NaN`, `Infinity`, `-Infinity`. Other spellings PostgreSQL accepts
/// (whitespace, `inf`) are `Undecided`.
pub fn parse_float(text: &str, single: bool) -> Result<f64, Undecided> {
    match text {
        "NaN" => return Ok(f64::NAN),
        "Infinity" => return Ok(f64::INFINITY),
        "-Infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return Err(Undecided);
    }
    let value = if single {
        f64::from(text.parse::<f32>().map_err(|_| Undecided)?)
    } else {
        text.parse::<f64>().map_err(|_| Undecided)?
    };
    // PostgreSQL rejects values out of range ("is out of range for type").
    if value.is_infinite() {
        return Err(Undecided);
    }
    Ok(value)
}

/// A timestamp's instant from its decoded form (`2024-01-02T03:04:05.5+00:00`, or without
/// a zone for `timestamp`) or PostgreSQL's ISO text output (a space for the `T`); the
/// infinities. BC dates and other spellings are `Undecided`.
pub fn parse_timestamp(text: &str, with_zone: bool) -> Result<i64, Undecided> {
    match text {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    if text.len() < 19 || !text.is_char_boundary(10) {
        return Err(Undecided);
    }
    let mut iso = String::with_capacity(text.len() + 3);
    iso.push_str(&text[..10]);
    iso.push(' ');
    iso.push_str(&text[11..]);
    let zoned = iso[19..].contains(['+', '-']);
    if zoned != with_zone {
        return Err(Undecided);
    }
    if !with_zone {
        iso.push_str("+00");
    }
    fluxbase_replication::Timestamp::from_pg_text(&iso)
        .map(|t| t.unix_micros())
        .ok_or(Undecided)
}

/// A date's day number from `YYYY-MM-DD` (or the infinities).
pub fn parse_date(text: &str) -> Result<i32, Undecided> {
    match text {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    if text.len() != 10 {
        return Err(Undecided);
    }
    let micros = parse_timestamp(&format!("{text} 00:00:00+00"), true)?;
    i32::try_from(micros.div_euclid(86_400_000_000)).map_err(|_| Undecided)
}

/// An exact decimal number: sign, integer digits without leading zeros, fraction digits
/// without trailing zeros. Zero has empty digits and is never negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal<'a> {
    negative: bool,
    int: Cow<'a, str>,
    pub(super) frac: Cow<'a, str>,
}

impl<'a> Decimal<'a> {
    /// The decimal of an integer.
    pub fn from_i64(value: i64) -> Decimal<'static> {
        Decimal {
            negative: value < 0,
            int: if value == 0 {
                Cow::Borrowed("")
            } else {
                Cow::Owned(value.unsigned_abs().to_string())
            },
            frac: Cow::Borrowed(""),
        }
    }

    /// Parses PostgreSQL `numeric` input without whitespace: `[+-]digits[.digits][e±n]`.
    /// `NaN`, `Infinity` and anything else are `Undecided`.
    pub fn parse(text: &'a str) -> Result<Decimal<'a>, Undecided> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => {
                let exp: i64 = parse_plain_int(&rest[at + 1..]).ok_or(Undecided)?;
                (&rest[..at], exp)
            }
            None => (rest, 0),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Undecided);
        }
        if exponent == 0 {
            return Ok(Decimal::normalized(
                negative,
                Cow::Borrowed(int),
                Cow::Borrowed(frac),
            ));
        }
        // PostgreSQL limits numeric exponents to about ±1000; stay well inside.
        if exponent.abs() > 1000 {
            return Err(Undecided);
        }
        let digits: String = format!("{int}{frac}");
        let point = int.len() as i64 + exponent;
        let (int, frac) = if point <= 0 {
            (
                String::new(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_string(),
                digits[point as usize..].to_string(),
            )
        };
        Ok(Decimal::normalized(
            negative,
            Cow::Owned(int),
            Cow::Owned(frac),
        ))
    }

    fn normalized(negative: bool, int: Cow<'a, str>, frac: Cow<'a, str>) -> Decimal<'a> {
        let int = match int {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim_start_matches('0')),
            Cow::Owned(s) => Cow::Owned(s.trim_start_matches('0').to_string()),
        };
        let frac = match frac {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim_end_matches('0')),
            Cow::Owned(s) => Cow::Owned(s.trim_end_matches('0').to_string()),
        };
        let zero = int.is_empty() && frac.is_empty();
        Decimal {
            negative: negative && !zero,
            int,
            frac,
        }
    }

    /// The integer value, if integral and in range.
    pub fn to_i64(&self) -> Option<i64> {
        if !self.frac.is_empty() {
            return None;
        }
        if self.int.is_empty() {
            return Some(0);
        }
        let magnitude: i128 = self.int.parse().ok()?;
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    /// The nearest `double precision` (what PostgreSQL's numeric → float8 cast gives).
    pub(super) fn to_f64(&self) -> Result<f64, Undecided> {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{int}.{}0", self.frac)
            .parse()
            .map_err(|_| Undecided)
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.as_bytes().cmp(other.int.as_bytes()))
            // Trailing zeros are trimmed, so fraction digits compare lexicographically.
            .then_with(|| self.frac.as_bytes().cmp(other.frac.as_bytes()));
        match (self.negative, other.negative) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `[+-]digits`, nothing else (PostgreSQL's int input also takes surrounding whitespace;
/// such input is left to SQL).
pub(super) fn parse_plain_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a uuid exactly as PostgreSQL's `uuid_in`: optional braces, 32 hex digits of any
/// case, an optional hyphen after any group of four digits.
pub fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let braces = bytes.first() == Some(&b'{');
    if braces {
        i += 1;
    }
    let mut value: u128 = 0;
    for byte_index in 0..16 {
        let hi = (*bytes.get(i)? as char).to_digit(16)?;
        let lo = (*bytes.get(i + 1)? as char).to_digit(16)?;
        value = (value << 8) | u128::from(hi << 4 | lo);
        i += 2;
        if bytes.get(i) == Some(&b'-') && byte_index % 2 == 1 && byte_index < 15 {
            i += 1;
        }
    }
    if braces {
        if bytes.get(i) != Some(&b'}') {
            return None;
        }
        i += 1;
    }
    (i == bytes.len()).then_some(value)
}

/// PostgreSQL's text form of a uuid: lower case, hyphenated 8-4-4-4-12.
pub fn format_uuid(value: u128) -> String {
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `NaN`, `Infinity`, `-Infinity` (how the decoder writes non-finite floats).
pub(super) fn special_float(text: &str) -> Result<f64, Undecided> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(Undecided),
    }
}

impl Decimal<'_> {
    /// Detaches from the borrowed input.
    pub fn into_owned(self) -> Decimal<'static> {
        Decimal {
            negative: self.negative,
            int: Cow::Owned(self.int.into_owned()),
            frac: Cow::Owned(self.frac.into_owned()),
        }
    }

    /// Integral text form (used only when there is no fraction).
    pub(super) fn text(&self) -> String {
        match (self.negative, self.int.is_empty()) {
            (_, true) => "0".to_string(),
            (true, false) => format!("-{}", self.int),
            (false, false) => self.int.to_string(),
        }
    }
}
