//! A parser for the expression text PostgreSQL prints for a policy (`pg_get_expr` of
//! `pg_policy.polqual`), producing an untyped syntax tree.
//!
//! The grammar is the part of PostgreSQL's expression syntax that `pg_get_expr` emits for
//! simple predicates: it parenthesizes every operator application, prints casts as
//! `(expr)::type`, `IN (…)` lists as `= ANY (ARRAY[…])`, and negative constants as
//! `'-5'::integer`. Constructs outside the compiled subset (subqueries, `EXISTS`, unknown
//! functions, keywords like `CURRENT_USER`) become [`Expr::Opaque`] leaves rather than
//! errors, so the rest of the predicate can still be evaluated; only text the parser cannot
//! follow at all is a [`ParseError`].

use std::fmt;

use super::lexer::{Token, tokenize};

/// Why a policy's text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse policy expression at token {position}: {reason}")]
pub struct ParseError {
    /// Index of the offending token.
    pub position: usize,
    /// What was expected or found.
    pub reason: String,
}

/// A type name after `::`, e.g. `text`, `double precision`, `integer[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    /// The name, words joined by one space; schema-qualified names keep their dot.
    pub name: String,
    /// Whether a type modifier such as `(10,2)` followed (it changes cast semantics).
    pub has_modifier: bool,
    /// Number of `[]` suffixes.
    pub array_dims: usize,
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.has_modifier {
            f.write_str("(…)")?;
        }
        for _ in 0..self.array_dims {
            f.write_str("[]")?;
        }
        Ok(())
    }
}

