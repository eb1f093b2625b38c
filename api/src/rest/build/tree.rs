//! The resolved read tree: the parser's [`Query`] nodes with every name checked against the
//! schema snapshot — the relation or function each node reads, the columns it selects,
//! filters and orders by, the relationship each embed follows, and the aliases the SQL
//! will use. Resolution ([`super::resolve`]) fails with the request's error; writing the
//! SQL from a resolved tree ([`super::select`], [`super::filter`]) cannot.

use fluxbase_migrations::schema::{DataType, Function, Relation};

use crate::rest::field::JsonStep;
use crate::rest::filter::Operation;
use crate::rest::logic::LogicOperator;
use crate::rest::order::OrderTerm;
use crate::rest::range::RowRange;
use crate::rest::select::{AggregateFunction, Embed};

/// What a node reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A table or view, by name.
    Relation(&'a Relation),
    /// The rows a write returned (the statement's `src`), shaped like this relation.
    Written(&'a Relation),
    /// A function's result.
    Call(&'a CallSource<'a>),
}

/// A function's result as a row source.
#[derive(Debug, Clone)]
pub(crate) struct CallSource<'a> {
    /// The function called.
    pub function: &'a Function,
    /// The table or view whose row type it returns, if any: embeds start from it.
    pub relation: Option<&'a Relation>,
    /// Its result columns, when known (tables, `RETURNS TABLE`, OUT parameters).
    pub columns: Option<Vec<(&'a str, &'a DataType)>>,
    /// It returns a scalar (or void): one value per row, read as `r0.v`.
    pub scalar: bool,
}

impl<'a> Source<'a> {
    /// The relation this source's rows belong to, for relationships and error messages.
    pub fn relation(&self) -> Option<&'a Relation> {
        match *self {
            Source::Relation(r) | Source::Written(r) => Some(r),
            Source::Call(call) => call.relation,
        }
    }

    /// How errors name this source.
    pub fn label(&self) -> &'a str {
        match *self {
            Source::Relation(r) | Source::Written(r) => &r.name,
            Source::Call(call) => &call.function.name,
        }
    }

    /// The type of the column `name`, if the source has it.
    pub fn column(&self, name: &str) -> Option<&'a DataType> {
        match *self {
            Source::Relation(r) | Source::Written(r) => r.column(name).map(|c| &c.data_type),
            Source::Call(call) => call
                .columns
                .as_ref()?
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t),
        }
    }

    /// Every column in order, when known.
    pub fn columns(&self) -> Option<Vec<(&'a str, &'a DataType)>> {
        match *self {
            Source::Relation(r) | Source::Written(r) => Some(
                r.columns
                    .iter()
                    .map(|c| (c.name.as_str(), &c.data_type))
                    .collect(),
            ),
            Source::Call(call) => call.columns.clone(),
        }
    }
}

/// A column reference of a node: the column, its JSON path, a cast.
#[derive(Debug, Clone)]
pub(crate) struct Col<'a> {
    /// The column, as the snapshot spells it.
    pub name: &'a str,
    /// `->`/`->>` steps.
    pub path: &'a [JsonStep],
    /// `::type`, checked against the allowlist (or a type the snapshot's columns have).
    pub cast: Option<&'a str>,
    /// Its type is `tsvector` (full-text filters use it as is).
    pub tsvector: bool,
}

/// The value of one output key.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    /// A column (or JSON path), cast.
    Column(Col<'a>),
    /// `count()`, `col.sum()`…
    Aggregate {
        /// Which function.
        function: AggregateFunction,
        /// Its argument; `None` for `count()` (counts rows).
        field: Option<Col<'a>>,
        /// `::type` on the result.
        result_cast: Option<&'a str>,
    },
    /// The embed at this index of the node's `embeds`.
    Embed(usize),
    /// A key of a to-one embed spread into this node (`...director(name)`).
    Spread {
        /// The embed's index.
        embed: usize,
        /// The value, in the embed's node.
        value: Box<Value<'a>>,
    },
}

