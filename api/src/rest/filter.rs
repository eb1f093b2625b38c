//! Horizontal filters: the value of `col=op.value` (PostgREST's `pOpExpr`), also used for
//! the leaves of logic trees:
//!
//! ```text
//! op_expr   = ["not."] operation
//! operation = "in." list
//!           | "is." ("null" | "not_null" | "true" | "false" | "unknown")   -- any case
//!           | "isdistinct." value
//!           | fts ["(" language ")"] "." value          -- fts | plfts | phfts | wfts
//!           | op ["(" ("any" | "all") ")"] "." value    -- eq gt gte lt lte like ilike match imatch
//!           | op "." value                              -- neq cs cd ov sl sr nxl nxr adj
//! list      = "(" [item ("," item)*] ")"                -- item: quoted or any but , )
//! ```
//!
//! In a query-string filter the value is the rest of the text, kept verbatim; in a logic
//! tree it ends at `,` or `)` unless quoted (`"a,b"`) or a `{…}` array literal. Values stay
//! text: the builder binds them as parameters typed like the column. For `like`/`ilike`
//! the parser already turned `*` into `%`, as PostgREST does.

use super::cursor::{Cursor, Syntax};
use super::field::Field;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `eq`: `=`
    Eq,
    /// `neq`: `<>`
    Neq,
    /// `gt`: `>`
    Gt,
    /// `gte`: `>=`
    Gte,
    /// `lt`: `<`
    Lt,
    /// `lte`: `<=`
    Lte,
    /// `like`: `LIKE` (`*` already turned into `%`)
    Like,
    /// `ilike`: `ILIKE` (`*` already turned into `%`)
    ILike,
    /// `match`: `~`
    Match,
    /// `imatch`: `~*`
    IMatch,
    /// `cs`: `@>`
    Contains,
    /// `cd`: `<@`
    ContainedIn,
    /// `ov`: `&&`
    Overlaps,
    /// `sl`: `<<`
    StrictlyLeft,
    /// `sr`: `>>`
    StrictlyRight,
    /// `nxr`: `&<`
    NotExtendsRight,
    /// `nxl`: `&>`
    NotExtendsLeft,
    /// `adj`: `-|-`
    Adjacent,
}

/// Every binary operator with its query-string name.
const OPERATORS: [(&str, Operator); 18] = [
    ("eq", Operator::Eq),
    ("neq", Operator::Neq),
    ("gt", Operator::Gt),
    ("gte", Operator::Gte),
    ("lt", Operator::Lt),
    ("lte", Operator::Lte),
    ("like", Operator::Like),
    ("ilike", Operator::ILike),
    ("match", Operator::Match),
    ("imatch", Operator::IMatch),
    ("cs", Operator::Contains),
    ("cd", Operator::ContainedIn),
    ("ov", Operator::Overlaps),
    ("sl", Operator::StrictlyLeft),
    ("sr", Operator::StrictlyRight),
    ("nxr", Operator::NotExtendsRight),
    ("nxl", Operator::NotExtendsLeft),
    ("adj", Operator::Adjacent),
];

/// The operator list an "unknown operator" message offers.
const KNOWN: &str = "eq, neq, gt, gte, lt, lte, like, ilike, match, imatch, in, is, \
    isdistinct, cs, cd, ov, sl, sr, nxr, nxl, adj, fts, plfts, phfts, wfts";

impl Operator {
    /// Its query-string name (`eq`).
    pub fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("", |(name, _)| name)
    }

    /// Whether `(any)`/`(all)` may follow it (PostgREST's quantifiable operators).
    pub fn quantifiable(self) -> bool {
        matches!(
            self,
            Operator::Eq
                | Operator::Gt
                | Operator::Gte
                | Operator::Lt
                | Operator::Lte
                | Operator::Like
                | Operator::ILike
                | Operator::Match
                | Operator::IMatch
        )
    }
}

