//! Writing `ORDER BY` (columns, JSON paths, columns of to-one embeds through a scalar
//! subquery, directions and nulls placement), `GROUP BY` for aggregates, and
//! `LIMIT`/`OFFSET` as parameters.

use super::select::{col, from_where};
use super::sql::Sql;
use super::tree::Node;
use crate::rest::order::{Direction, NullsOrder};
use crate::rest::range::RowRange;

/// ` ORDER BY …` of `node`, reading its columns through `alias` (nothing without terms).
pub(crate) fn order_by(sql: &mut Sql, node: &Node, alias: u32) {
    for (i, o) in node.order.iter().enumerate() {
        sql.push(if i == 0 { " ORDER BY " } else { ", " });
        match o.embed {
            Some(index) => {
                let child = &node.embeds[index];
                sql.push("(SELECT ");
                col(sql, child.node.alias, &o.col, false);
                from_where(sql, child, alias);
                sql.push(")");
            }
            None => col(sql, alias, &o.col, false),
        }
        match o.term.direction {
            Some(Direction::Asc) => sql.push(" ASC"),
            Some(Direction::Desc) => sql.push(" DESC"),
            None => {}
        }
        match o.term.nulls {
            Some(NullsOrder::First) => sql.push(" NULLS FIRST"),
            Some(NullsOrder::Last) => sql.push(" NULLS LAST"),
            None => {}
        }
    }
}

/// ` GROUP BY …` of an aggregated node: every key that is not an aggregate, as the
/// select list wrote it (`groups`, from [`super::select::object`]): the very same text,
/// parameters included, so PostgreSQL sees the same expressions.
pub(crate) fn group_by(sql: &mut Sql, groups: &[String]) {
    for (i, group) in groups.iter().enumerate() {
        sql.push(if i == 0 { " GROUP BY " } else { ", " });
        sql.push(group);
    }
}

/// ` LIMIT $n OFFSET $m`, each present only when it restricts.
pub(crate) fn range(sql: &mut Sql, range: RowRange) {
    if let Some(limit) = range.limit {
        sql.push(" LIMIT ");
        sql.param(limit.to_string());
    }
    if range.offset > 0 {
        sql.push(" OFFSET ");
        sql.param(range.offset.to_string());
    }
}
