//! Ordering: the value of `order=` and `embed.order=` (PostgREST's `pOrder`):
//!
//! ```text
//! order = term ("," term)*
//! term  = (name "(" field ")" | field) [".asc" | ".desc"] [".nullsfirst" | ".nullslast"]
//! ```
//!
//! `name(field)` orders by a column of a to-one embedded resource (`order=author(name)`);
//! the builder checks that the relationship is to-one.

use super::cursor::{Cursor, Syntax};
use super::field::{Field, parse_json_path};

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `.asc`
    Asc,
    /// `.desc`
    Desc,
}

/// Where NULLs sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullsOrder {
    /// `.nullsfirst`
    First,
    /// `.nullslast`
    Last,
}

/// What a term orders by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderTarget {
    /// A column (or JSON path) of this node.
    Field(Field),
    /// A column of an embedded to-one resource: `author(name)`.
    Related {
        /// The embed's name or alias.
        relation: String,
        /// Its column.
        field: Field,
    },
}

/// One term of `order=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    /// What to order by.
    pub target: OrderTarget,
    /// `.asc`/`.desc`; PostgreSQL's default (ascending) when absent.
    pub direction: Option<Direction>,
    /// `.nullsfirst`/`.nullslast`; PostgreSQL's default when absent.
    pub nulls: Option<NullsOrder>,
}

/// Parses a whole `order=` value.
pub(crate) fn parse_order(c: &mut Cursor) -> Result<Vec<OrderTerm>, Syntax> {
    let mut terms = Vec::new();
    loop {
        c.skip_ws();
        if terms.len() == c.limits.max_list_len {
            return Err(c.error(format!(
                "more than {} terms in order",
                c.limits.max_list_len
            )));
        }
        terms.push(parse_term(c)?);
        c.skip_ws();
        if c.at_end() {
            return Ok(terms);
        }
        if !c.eat(",") {
            return Err(c.unexpected("'.asc', '.desc', '.nullsfirst', '.nullslast' or ','"));
        }
    }
}

/// One term.
fn parse_term(c: &mut Cursor) -> Result<OrderTerm, Syntax> {
    let name = c.name()?;
    let target = if c.eat("(") {
        let field = Field {
            name: c.name()?,
            json_path: parse_json_path(c)?,
        };
        c.expect(")")?;
        OrderTarget::Related {
            relation: name,
            field,
        }
    } else {
        OrderTarget::Field(Field {
            name,
            json_path: parse_json_path(c)?,
        })
    };
    let mut direction = None;
    let mut nulls = None;
    while c.peek() == Some('.') {
        let start = c.pos();
        c.bump();
        let word_start = c.pos();
        while matches!(c.peek(), Some(ch) if ch.is_ascii_alphabetic()) {
            c.bump();
        }
        let word = c.slice_from(word_start);
        match word {
            "asc" | "desc" if direction.is_none() && nulls.is_none() => {
                direction = Some(if word == "asc" {
                    Direction::Asc
                } else {
                    Direction::Desc
                });
            }
            "nullsfirst" | "nullslast" if nulls.is_none() => {
                nulls = Some(if word == "nullsfirst" {
                    NullsOrder::First
                } else {
                    NullsOrder::Last
                });
            }
            _ => {
                c.reset(start + 1);
                let expected = if nulls.is_some() {
                    "',' or the end of order"
                } else if direction.is_some() {
                    "nullsfirst or nullslast"
                } else {
                    "asc, desc, nullsfirst or nullslast"
                };
                return Err(c.unexpected(expected));
            }
        }
    }
    Ok(OrderTerm {
        target,
        direction,
        nulls,
    })
}