/// `(any)` or `(all)`: compare with every element of an array value (`{a,b}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `op ANY($1)`
    Any,
    /// `op ALL($1)`
    All,
}

/// The right side of `is.` — a keyword, never a bound value (IS cannot take a parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    /// `IS NULL`
    Null,
    /// `IS NOT NULL`
    NotNull,
    /// `IS TRUE`
    True,
    /// `IS FALSE`
    False,
    /// `IS UNKNOWN`
    Unknown,
}

/// Full-text search flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsOperator {
    /// `fts`: `@@ to_tsquery`
    Fts,
    /// `plfts`: `@@ plainto_tsquery`
    Plain,
    /// `phfts`: `@@ phraseto_tsquery`
    Phrase,
    /// `wfts`: `@@ websearch_to_tsquery`
    Websearch,
}

/// What a filter tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `col <op> $1`, or `col <op> ANY/ALL($1)` with a quantifier (the value is then an
    /// array literal such as `{1,2}`).
    Compare {
        /// Which operator.
        operator: Operator,
        /// `(any)`/`(all)`, only on quantifiable operators.
        quantifier: Option<Quantifier>,
        /// The value, as text.
        value: String,
    },
    /// `col = ANY($1)` with the listed values (empty list: matches nothing).
    In(Vec<String>),
    /// `col IS <keyword>`.
    Is(IsValue),
    /// `col IS DISTINCT FROM $1`.
    IsDistinct(String),
    /// `to_tsvector(col) @@ <fn>([$lang::regconfig,] $1)` (a `tsvector` column is used as is).
    Fts {
        /// Which query function.
        operator: FtsOperator,
        /// The text-search configuration (`english`), bound as `regconfig`.
        language: Option<String>,
        /// The query text.
        value: String,
    },
}

/// One filter: `field [NOT] operation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column and JSON path tested.
    pub field: Field,
    /// `not.` before the operator.
    pub negated: bool,
    /// What is tested.
    pub operation: Operation,
}

/// Where a value ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueEnd {
    /// At the end of the parameter (query-string filters): verbatim.
    Rest,
    /// At `,` or `)` (logic trees), unless quoted or a `{…}` literal.
    Logic,
}

/// Parses `["not."] operation` at the cursor.
pub(crate) fn parse_op_expr(c: &mut Cursor, end: ValueEnd) -> Result<(bool, Operation), Syntax> {
    let negated = c.eat("not.");
    let start = c.pos();
    while matches!(c.peek(), Some(ch) if ch.is_ascii_alphabetic()) {
        c.bump();
    }
    let word = c.slice_from(start);
    let operation = match word {
        "in" => {
            c.expect(".")?;
            Operation::In(parse_list(c)?)
        }
        "is" => {
            c.expect(".")?;
            Operation::Is(parse_is(c, end)?)
        }
        "isdistinct" => {
            c.expect(".")?;
            Operation::IsDistinct(parse_value(c, end)?)
        }
        "fts" | "plfts" | "phfts" | "wfts" => {
            let operator = match word {
                "fts" => FtsOperator::Fts,
                "plfts" => FtsOperator::Plain,
                "phfts" => FtsOperator::Phrase,
                _ => FtsOperator::Websearch,
            };
            let language = if c.eat("(") {
                let language = c.word("a text search language")?;
                c.expect(")")?;
                Some(language)
            } else {
                None
            };
            c.expect(".")?;
            let value = parse_value(c, end)?;
            Operation::Fts {
                operator,
                language,
                value,
            }
        }
        _ => {
            let Some(&(_, operator)) = OPERATORS.iter().find(|(name, _)| *name == word) else {
                c.reset(start);
                return Err(unknown_operator(c, word));
            };
            let quantifier = if c.peek() == Some('(') {
                if !operator.quantifiable() {
                    return Err(c.error(format!(
                        "operator {} takes no (any)/(all) modifier",
                        operator.name()
                    )));
                }
                let quantifier = if c.eat("(any)") {
                    Quantifier::Any
                } else if c.eat("(all)") {
                    Quantifier::All
                } else {
                    return Err(c.unexpected("(any) or (all)"));
                };
                Some(quantifier)
            } else {
                None
            };
            c.expect(".")?;
            let mut value = parse_value(c, end)?;
            if matches!(operator, Operator::Like | Operator::ILike) {
                value = value.replace('*', "%");
            }
            Operation::Compare {
                operator,
                quantifier,
                value,
            }
        }
    };
    Ok((negated, operation))
}

