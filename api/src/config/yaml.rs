//! YAML → JSON tree with the line of every key, so configuration errors can say
//! `fluxbase.yaml:12`.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A parsed document: the tree, and for each dotted key path the (1-based) line of its key.
#[derive(Debug, Default)]
pub struct Document {
    /// The document as JSON (an empty object for an empty file).
    pub root: Value,
    /// `realtime.rls_cache_size` → line.
    pub lines: BTreeMap<String, usize>,
}

/// Parses the first document of `text`. The error names the line.
pub fn parse(text: &str) -> Result<Document, String> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| format!("line {}: {}", e.marker().line(), e.info()))?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(Document {
        root: builder.root.unwrap_or_else(|| Value::Object(Map::new())),
        lines: builder.lines,
    })
}

/// An open container while events stream in.
#[derive(Debug)]
enum Frame {
    Map {
        map: Map<String, Value>,
        /// The key read, waiting for its value.
        key: Option<String>,
    },
    Seq(Vec<Value>),
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Key path of the open maps, for the line index.
    path: Vec<String>,
    root: Option<Value>,
    lines: BTreeMap<String, usize>,
    error: Option<String>,
    done: bool,
}

impl Builder {
    /// Hands a finished value to its parent (or makes it the root).
    fn push_value(&mut self, value: Value) {
        match self.stack.last_mut() {
            Some(Frame::Map { map, key }) => {
                if let Some(k) = key.take() {
                    self.path.pop();
                    map.insert(k, value);
                }
            }
            Some(Frame::Seq(items)) => items.push(value),
            None => {
                self.root = Some(value);
                self.done = true;
            }
        }
    }

    /// Whether the next scalar in the current map is a key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done || self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, _, _) => {
                if self.expecting_key() {
                    self.path.push(text.clone());
                    self.lines.insert(self.path.join("."), mark.line());
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(text);
                    }
                } else {
                    let value = if style == TScalarStyle::Plain {
                        resolve_plain(&text)
                    } else {
                        Value::String(text)
                    };
                    self.push_value(value);
                }
            }
            Event::MappingStart(..) => {
                if self.expecting_key() {
                    self.error = Some(format!("line {}: a key must be a plain value", mark.line()));
                    return;
                }
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                });
            }
            Event::SequenceStart(..) => {
                if self.expecting_key() {
                    self.error = Some(format!("line {}: a key must be a plain value", mark.line()));
                    return;
                }
                self.stack.push(Frame::Seq(Vec::new()));
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { map, .. }) = self.stack.pop() {
                    self.push_value(Value::Object(map));
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items)) = self.stack.pop() {
                    self.push_value(Value::Array(items));
                }
            }
            Event::Alias(_) => {
                self.error = Some(format!(
                    "line {}: YAML aliases are not supported in the configuration",
                    mark.line()
                ));
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<u64>() {
        return Value::Number(n.into());
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    if text.chars().any(|c| c.is_ascii_digit())
        && !text.chars().any(char::is_alphabetic)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_types() {
        let doc = parse(
            "server:\n  host: \"0.0.0.0\"\n  port: 8080\n\nrealtime:\n  enabled: true\n  ping_interval: \"30s\"\n  rls_cache_size: lots\n",
        )
        .unwrap();
        assert_eq!(doc.lines["server.port"], 3);
        assert_eq!(doc.lines["realtime.rls_cache_size"], 8);
        assert_eq!(doc.root["server"]["port"], 8080);
        assert_eq!(doc.root["server"]["host"], "0.0.0.0");
        assert_eq!(doc.root["realtime"]["enabled"], true);
        assert_eq!(doc.root["realtime"]["rls_cache_size"], "lots");
    }

    #[test]
    fn quoted_numbers_stay_strings_and_empty_is_object() {
        let doc = parse("a:\n  b: \"42\"\n  c: 1.5\n  d:\n").unwrap();
        assert_eq!(doc.root["a"]["b"], "42");
        assert_eq!(doc.root["a"]["c"], 1.5);
        assert!(doc.root["a"]["d"].is_null());
        assert_eq!(parse("").unwrap().root, Value::Object(Map::new()));
    }

    #[test]
    fn syntax_error_names_the_line() {
        let err = parse("a:\n  b: [1, 2\n").unwrap_err();
        assert!(err.starts_with("line "), "{err}");
    }
}
