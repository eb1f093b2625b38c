//! Vertical filtering and embedding: the value of `select=` (PostgREST's `pFieldForest`):
//!
//! ```text
//! select    = [item ("," item)*]
//! item      = "*"
//!           | "..." name embed_opt "(" select ")"                 -- spread
//!           | [alias ":"] name embed_opt "(" select ")"           -- embed
//!           | [alias ":"] "count()" ["::" type]                   -- aggregate over rows
//!           | [alias ":"] field ["::" type] ["." agg "()" ["::" type]]
//! embed_opt = ("!" ("inner" | "left" | hint))*                    -- at most one of each
//! agg       = "count" | "sum" | "avg" | "max" | "min"
//! ```
//!
//! Spaces and tabs around items are ignored. Embedding nests at most
//! [`Limits::max_embed_depth`](super::limits::Limits) levels; each embed carries its own
//! [`Query`], to which the embed's filters, order and range are attached later.

use super::cursor::{Cursor, Syntax};
use super::field::{Field, parse_json_path};
use super::query::Query;

/// An aggregate function of `select=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `count()`, `col.count()`
    Count,
    /// `col.sum()`
    Sum,
    /// `col.avg()`
    Avg,
    /// `col.max()`
    Max,
    /// `col.min()`
    Min,
}

/// How an embed joins its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinType {
    /// Parents without a match are kept (the embed is null or `[]`): the default, `!left`.
    #[default]
    Left,
    /// `!inner`: parents without a match are dropped.
    Inner,
}

/// One item of `select=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`: every column.
    Star,
    /// A column or JSON path, renamed and cast.
    Column {
        /// The column and JSON path.
        field: Field,
        /// `alias:` — the output key.
        alias: Option<String>,
        /// `::type` — a type name: one `[A-Za-z0-9_]` word or a multi-word SQL type.
        cast: Option<String>,
    },
    /// `count()` or `col.agg()`.
    Aggregate {
        /// Which function.
        function: AggregateFunction,
        /// The aggregated column; `None` for `count()` (counts rows).
        field: Option<Field>,
        /// `::type` applied to the column before aggregating.
        cast: Option<String>,
        /// `::type` applied to the aggregate's result.
        result_cast: Option<String>,
        /// `alias:` — the output key.
        alias: Option<String>,
    },
    /// A related resource through a foreign key.
    Embed(Box<Embed>),
}

/// An embedded resource: `alias:relation!hint!inner(select…)` or `...relation(select…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embed {
    /// The related table, view or function name (resolved by the builder).
    pub relation: String,
    /// `alias:` — the output key (and the name embed parameters use).
    pub alias: Option<String>,
    /// `!hint` — a foreign-key constraint name or a column disambiguating the relationship.
    pub hint: Option<String>,
    /// `!inner` / `!left`.
    pub join: JoinType,
    /// `...`: the embed's columns are spread into the parent object (to-one relationships).
    pub spread: bool,
    /// What the embed selects, and its own filters, order and range.
    pub query: Query,
}

impl Embed {
    /// The name embed paths (`name.col=eq.1`) and the output use: the alias, else the
    /// relation.
    pub fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.relation)
    }
}

/// Parses a whole `select=` value at `depth` (0 for the root).
pub(crate) fn parse_select(c: &mut Cursor, depth: usize) -> Result<Vec<SelectItem>, Syntax> {
    let mut items = Vec::new();
    c.skip_ws();
    if c.at_end() || c.peek() == Some(')') {
        return Ok(items);
    }
    loop {
        items.push(parse_item(c, depth)?);
        c.skip_ws();
        if c.eat(",") {
            c.skip_ws();
            continue;
        }
        if c.at_end() || c.peek() == Some(')') {
            return Ok(items);
        }
        return Err(c.unexpected("',', ')' or the end of select"));
    }
}

/// One item.
fn parse_item(c: &mut Cursor, depth: usize) -> Result<SelectItem, Syntax> {
    if c.eat("...") {
        let relation = c.name()?;
        return parse_embed(c, depth, relation, None, true);
    }
    if c.eat("*") {
        return Ok(SelectItem::Star);
    }
    let first = c.name()?;
    let (alias, name) = if c.peek() == Some(':') && !c.rest().starts_with("::") {
        c.bump();
        c.skip_ws();
        (Some(first), c.name()?)
    } else {
        (None, first)
    };
    if name == "count" && c.eat("()") {
        let result_cast = parse_cast(c)?;
        return Ok(SelectItem::Aggregate {
            function: AggregateFunction::Count,
            field: None,
            cast: None,
            result_cast,
            alias,
        });
    }
    if matches!(c.peek(), Some('!' | '(')) {
        if name == "count" {
            return Err(c.error("count() takes no arguments"));
        }
        return parse_embed(c, depth, name, alias, false);
    }
    let field = Field {
        name,
        json_path: parse_json_path(c)?,
    };
    let cast = parse_cast(c)?;
    let before_aggregate = c.pos();
    if c.eat(".") {
        let function = parse_aggregate(c)?;
        c.expect("()").map_err(|_| {
            c.reset(before_aggregate);
            c.unexpected("an aggregate call such as .sum()")
        })?;
        let result_cast = parse_cast(c)?;
        return Ok(SelectItem::Aggregate {
            function,
            field: Some(field),
            cast,
            result_cast,
            alias,
        });
    }
    Ok(SelectItem::Column { field, alias, cast })
}

/// `::type`, if present.
fn parse_cast(c: &mut Cursor) -> Result<Option<String>, Syntax> {
    if c.eat("::") {
        Ok(Some(c.cast_type()?))
    } else {
        Ok(None)
    }
}

/// The aggregate after `col.`.
fn parse_aggregate(c: &mut Cursor) -> Result<AggregateFunction, Syntax> {
    const FUNCTIONS: [(&str, AggregateFunction); 5] = [
        ("count", AggregateFunction::Count),
        ("sum", AggregateFunction::Sum),
        ("avg", AggregateFunction::Avg),
        ("max", AggregateFunction::Max),
        ("min", AggregateFunction::Min),
    ];
    for (name, function) in FUNCTIONS {
        if c.eat(name) {
            return Ok(function);
        }
    }
    Err(c.unexpected("an aggregate (count, sum, avg, max, min)"))
}

/// `!hint!inner(select…)` after an embed's name.
fn parse_embed(
    c: &mut Cursor,
    depth: usize,
    relation: String,
    alias: Option<String>,
    spread: bool,
) -> Result<SelectItem, Syntax> {
    let mut hint = None;
    let mut join = None;
    while c.eat("!") {
        let start = c.pos();
        let word = c.name()?;
        let duplicate = match word.as_str() {
            "inner" | "left" => join.is_some(),
            _ => hint.is_some(),
        };
        if duplicate {
            c.reset(start);
            return Err(c.error(format!("a second !{word} on embed \"{relation}\"")));
        }
        match word.as_str() {
            "inner" => join = Some(JoinType::Inner),
            "left" => join = Some(JoinType::Left),
            _ => hint = Some(word),
        }
    }
    if c.peek() != Some('(') {
        return Err(c.unexpected("'(' opening the embed's select"));
    }
    if depth + 1 > c.limits.max_embed_depth {
        return Err(c.error(format!(
            "embedding nested deeper than {} levels",
            c.limits.max_embed_depth
        )));
    }
    c.bump();
    let select = parse_select(c, depth + 1)?;
    c.expect(")")?;
    Ok(SelectItem::Embed(Box::new(Embed {
        relation,
        alias,
        hint,
        join: join.unwrap_or_default(),
        spread,
        query: Query::selecting(select),
    })))
}