/// One key of a node's JSON object.
#[derive(Debug, Clone)]
pub(crate) struct Item<'a> {
    /// The key (an alias, a column, the last JSON key, an aggregate's name…).
    pub key: String,
    /// Its value.
    pub value: Value<'a>,
}

/// A condition on a node's rows.
#[derive(Debug, Clone)]
pub(crate) enum Cond<'a> {
    /// `col [NOT] op value`.
    Filter {
        /// The column.
        col: Col<'a>,
        /// `not.`
        negated: bool,
        /// What is tested.
        operation: &'a Operation,
    },
    /// `col = value`: a row key from the path, or PUT's primary key.
    Equals {
        /// The column.
        column: &'a str,
        /// The value, as text.
        value: &'a str,
    },
    /// `embed=is.null` / `embed=not.is.null`: whether the embed has a row.
    EmbedExists {
        /// The embed's index.
        embed: usize,
        /// `true` for `not.is.null`.
        exists: bool,
    },
    /// `[NOT] (a AND|OR b …)`.
    Logic {
        /// And or or.
        operator: LogicOperator,
        /// `not.`
        negated: bool,
        /// The conditions combined.
        children: Vec<Cond<'a>>,
    },
}

/// One `ORDER BY` term.
#[derive(Debug, Clone)]
pub(crate) struct Order<'a> {
    /// A column of this node, or of a to-one embed (`embed`).
    pub col: Col<'a>,
    /// The to-one embed whose column orders, if any.
    pub embed: Option<usize>,
    /// Direction and nulls.
    pub term: &'a OrderTerm,
}

/// How an embed's rows relate to its parent's.
#[derive(Debug, Clone)]
pub(crate) struct Link<'a> {
    /// `(parent column, child column)` pairs compared directly (empty through a junction).
    pub pairs: Vec<(&'a str, &'a str)>,
    /// The junction of a many-to-many relationship.
    pub junction: Option<JunctionLink<'a>>,
}

/// A junction table between parent and child.
#[derive(Debug, Clone)]
pub(crate) struct JunctionLink<'a> {
    /// The junction relation.
    pub relation: &'a Relation,
    /// Its alias.
    pub alias: u32,
    /// `(parent column, junction column)`.
    pub parent_pairs: Vec<(&'a str, &'a str)>,
    /// `(child column, junction column)`.
    pub child_pairs: Vec<(&'a str, &'a str)>,
}

/// An embedded resource.
#[derive(Debug, Clone)]
pub(crate) struct Child<'a> {
    /// As the request wrote it.
    pub embed: &'a Embed,
    /// The relationship followed.
    pub link: Link<'a>,
    /// At most one row per parent row: the value is an object (or null), not an array.
    pub to_one: bool,
    /// What it reads and selects.
    pub node: Node<'a>,
}

/// One node of the read tree.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    /// What it reads.
    pub source: Source<'a>,
    /// Its alias (`r{alias}`).
    pub alias: u32,
    /// Output keys in order.
    pub items: Vec<Item<'a>>,
    /// `select=*` alone: the object is the whole row (`row_to_json`).
    pub whole_row: bool,
    /// Items hold an aggregate: the other columns are grouped by.
    pub aggregated: bool,
    /// Conditions ANDed.
    pub conds: Vec<Cond<'a>>,
    /// `ORDER BY` terms.
    pub order: Vec<Order<'a>>,
    /// `LIMIT`/`OFFSET`.
    pub range: RowRange,
    /// Every embed of `select=` in order, including those selecting nothing.
    pub embeds: Vec<Child<'a>>,
}

impl Node<'_> {
    /// Indexes of the embeds joined `!inner`: the node keeps only rows that have one.
    pub fn inner_embeds(&self) -> impl Iterator<Item = usize> + '_ {
        self.embeds
            .iter()
            .enumerate()
            .filter(|(_, c)| c.embed.join == crate::rest::select::JoinType::Inner)
            .map(|(i, _)| i)
    }
}