/// The error for an operator that does not exist.
fn unknown_operator(c: &Cursor, word: &str) -> Syntax {
    if word.is_empty() {
        return c.unexpected(&format!("an operator ({KNOWN})"));
    }
    let word: String = word.chars().take(16).collect();
    c.error(format!(
        "unknown operator \"{word}\", expected one of {KNOWN}"
    ))
}

/// The right side of `is.`.
fn parse_is(c: &mut Cursor, end: ValueEnd) -> Result<IsValue, Syntax> {
    let start = c.pos();
    let raw = parse_value(c, end)?;
    let value = match raw.to_ascii_lowercase().as_str() {
        "null" => IsValue::Null,
        "not_null" => IsValue::NotNull,
        "true" => IsValue::True,
        "false" => IsValue::False,
        "unknown" => IsValue::Unknown,
        _ => {
            c.reset(start);
            return Err(c.unexpected("null, not_null, true, false or unknown"));
        }
    };
    Ok(value)
}

/// A value up to where `end` says it stops.
fn parse_value(c: &mut Cursor, end: ValueEnd) -> Result<String, Syntax> {
    match end {
        ValueEnd::Rest => {
            let value = c.rest().to_owned();
            while c.bump().is_some() {}
            Ok(value)
        }
        ValueEnd::Logic => {
            let start = c.pos();
            if c.peek() == Some('"') {
                let value = c.quoted()?;
                if matches!(c.peek(), None | Some(',' | ')')) {
                    return Ok(value);
                }
                c.reset(start);
            } else if c.eat("{") {
                // An array literal `{a,b}`: commas inside do not end the value.
                while let Some(ch) = c.bump() {
                    match ch {
                        '}' => return Ok(c.slice_from(start).to_owned()),
                        '{' => break,
                        _ => {}
                    }
                }
                c.reset(start);
            }
            while !matches!(c.peek(), None | Some(',' | ')')) {
                c.bump();
            }
            Ok(c.slice_from(start).to_owned())
        }
    }
}

/// `(a,"b,c",d)`: the items of `in.`; `()` is the empty list.
fn parse_list(c: &mut Cursor) -> Result<Vec<String>, Syntax> {
    c.skip_ws();
    c.expect("(")?;
    c.skip_ws();
    let mut items = Vec::new();
    if c.eat(")") {
        c.skip_ws();
        return Ok(items);
    }
    loop {
        if items.len() == c.limits.max_list_len {
            return Err(c.error(format!(
                "more than {} values in the in list",
                c.limits.max_list_len
            )));
        }
        let start = c.pos();
        let quoted = if c.peek() == Some('"') {
            let value = c.quoted()?;
            if matches!(c.peek(), Some(',' | ')')) {
                Some(value)
            } else {
                c.reset(start);
                None
            }
        } else {
            None
        };
        let item = match quoted {
            Some(value) => value,
            None => {
                while !matches!(c.peek(), None | Some(',' | ')')) {
                    c.bump();
                }
                c.slice_from(start).to_owned()
            }
        };
        items.push(item);
        match c.peek() {
            Some(',') => {
                c.bump();
            }
            Some(')') => {
                c.bump();
                c.skip_ws();
                return Ok(items);
            }
            _ => return Err(c.unexpected("',' or ')' closing the in list")),
        }
    }
}
