//! Writing conditions: filters (`col <op> $n`, one parameter per value, `= ANY($n)` with
//! an array literal for `in.(…)` however long the list), `IS` keywords, full-text search,
//! `and`/`or` trees, existence tests for filters on embeds and `!inner` joins.
//!
//! A value's type is the column's: the parameter is sent as text and PostgreSQL infers its
//! type from the comparison, so `id=eq.abc` on an integer fails with 22P02 (400) and a
//! timestamp compares as a timestamp.

use super::select::{col, exists};
use super::sql::{Sql, array_literal};
use super::tree::{Col, Cond, Node};
use crate::rest::filter::{FtsOperator, IsValue, Operation, Operator, Quantifier};
use crate::rest::logic::LogicOperator;

/// Writes every condition of `node` (its own and its `!inner` embeds'), ANDed, reading
/// the node's columns through `alias`. Writes nothing when there are none.
pub(crate) fn conditions(sql: &mut Sql, node: &Node, alias: u32) {
    let mut first = true;
    for c in &node.conds {
        if !first {
            sql.push(" AND ");
        }
        first = false;
        cond(sql, node, alias, c);
    }
    for index in node.inner_embeds() {
        if !first {
            sql.push(" AND ");
        }
        first = false;
        exists(sql, node, alias, index);
    }
}

/// Writes one condition.
fn cond(sql: &mut Sql, node: &Node, alias: u32, c: &Cond) {
    match c {
        Cond::Filter {
            col: column,
            negated,
            operation,
        } => {
            if *negated {
                sql.push("NOT (");
            }
            filter(sql, alias, column, operation);
            if *negated {
                sql.push(")");
            }
        }
        Cond::Equals { column, value } => {
            sql.column(alias, column);
            sql.push(" = ");
            sql.param(*value);
        }
        Cond::EmbedExists {
            embed,
            exists: present,
        } => {
            if !present {
                sql.push("NOT ");
            }
            exists(sql, node, alias, *embed);
        }
        Cond::Logic {
            operator,
            negated,
            children,
        } => {
            if *negated {
                sql.push("NOT ");
            }
            sql.push("(");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    sql.push(match operator {
                        LogicOperator::And => " AND ",
                        LogicOperator::Or => " OR ",
                    });
                }
                cond(sql, node, alias, child);
            }
            sql.push(")");
        }
    }
}

/// The SQL operator of a binary operator.
fn symbol(operator: Operator) -> &'static str {
    match operator {
        Operator::Eq => "=",
        Operator::Neq => "<>",
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Lt => "<",
        Operator::Lte => "<=",
        Operator::Like => "LIKE",
        Operator::ILike => "ILIKE",
        Operator::Match => "~",
        Operator::IMatch => "~*",
        Operator::Contains => "@>",
        Operator::ContainedIn => "<@",
        Operator::Overlaps => "&&",
        Operator::StrictlyLeft => "<<",
        Operator::StrictlyRight => ">>",
        Operator::NotExtendsRight => "&<",
        Operator::NotExtendsLeft => "&>",
        Operator::Adjacent => "-|-",
    }
}

/// Writes `col <operation>`.
fn filter(sql: &mut Sql, alias: u32, column: &Col, operation: &Operation) {
    match operation {
        Operation::Compare {
            operator,
            quantifier,
            value,
        } => {
            col(sql, alias, column, false);
            sql.push(" ");
            sql.push(symbol(*operator));
            match quantifier {
                Some(q) => {
                    sql.push(match q {
                        Quantifier::Any => " ANY(",
                        Quantifier::All => " ALL(",
                    });
                    sql.param(value.as_str());
                    sql.push(")");
                }
                None => {
                    sql.push(" ");
                    sql.param(value.as_str());
                }
            }
        }
        Operation::In(values) => {
            col(sql, alias, column, false);
            sql.push(" = ANY(");
            sql.param(array_literal(values));
            sql.push(")");
        }
        Operation::Is(value) => {
            col(sql, alias, column, false);
            sql.push(match value {
                IsValue::Null => " IS NULL",
                IsValue::NotNull => " IS NOT NULL",
                IsValue::True => " IS TRUE",
                IsValue::False => " IS FALSE",
                IsValue::Unknown => " IS UNKNOWN",
            });
        }
        Operation::IsDistinct(value) => {
            col(sql, alias, column, false);
            sql.push(" IS DISTINCT FROM ");
            sql.param(value.as_str());
        }
        Operation::Fts {
            operator,
            language,
            value,
        } => {
            let language_arg = |sql: &mut Sql| {
                if let Some(language) = language {
                    sql.param_as(language.as_str(), "regconfig");
                    sql.push(", ");
                }
            };
            if column.tsvector {
                col(sql, alias, column, false);
            } else {
                sql.push("to_tsvector(");
                language_arg(sql);
                col(sql, alias, column, false);
                sql.push(")");
            }
            sql.push(match operator {
                FtsOperator::Fts => " @@ to_tsquery(",
                FtsOperator::Plain => " @@ plainto_tsquery(",
                FtsOperator::Phrase => " @@ phraseto_tsquery(",
                FtsOperator::Websearch => " @@ websearch_to_tsquery(",
            });
            language_arg(sql);
            sql.param_as(value.as_str(), "text");
            sql.push(")");
        }
    }
}
