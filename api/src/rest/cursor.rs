//! A character cursor over one decoded parameter, and the lexical pieces every grammar of
//! the query language shares (PostgREST's `pFieldName`, `pQuotedValue`, `pIdentifier`):
//!
//! ```text
//! name    = quoted | part ("-" part)*                 -- "-" not followed by ">"
//! part    = (letter | digit | "_" | "$" | " ")+       -- the name is trimmed of spaces
//! quoted  = '"' (any but '"' or '\' | '\' any)* '"'
//! word    = (ascii letter | digit | "_")+            -- fts languages
//! type    = word | "double precision" | "character varying" | "bit varying"
//!         | ("timestamp" | "time") (" with time zone" | " without time zone")
//! ```
//!
//! Names (identifiers) are at most `max_identifier_len` bytes and never empty.
//!
//! Errors are [`Syntax`]: a byte offset and a reason; the caller turns them into a
//! [`QueryParamError`](super::error::QueryParamError) naming the parameter and column.

use super::limits::Limits;

/// A parse failure at a byte offset of the text being parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Syntax {
    /// Byte offset in the parsed text.
    pub at: usize,
    /// What was wrong or expected.
    pub reason: String,
}

impl Syntax {
    /// The 1-based character column of this failure in `text`.
    pub fn column(&self, text: &str) -> usize {
        let at = self.at.min(text.len());
        text.get(..at).map_or(at, |head| head.chars().count()) + 1
    }
}

/// A printable rendering of one character for an error message.
pub(crate) fn show_char(c: char) -> String {
    if c.is_control() {
        format!("'{}'", c.escape_default())
    } else {
        format!("'{c}'")
    }
}

/// Whether `c` may appear in an unquoted name (PostgREST: letter, digit, `_`, `$`, space).
fn is_name_char(c: char) -> bool {
    c.is_alphabetic() || c.is_ascii_digit() || matches!(c, '_' | '$' | ' ')
}

/// A position in one parameter's text.
pub(crate) struct Cursor<'a> {
    /// The whole text.
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// Bounds on names.
    pub limits: &'a Limits,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `src`.
    pub fn new(src: &'a str, limits: &'a Limits) -> Self {
        Cursor {
            src,
            pos: 0,
            limits,
        }
    }

    /// The next character, if any.
    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// What is left to parse.
    pub fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Whether everything was consumed.
    pub fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// The byte offset (for backtracking with [`Cursor::reset`]).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The text between `start` (from [`Cursor::pos`]) and the cursor.
    pub fn slice_from(&self, start: usize) -> &'a str {
        &self.src[start..self.pos]
    }

    /// Goes back to an offset returned by [`Cursor::pos`].
    pub fn reset(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Consumes one character.
    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Whether the cursor is on a `-` joining two parts of a name (PostgREST's `sepByDash`):
    /// the next character belongs to a part, so `->` and `--` are not joins.
    pub fn inner_dash(&self, part: impl Fn(char) -> bool) -> bool {
        let mut chars = self.rest().chars();
        chars.next() == Some('-') && chars.next().is_some_and(|c| c != '>' && part(c))
    }

    /// Consumes `s` if the text continues with it.
    pub fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs (PostgREST's `lexeme`).
    pub fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// A failure here.
    pub fn error(&self, reason: impl Into<String>) -> Syntax {
        Syntax {
            at: self.pos,
            reason: reason.into(),
        }
    }

    /// "unexpected X, expected `expected`" at the current character.
    pub fn unexpected(&self, expected: &str) -> Syntax {
        match self.peek() {
            Some(c) => self.error(format!("unexpected {}, expected {expected}", show_char(c))),
            None => self.error(format!("unexpected end of input, expected {expected}")),
        }
    }

    /// Consumes `s` or fails with "expected `s`".
    pub fn expect(&mut self, s: &str) -> Result<(), Syntax> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("\"{s}\"")))
        }
    }

    /// A quoted string (`"a\"b"` → `a"b`); the cursor must be on the opening quote.
    pub fn quoted(&mut self) -> Result<String, Syntax> {
        let start = self.pos;
        self.expect("\"")?;
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => break,
                },
                Some(c) => out.push(c),
                None => break,
            }
        }
        Err(Syntax {
            at: start,
            reason: "unterminated quoted string".to_owned(),
        })
    }

    /// A name (column, relation, alias, hint, embed path segment), validated as an
    /// identifier: not empty, at most `max_identifier_len` bytes.
    pub fn name(&mut self) -> Result<String, Syntax> {
        let start = self.pos;
        let name = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            match self.peek() {
                Some(c) if is_name_char(c) => {}
                _ => return Err(self.unexpected("a name (letters, digits, _, $)")),
            }
            while let Some(c) = self.peek() {
                if !(is_name_char(c) || self.inner_dash(is_name_char)) {
                    break;
                }
                self.bump();
            }
            self.src[start..self.pos].trim_matches(' ').to_owned()
        };
        self.check_identifier(&name, start)?;
        Ok(name)
    }

    /// Checks the bounds of an identifier that started at `start`.
    pub fn check_identifier(&self, name: &str, start: usize) -> Result<(), Syntax> {
        let at = start;
        if name.is_empty() {
            return Err(Syntax {
                at,
                reason: "empty name".to_owned(),
            });
        }
        if name.len() > self.limits.max_identifier_len {
            return Err(Syntax {
                at,
                reason: format!("name longer than {} bytes", self.limits.max_identifier_len),
            });
        }
        Ok(())
    }

    /// One word of ASCII letters, digits and `_` (a text-search language in `fts(…)`).
    pub fn word(&mut self, what: &str) -> Result<String, Syntax> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.bump();
        }
        let word = self.slice_from(start);
        if word.is_empty() {
            return Err(self.unexpected(what));
        }
        self.check_identifier(word, start)?;
        Ok(word.to_owned())
    }

    /// A type name after `::`: one word of ASCII letters, digits and `_` (`int8`, `text`),
    /// or one of SQL's multi-word type names (`double precision`). PostgreSQL cannot
    /// quote some type names (`"int"` is not `int`), so a builder may have to write a
    /// cast unquoted: this grammar keeps anything but a type name out of it.
    pub fn cast_type(&mut self) -> Result<String, Syntax> {
        const MULTI_WORD: [&str; 7] = [
            "double precision",
            "character varying",
            "bit varying",
            "timestamp with time zone",
            "timestamp without time zone",
            "time with time zone",
            "time without time zone",
        ];
        let start = self.pos;
        for name in MULTI_WORD {
            let rest = self.rest();
            let matches = rest.len() >= name.len()
                && rest.is_char_boundary(name.len())
                && rest[..name.len()].eq_ignore_ascii_case(name)
                && !rest[name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if matches {
                self.pos += name.len();
                return Ok(name.to_owned());
            }
        }
        let word = self.word("a type name")?;
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            self.reset(start);
            return Err(self.unexpected("a type name"));
        }
        Ok(word)
    }
}