/// Untyped expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column reference, its name parts (`["col"]`, or qualified).
    Column(Vec<String>),
    /// A function call: qualified name parts and arguments.
    Call { name: Vec<String>, args: Vec<Expr> },
    /// A string literal (type unknown until cast).
    Str(String),
    /// A numeric literal as written.
    Num(String),
    /// `true` / `false`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// `ARRAY[…]`.
    Array(Vec<Expr>),
    /// `expr::type`.
    Cast { expr: Box<Expr>, ty: TypeName },
    /// A binary operator other than a quantified comparison.
    Binary {
        op: String,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// A prefix operator such as unary minus.
    Prefix { op: String, operand: Box<Expr> },
    /// `left op ANY (right)` or `left op ALL (right)`.
    Quantified {
        op: String,
        all: bool,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `expr IS [NOT] NULL`.
    IsNull { expr: Box<Expr>, negated: bool },
    /// `expr IS [NOT] TRUE|FALSE`.
    IsBool {
        expr: Box<Expr>,
        value: bool,
        negated: bool,
    },
    /// `left IS [NOT] DISTINCT FROM right`.
    Distinct {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    /// `NOT expr`.
    Not(Box<Expr>),
    /// `a AND b AND …`.
    And(Vec<Expr>),
    /// `a OR b OR …`.
    Or(Vec<Expr>),
    /// A construct outside the subset, with the reason.
    Opaque(String),
}

/// Parses `pg_get_expr` output into an [`Expr`].
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.expr()?;
    if parser.pos != parser.tokens.len() {
        return Err(parser.error("unexpected trailing tokens"));
    }
    Ok(expr)
}

/// Comparison operators, which bind looser than other operators.
const COMPARISONS: &[&str] = &["=", "<>", "<", "<=", ">", ">="];

/// Recursive-descent parser over the token list, following PostgreSQL's precedence:
/// OR < AND < NOT < IS < comparison < other operators < prefix < `::`.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn error(&self, reason: &str) -> ParseError {
        ParseError {
            position: self.pos,
            reason: reason.to_string(),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.pos + offset)
    }

    /// Whether the next token is the keyword `kw` (keywords are unquoted words, any case).
    fn at_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.at_keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token) -> Result<(), ParseError> {
        if self.peek() == Some(token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {token:?}")))
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.and()?;
        if !self.at_keyword("OR") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_keyword("OR") {
            items.push(self.and()?);
        }
        Ok(Expr::Or(items))
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let first = self.not()?;
        if !self.at_keyword("AND") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_keyword("AND") {
            items.push(self.not()?);
        }
        Ok(Expr::And(items))
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.is()
    }

    fn is(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.comparison()?;
        while self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            expr = if self.eat_keyword("NULL") {
                Expr::IsNull {
                    expr: Box::new(expr),
                    negated,
                }
            } else if self.eat_keyword("TRUE") {
                Expr::IsBool {
                    expr: Box::new(expr),
                    value: true,
                    negated,
                }
            } else if self.eat_keyword("FALSE") {
                Expr::IsBool {
                    expr: Box::new(expr),
                    value: false,
                    negated,
                }
            } else if self.eat_keyword("DISTINCT") {
                if !self.eat_keyword("FROM") {
                    return Err(self.error("expected FROM after IS DISTINCT"));
                }
                Expr::Distinct {
                    left: Box::new(expr),
                    right: Box::new(self.comparison()?),
                    negated,
                }
            } else {
                return Err(self.error("unsupported IS form"));
            };
        }
        Ok(expr)
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.other()?;
        if self.at_keyword("IN") {
            // pg_get_expr prints IN lists as `= ANY (ARRAY[…])`: IN here has a subquery.
            self.pos += 1;
            self.skip_group()?;
            return Ok(Expr::Opaque("IN (subquery)".into()));
        }
        let Some(Token::Op(op)) = self.peek() else {
            return Ok(left);
        };
        if !COMPARISONS.contains(&op.as_str()) {
            return Ok(left);
        }
        let op = op.clone();
        self.pos += 1;
        let quantifier = if self.at_keyword("ANY") || self.at_keyword("SOME") {
            Some(false)
        } else if self.at_keyword("ALL") {
            Some(true)
        } else {
            None
        };
        if let Some(all) = quantifier
            && self.peek_at(1) == Some(&Token::LParen)
        {
            self.pos += 1;
            let right = self.primary()?;
            return Ok(Expr::Quantified {
                op,
                all,
                left: Box::new(left),
                right: Box::new(right),
            });
        }
        let right = self.other()?;
        Ok(Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        })
    }

    /// Operators other than comparisons (`->`, `->>`, `~~`, `+`…), left-associative.
    fn other(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.prefix()?;
        while let Some(Token::Op(op)) = self.peek() {
            if COMPARISONS.contains(&op.as_str()) {
                break;
            }
            let op = op.clone();
            self.pos += 1;
            let right = self.prefix()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn prefix(&mut self) -> Result<Expr, ParseError> {
        if let Some(Token::Op(op)) = self.peek() {
            let op = op.clone();
            self.pos += 1;
            let operand = self.prefix()?;
            return Ok(Expr::Prefix {
                op,
                operand: Box::new(operand),
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.primary()?;
        loop {
            match self.peek() {
                Some(Token::Cast) => {
                    self.pos += 1;
                    let ty = self.type_name()?;
                    expr = Expr::Cast {
                        expr: Box::new(expr),
                        ty,
                    };
                }
                Some(Token::LBracket) => {
                    self.skip_group()?;
                    expr = Expr::Opaque("array subscript".into());
                }
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("COLLATE") => {
                    self.pos += 1;
                    match self.peek() {
                        Some(Token::Word(_) | Token::Quoted(_)) => self.pos += 1,
                        _ => return Err(self.error("expected a collation name")),
                    }
                    expr = Expr::Opaque("COLLATE clause".into());
                }
                _ => return Ok(expr),
            }
        }
    }

    fn type_name(&mut self) -> Result<TypeName, ParseError> {
        let mut name = self.type_word()?;
        // Multi-word type names pg_get_expr prints: only continue with the words that can
        // follow, so `::text AS x` or `::text AND …` is not swallowed.
        let followers: &[&str] = match name.as_str() {
            "double" => &["precision"],
            "character" | "bit" => &["varying"],
            "timestamp" | "time" => &["with", "without"],
            _ => &[],
        };
        if let Some(Token::Word(w)) = self.peek()
            && followers.contains(&w.as_str())
        {
            let w = w.clone();
            self.pos += 1;
            name.push(' ');
            name.push_str(&w);
            if w == "with" || w == "without" {
                for expected in ["time", "zone"] {
                    if !self.eat_keyword(expected) {
                        return Err(self.error("malformed time type"));
                    }
                    name.push(' ');
                    name.push_str(expected);
                }
            }
        }
        if self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            name.push('.');
            name.push_str(&self.type_word()?);
        }
        let mut has_modifier = false;
        if self.peek() == Some(&Token::LParen) {
            self.skip_group()?;
            has_modifier = true;
        }
        let mut array_dims = 0;
        while self.peek() == Some(&Token::LBracket) && self.peek_at(1) == Some(&Token::RBracket) {
            self.pos += 2;
            array_dims += 1;
        }
        Ok(TypeName {
            name,
            has_modifier,
            array_dims,
        })
    }

    fn type_word(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            Some(Token::Quoted(w)) => {
                // Quoted type names (`"char"`) keep their quotes to stay distinct.
                let w = format!("\"{w}\"");
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error("expected a type name")),
        }
    }

    /// Skips a parenthesized or bracketed group starting at the current token.
    fn skip_group(&mut self) -> Result<(), ParseError> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Err(self.error("unbalanced parentheses")),
                Some(Token::LParen | Token::LBracket) => depth += 1,
                Some(Token::RParen | Token::RBracket) => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| self.error("unbalanced parentheses"))?;
                }
                Some(_) if depth == 0 => return Err(self.error("expected a group")),
                Some(_) => {}
            }
            self.pos += 1;
            if depth == 0 {
                return Ok(());
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.error("unexpected end of expression"));
        };
        match token {
            Token::LParen => {
                if matches!(self.peek_at(1), Some(Token::Word(w)) if w.eq_ignore_ascii_case("SELECT"))
                {
                    return self.scalar_subquery();
                }
                self.pos += 1;
                let inner = self.expr()?;
                self.expect(&Token::RParen)?;
                Ok(inner)
            }
            Token::Str(s) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Token::Num(n) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Token::Quoted(name) => {
                self.pos += 1;
                self.name_or_call(name)
            }
            Token::Word(w) => {
                self.pos += 1;
                match w.as_str() {
                    "true" | "TRUE" => Ok(Expr::Bool(true)),
                    "false" | "FALSE" => Ok(Expr::Bool(false)),
                    "NULL" => Ok(Expr::Null),
                    "ARRAY" if self.peek() == Some(&Token::LBracket) => self.array(),
                    "ARRAY" => {
                        self.skip_group()?;
                        Ok(Expr::Opaque("ARRAY (subquery)".into()))
                    }
                    "EXISTS" => {
                        self.skip_group()?;
                        Ok(Expr::Opaque("EXISTS (subquery)".into()))
                    }
                    // pg_get_expr prints identifiers needing no quotes in lower case, so an
                    // upper-case word is a keyword (CURRENT_USER, CASE…).
                    w if w.chars().any(|c| c.is_ascii_uppercase()) => {
                        if self.peek() == Some(&Token::LParen) {
                            self.skip_group()?;
                        } else if w == "CASE" {
                            return Err(self.error("CASE expressions are not supported"));
                        }
                        Ok(Expr::Opaque(format!("{w} is not supported")))
                    }
                    _ => self.name_or_call(w),
                }
            }
            _ => Err(self.error("unexpected token")),
        }
    }

    /// `( SELECT expr AS name )` — the "wrap auth.uid() in a select" idiom — is the value of
    /// `expr`; any other subquery is opaque.
    fn scalar_subquery(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        self.pos += 2;
        if let Ok(inner) = self.prefix()
            && self.eat_keyword("AS")
            && matches!(self.peek(), Some(Token::Word(_) | Token::Quoted(_)))
            && self.peek_at(1) == Some(&Token::RParen)
            && matches!(inner, Expr::Call { .. } | Expr::Cast { .. })
        {
            self.pos += 2;
            return Ok(inner);
        }
        self.pos = start;
        self.skip_group()?;
        Ok(Expr::Opaque("subquery".into()))
    }

    fn array(&mut self) -> Result<Expr, ParseError> {
        self.expect(&Token::LBracket)?;
        let mut items = Vec::new();
        if self.peek() != Some(&Token::RBracket) {
            loop {
                items.push(self.expr()?);
                if self.peek() == Some(&Token::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(&Token::RBracket)?;
        Ok(Expr::Array(items))
    }

    fn name_or_call(&mut self, first: String) -> Result<Expr, ParseError> {
        let mut parts = vec![first];
        while self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            match self.peek().cloned() {
                Some(Token::Word(w) | Token::Quoted(w)) => {
                    self.pos += 1;
                    parts.push(w);
                }
                _ => return Err(self.error("expected a name after '.'")),
            }
        }
        if self.peek() != Some(&Token::LParen) {
            return Ok(Expr::Column(parts));
        }
        self.pos += 1;
        let mut args = Vec::new();
        if self.peek() != Some(&Token::RParen) {
            loop {
                args.push(self.expr()?);
                if self.peek() == Some(&Token::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(&Token::RParen)?;
        Ok(Expr::Call { name: parts, args })
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
