//! Logic trees: `or=(…)`, `and=(…)`, `not.or=(…)` and `embed.or=(…)` (PostgREST's
//! `pLogicTree`):
//!
//! ```text
//! key       = [path "."] ["not."] ("and" | "or")
//! value     = "(" condition ("," condition)* ")"
//! condition = ["not."] ("and" | "or") "(" condition ("," condition)* ")"
//!           | field "." op_expr                     -- values end at "," or ")"
//! ```
//!
//! Nesting is bounded by [`Limits::max_logic_depth`](super::limits::Limits); the
//! conditions of one query node are ANDed together with its plain filters.

use super::cursor::{Cursor, Syntax};
use super::field::parse_field;
use super::filter::{Filter, ValueEnd, parse_op_expr};

/// How the children of a logic node combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOperator {
    /// All children hold.
    And,
    /// At least one child holds.
    Or,
}

/// A condition on a query node: a filter, or a (possibly negated) and/or of conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// One filter.
    Filter(Filter),
    /// `[NOT] (c1 AND|OR c2 …)`, never empty.
    Logic {
        /// And or or.
        operator: LogicOperator,
        /// `not.` before it.
        negated: bool,
        /// At least one child.
        conditions: Vec<Condition>,
    },
}

impl Condition {
    /// How deep this condition nests (a filter is 0, `or(a,b)` is 1).
    pub fn depth(&self) -> usize {
        match self {
            Condition::Filter(_) => 0,
            Condition::Logic { conditions, .. } => {
                1 + conditions.iter().map(Condition::depth).max().unwrap_or(0)
            }
        }
    }
}

/// Parses the value of a logic parameter whose key named `operator` (and `not.`).
pub(crate) fn parse_logic_value(
    c: &mut Cursor,
    operator: LogicOperator,
    negated: bool,
) -> Result<Condition, Syntax> {
    let conditions = parse_children(c, 1)?;
    Ok(Condition::Logic {
        operator,
        negated,
        conditions,
    })
}

/// `( condition, … )` of a node at `depth`.
fn parse_children(c: &mut Cursor, depth: usize) -> Result<Vec<Condition>, Syntax> {
    if depth > c.limits.max_logic_depth {
        return Err(c.error(format!(
            "logic tree nested deeper than {} levels",
            c.limits.max_logic_depth
        )));
    }
    c.skip_ws();
    c.expect("(")?;
    let mut conditions = Vec::new();
    loop {
        c.skip_ws();
        conditions.push(parse_condition(c, depth)?);
        c.skip_ws();
        if c.eat(",") {
            continue;
        }
        if c.eat(")") {
            c.skip_ws();
            return Ok(conditions);
        }
        return Err(c.unexpected("',' or ')'"));
    }
}

/// One condition inside a node at `depth`.
fn parse_condition(c: &mut Cursor, depth: usize) -> Result<Condition, Syntax> {
    let start = c.pos();
    let negated = c.eat("not.");
    let operator = if c.rest().starts_with("and(") {
        c.eat("and");
        Some(LogicOperator::And)
    } else if c.rest().starts_with("or(") {
        c.eat("or");
        Some(LogicOperator::Or)
    } else {
        None
    };
    if let Some(operator) = operator {
        let conditions = parse_children(c, depth + 1)?;
        return Ok(Condition::Logic {
            operator,
            negated,
            conditions,
        });
    }
    c.reset(start);
    let field = parse_field(c)?;
    c.expect(".")?;
    let (negated, operation) = parse_op_expr(c, ValueEnd::Logic)?;
    Ok(Condition::Filter(Filter {
        field,
        negated,
        operation,
    }))
}
