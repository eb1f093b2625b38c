//! Request bodies of writes and function calls, checked without building a JSON tree:
//!
//! ```text
//! POST (table)  = object | "[" object ("," object)* "]"   -- same keys in every object
//! PUT           = object | "[" object "]"
//! PATCH         = object
//! POST (rpc)    = "" (no arguments) | object (named arguments) | any JSON (one unnamed
//!                 json argument) | text/plain | application/octet-stream
//! ```
//!
//! With `columns=` the keys are the listed columns and objects may lack some (PostgREST
//! then skips the same-keys check). CSV (`text/csv`, POST on a table) and form bodies
//! (`application/x-www-form-urlencoded`) are converted to the JSON they mean: CSV gives
//! string values with unquoted `NULL` as null. The JSON text is handed to the builder whole,
//! to be bound as one `json` parameter (`json_to_recordset`), so a bulk insert costs one
//! scan here and no per-value allocation.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{RestError, snippet};
use super::limits::Limits;
use super::media::ContentType;
use super::request::ApiRequest;
use super::target::{Action, CallMethod};

/// The top-level shape of a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonShape {
    /// One object.
    Object,
    /// An array of this many objects.
    Array(usize),
    /// Anything else (a function's single unnamed `json` argument).
    Other,
}

/// A checked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// JSON text (CSV and form bodies converted), its shape and its keys.
    Json {
        /// The JSON text, to bind as one parameter.
        text: String,
        /// Object, array of objects, or other.
        shape: JsonShape,
        /// The keys (columns or argument names): `columns=` if given, else the first
        /// object's keys in document order (empty for [`JsonShape::Other`]).
        keys: Vec<String>,
    },
    /// A function's single unnamed `text` or `bytea` argument.
    Raw {
        /// The body as sent.
        bytes: Vec<u8>,
        /// [`ContentType::Text`] or [`ContentType::Binary`].
        content_type: ContentType,
    },
}

/// A PGRST102 error.
fn invalid(reason: impl Into<String>) -> RestError {
    RestError::InvalidBody {
        reason: reason.into(),
    }
}

impl Payload {
    /// Checks `body` against what `request` (its action, Content-Type and `columns=`)
    /// expects.
    pub fn parse(request: &ApiRequest, body: &[u8], limits: &Limits) -> Result<Self, RestError> {
        let content_type = request.content_type.unwrap_or(ContentType::Json);
        let call = request.action == Action::Call(CallMethod::Post);
        let text = match content_type {
            ContentType::Text | ContentType::Binary => {
                return Ok(Payload::Raw {
                    bytes: body.to_vec(),
                    content_type,
                });
            }
            ContentType::Csv if request.action != Action::Insert => {
                return Err(RestError::UnsupportedContentType {
                    content_type: "text/csv".to_owned(),
                });
            }
            ContentType::Csv => csv_to_json(body)?,
            ContentType::UrlEncoded => form_to_json(body, call)?,
            ContentType::Json => {
                let text = std::str::from_utf8(body).map_err(|_| invalid("Invalid UTF-8 body"))?;
                if call && text.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    text.to_owned()
                }
            }
        };
        let uniform = request.columns.is_none();
        let scan = scan(&text, uniform, limits)?;
        let (shape, keys) = match scan {
            Scan::Object(keys) => (JsonShape::Object, keys),
            Scan::Array { len, keys } => (JsonShape::Array(len), keys),
            Scan::Other => (JsonShape::Other, Vec::new()),
        };
        let allowed = match request.action {
            Action::Insert => shape != JsonShape::Other,
            Action::Upsert => matches!(shape, JsonShape::Object | JsonShape::Array(1)),
            Action::Update => shape == JsonShape::Object,
            _ => true,
        };
        if !allowed {
            return Err(invalid(match request.action {
                Action::Upsert => "PUT takes one JSON object",
                Action::Update => "PATCH takes one JSON object",
                _ => "POST takes a JSON object or an array of objects",
            }));
        }
        let keys = request.columns.clone().unwrap_or(keys);
        Ok(Payload::Json { text, shape, keys })
    }
}

/// What a scan of a JSON body found.
enum Scan {
    /// An object with these keys.
    Object(Vec<String>),
    /// An array of objects, with the first one's keys.
    Array {
        /// How many objects.
        len: usize,
        /// The first object's keys.
        keys: Vec<String>,
    },
    /// Anything else.
    Other,
}

