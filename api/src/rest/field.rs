//! A column reference with an optional JSON path, as it appears in `select=`, filters,
//! `order=` and logic trees (PostgREST's `pField` and `pJsonPath`):
//!
//! ```text
//! field     = name json_path
//! json_path = (("->>" | "->") operand)*
//! operand   = index | key
//! index     = "-"? digit+                      -- followed by "->", "::", ".", ",", ")" or end
//! key       = quoted | part ("-" part)*        -- "-" not followed by ">"
//! part      = (any but ( - : . , > ))+         -- trimmed of spaces
//! ```
//!
//! Keys and indexes are values, not identifiers: the builder binds them as parameters
//! (`col -> $1`), so a key may hold any text.

use super::cursor::{Cursor, Syntax};

/// `->` (JSON) or `->>` (text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonArrow {
    /// `->`: the result stays `json`/`jsonb`.
    Json,
    /// `->>`: the result is `text`.
    Text,
}

/// What one arrow selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonOperand {
    /// An object key (bind as `text`).
    Key(String),
    /// An array index, negative from the end (bind as `integer`).
    Index(i64),
}

/// One `->key` / `->>0` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonStep {
    /// Which arrow.
    pub arrow: JsonArrow,
    /// Which key or index.
    pub operand: JsonOperand,
}

/// A column, possibly followed by a JSON path (`data->a->>b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column's name (an identifier for the schema cache).
    pub name: String,
    /// The JSON path, empty for a plain column.
    pub json_path: Vec<JsonStep>,
}

impl Field {
    /// A plain column without a JSON path.
    pub fn column(name: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            json_path: Vec::new(),
        }
    }

    /// The key a JSON object uses for this field when it has no alias: the last JSON key
    /// of the path (PostgREST names `data->a->>b` as `b` and `data->a->0` as `a`), else
    /// the column.
    pub fn output_name(&self) -> String {
        self.json_path
            .iter()
            .rev()
            .find_map(|s| match &s.operand {
                JsonOperand::Key(key) => Some(key.clone()),
                JsonOperand::Index(_) => None,
            })
            .unwrap_or_else(|| self.name.clone())
    }
}

/// Parses `name json_path` at the cursor.
pub(crate) fn parse_field(c: &mut Cursor) -> Result<Field, Syntax> {
    let name = c.name()?;
    let json_path = parse_json_path(c)?;
    Ok(Field { name, json_path })
}

/// Parses zero or more `->`/`->>` steps.
pub(crate) fn parse_json_path(c: &mut Cursor) -> Result<Vec<JsonStep>, Syntax> {
    let mut path = Vec::new();
    loop {
        let arrow = if c.eat("->>") {
            JsonArrow::Text
        } else if c.eat("->") {
            JsonArrow::Json
        } else {
            return Ok(path);
        };
        if path.len() == c.limits.max_json_path_len {
            return Err(c.error(format!(
                "JSON path longer than {} steps",
                c.limits.max_json_path_len
            )));
        }
        let operand = match parse_index(c)? {
            Some(index) => JsonOperand::Index(index),
            None => JsonOperand::Key(parse_key(c)?),
        };
        path.push(JsonStep { arrow, operand });
    }
}

/// An array index if one is here and ends where an operand may end; the cursor does not
/// move otherwise.
fn parse_index(c: &mut Cursor) -> Result<Option<i64>, Syntax> {
    let start = c.pos();
    let negative = c.eat("-");
    let digits_at = c.pos();
    while matches!(c.peek(), Some(d) if d.is_ascii_digit()) {
        c.bump();
    }
    let digits = c.slice_from(digits_at);
    let ends = c.at_end()
        || ["->", "::", ".", ",", ")"]
            .iter()
            .any(|e| c.rest().starts_with(e));
    if digits.is_empty() || !ends {
        if negative {
            // PostgREST: "->>-78xy" is a malformed negative index, not a key.
            return Err(c.unexpected("a digit"));
        }
        c.reset(start);
        return Ok(None);
    }
    let value: i64 = digits
        .parse()
        .map_err(|_| c.error("JSON array index out of range"))?;
    Ok(Some(if negative { -value } else { value }))
}

/// A JSON object key: quoted, or characters other than `( - : . , > )` with inner dashes.
fn parse_key(c: &mut Cursor) -> Result<String, Syntax> {
    if c.peek() == Some('"') {
        return c.quoted();
    }
    let start = c.pos();
    let key_char = |ch: char| !matches!(ch, '(' | '-' | ':' | '.' | ',' | '>' | ')');
    while let Some(ch) = c.peek() {
        if !(key_char(ch) || c.inner_dash(key_char)) {
            break;
        }
        c.bump();
    }
    let key = c.slice_from(start).trim_matches(' ');
    if key.is_empty() {
        c.reset(start);
        return Err(c.unexpected("a JSON key or index"));
    }
    Ok(key.to_owned())
}
