//! Parser of PostgreSQL's array text literal (`{1,2,NULL}`, `{{"a b",c}}`, `[0:1]={…}`).

use serde_json::Value;

use super::value::{ValueKind, to_json};

/// Nesting beyond PostgreSQL's own limit (MAXDIM = 6) is rejected rather than recursed into.
const MAX_DEPTH: usize = 6;

/// Parses `text` into a JSON array of `elem` values; `None` when it is not a valid literal.
pub fn parse(text: &str, elem: &ValueKind) -> Option<Value> {
    // Arrays with non-default lower bounds are prefixed with their dimensions.
    let body = if text.starts_with('[') {
        &text[text.find('=')? + 1..]
    } else {
        text
    };
    let mut p = Parser { s: body, pos: 0 };
    let value = p.array(elem, 0)?;
    p.skip_ws();
    (p.pos == body.len()).then_some(value)
}

/// Position in the literal.
struct Parser<'a> {
    /// The literal.
    s: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
}

impl Parser<'_> {
    /// The next byte, if any.
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Skips whitespace, which PostgreSQL allows around elements.
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// `{ elem, elem, … }`.
    fn array(&mut self, elem: &ValueKind, depth: usize) -> Option<Value> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        if self.peek()? != b'{' {
            return None;
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(Value::Array(items));
        }
        loop {
            self.skip_ws();
            let item = match self.peek()? {
                b'{' => self.array(elem, depth + 1)?,
                b'"' => to_json(elem, &self.quoted()?),
                _ => {
                    let raw = self.unquoted()?;
                    if raw.eq_ignore_ascii_case("NULL") {
                        Value::Null
                    } else {
                        to_json(elem, raw)
                    }
                }
            };
            items.push(item);
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(Value::Array(items));
                }
                _ => return None,
            }
        }
    }

    /// `"…"` with backslash escapes.
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = String::new();
        let rest = &self.s[self.pos..];
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => {
                    self.pos += i + 1;
                    return Some(out);
                }
                c => out.push(c),
            }
        }
        None
    }

    /// An unquoted element, up to the next `,` or `}`, trimmed.
    fn unquoted(&mut self) -> Option<&str> {
        let start = self.pos;
        let len = self.s[start..].find([',', '}'])?;
        self.pos += len;
        let raw = self.s[start..start + len].trim();
        (!raw.is_empty()).then_some(raw)
    }
}