/// Parses `text` once, keeping only keys; `uniform` demands the same keys in every object.
fn scan(text: &str, uniform: bool, limits: &Limits) -> Result<Scan, RestError> {
    if text.trim().is_empty() {
        return Err(invalid("Empty or invalid json"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let visitor = TopVisitor { uniform, limits };
    (&mut de)
        .deserialize_any(visitor)
        .and_then(|scan| de.end().map(|()| scan))
        .map_err(|err| match err.classify() {
            // Our own refusals (keys that differ, too many keys) read as they are.
            serde_json::error::Category::Data => invalid(err.to_string()),
            _ => invalid(format!("Invalid JSON body: {err}")),
        })
}

/// Visits the top-level value.
struct TopVisitor<'a> {
    /// Whether every object must have the same keys.
    uniform: bool,
    /// Bounds on keys.
    limits: &'a Limits,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Scan;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scan, A::Error> {
        Ok(Scan::Object(object_keys(map, self.limits)?))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scan, A::Error> {
        let mut len = 0usize;
        let mut first: Option<(Vec<String>, Vec<String>)> = None;
        let mut all_objects = true;
        while let Some(keys) = seq.next_element_seed(ElementSeed(self.limits))? {
            len += 1;
            let Some(keys) = keys else {
                all_objects = false;
                continue;
            };
            match &first {
                None => {
                    let mut sorted = keys.clone();
                    sorted.sort_unstable();
                    first = Some((keys, sorted));
                }
                Some((_, sorted_first)) if self.uniform => {
                    let mut sorted = keys;
                    sorted.sort_unstable();
                    if sorted != *sorted_first {
                        return Err(de::Error::custom(format!(
                            "All object keys must match (object {len} differs from object 1)"
                        )));
                    }
                }
                Some(_) => {}
            }
        }
        if !all_objects {
            return Ok(Scan::Other);
        }
        let keys = first.map(|(keys, _)| keys).unwrap_or_default();
        Ok(Scan::Array { len, keys })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scan, E> {
        Ok(Scan::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scan, E> {
        Ok(Scan::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scan, E> {
        Ok(Scan::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scan, E> {
        Ok(Scan::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Scan, E> {
        Ok(Scan::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scan, E> {
        Ok(Scan::Other)
    }
}

/// One array element: its keys if it is an object, `None` otherwise.
struct ElementSeed<'a>(&'a Limits);

impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = Option<Vec<String>>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(ElementVisitor(self.0))
    }
}

/// Visits one array element.
struct ElementVisitor<'a>(&'a Limits);

impl<'de> Visitor<'de> for ElementVisitor<'_> {
    type Value = Option<Vec<String>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(Some(object_keys(map, self.0)?))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The distinct keys of an object in document order; values are skipped unparsed.
fn object_keys<'de, A: MapAccess<'de>>(
    mut map: A,
    limits: &Limits,
) -> Result<Vec<String>, A::Error> {
    let mut keys: Vec<String> = Vec::new();
    while let Some(key) = map.next_key::<String>()? {
        map.next_value::<IgnoredAny>()?;
        if keys.contains(&key) {
            continue;
        }
        if keys.len() == limits.max_payload_keys {
            return Err(de::Error::custom(format!(
                "more than {} keys in one object",
                limits.max_payload_keys
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `a=1&b=x` as `{"a":"1","b":"x"}`; a repeated key is an array for a call, else refused.
fn form_to_json(body: &[u8], call: bool) -> Result<String, RestError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("Invalid UTF-8 body"))?;
    let limits = Limits {
        max_query_len: usize::MAX,
        max_params: usize::MAX,
        ..Limits::default()
    };
    let pairs = super::query_string::decode(text, &limits)
        .map_err(|_| invalid("Invalid form body: NUL byte or invalid UTF-8"))?;
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in pairs {
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some(_) if !call => {
                return Err(invalid(format!("Form key {} given twice", snippet(&key))));
            }
            Some((_, values)) => values.push(value),
            None => fields.push((key, vec![value])),
        }
    }
    let members: Vec<String> = fields
        .iter()
        .map(|(key, values)| {
            let value = match values.as_slice() {
                [one] => json_string(one),
                many => format!(
                    "[{}]",
                    many.iter()
                        .map(|v| json_string(v))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            format!("{}:{value}", json_string(key))
        })
        .collect();
    Ok(format!("{{{}}}", members.join(",")))
}

/// RFC 4180 CSV (header line, then rows) as a JSON array of objects with string values.
fn csv_to_json(body: &[u8]) -> Result<String, RestError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("Invalid UTF-8 body"))?;
    let mut records = csv_records(text)?.into_iter();
    let header = records.next().ok_or_else(|| invalid("Empty CSV body"))?;
    let mut rows = Vec::new();
    for (index, record) in records.enumerate() {
        if record.len() != header.len() {
            return Err(invalid(format!(
                "All lines must have same number of fields (line {} has {}, the header {})",
                index + 2,
                record.len(),
                header.len()
            )));
        }
        let members: Vec<String> = header
            .iter()
            .zip(&record)
            .map(|((name, _), (value, quoted))| {
                let value = if value == "NULL" && !quoted {
                    "null".to_owned()
                } else {
                    json_string(value)
                };
                format!("{}:{value}", json_string(name))
            })
            .collect();
        rows.push(format!("{{{}}}", members.join(",")));
    }
    Ok(format!("[{}]", rows.join(",")))
}

/// The records of a CSV text: fields with whether each was quoted; blank lines skipped.
fn csv_records(text: &str) -> Result<Vec<Vec<(String, bool)>>, RestError> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => return Err(invalid("Unterminated quoted CSV field")),
                    }
                }
            }
            ',' => {
                record.push((std::mem::take(&mut field), quoted));
                quoted = false;
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push((std::mem::take(&mut field), quoted));
                quoted = false;
                at_field_start = true;
                if !(record.len() == 1 && record[0].0.is_empty() && !record[0].1) {
                    records.push(std::mem::take(&mut record));
                } else {
                    record.clear();
                }
            }
            c => {
                at_field_start = false;
                field.push(c);
            }
        }
    }
    if !at_field_start || !field.is_empty() || !record.is_empty() || quoted {
        record.push((field, quoted));
        records.push(record);
    }
    Ok(records)
}
