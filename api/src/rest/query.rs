//! The read query of one node of a request — the root relation (or set-returning
//! function) and each embedded resource: what it selects, the conditions on its rows, its
//! order and its range. Parameters with an embed path (`actors.order=name`) are attached
//! to the node that path names; a path `select=` does not embed is PGRST108.

use super::error::{RestError, snippet};
use super::logic::Condition;
use super::order::{OrderTarget, OrderTerm};
use super::range::RowRange;
use super::select::{Embed, SelectItem};

/// One node of the read tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// What to return, in output order; embeds are [`SelectItem::Embed`] children.
    pub select: Vec<SelectItem>,
    /// Conditions ANDed together: `col=op.value` filters and `or=`/`and=` trees.
    pub filters: Vec<Condition>,
    /// `order=` terms, in order.
    pub order: Vec<OrderTerm>,
    /// `limit`/`offset` (and, at the root, `Range`).
    pub range: RowRange,
}

impl Query {
    /// A node selecting `select`, with no conditions, order or range yet.
    pub fn selecting(select: Vec<SelectItem>) -> Self {
        Query {
            select,
            ..Query::default()
        }
    }

    /// The embeds this node selects, in order.
    pub fn embeds(&self) -> impl Iterator<Item = &Embed> {
        self.select.iter().filter_map(|item| match item {
            SelectItem::Embed(embed) => Some(embed.as_ref()),
            _ => None,
        })
    }

    /// How deep embeds nest below this node (0 without embeds).
    pub fn depth(&self) -> usize {
        self.embeds()
            .map(|e| 1 + e.query.depth())
            .max()
            .unwrap_or(0)
    }

    /// The node an embed path names: each segment is an embed's alias, else its relation.
    pub(crate) fn node_mut(&mut self, path: &[String]) -> Result<&mut Query, RestError> {
        self.descend(path, path)
    }

    /// Walks `rest` below this node; `full` is the whole path, for the error.
    fn descend(&mut self, rest: &[String], full: &[String]) -> Result<&mut Query, RestError> {
        let Some((first, tail)) = rest.split_first() else {
            return Ok(self);
        };
        let mut embeds: Vec<&mut Embed> = self
            .select
            .iter_mut()
            .filter_map(|item| match item {
                SelectItem::Embed(embed) => Some(embed.as_mut()),
                _ => None,
            })
            .collect();
        let found = embeds
            .iter()
            .position(|e| e.alias.as_deref() == Some(first.as_str()))
            .or_else(|| embeds.iter().position(|e| e.relation == *first));
        let Some(index) = found else {
            let depth = full.len() - tail.len();
            return Err(RestError::NotEmbedded {
                embed: snippet(&full[..depth].join(".")),
            });
        };
        embeds.swap_remove(index).query.descend(tail, full)
    }

    /// Checks that every `order=embed(col)` term of this node names an embed it selects.
    pub(crate) fn check_related_order(&self) -> Result<(), RestError> {
        for term in &self.order {
            if let OrderTarget::Related { relation, .. } = &term.target {
                let known = self
                    .embeds()
                    .any(|e| e.key() == relation || e.relation == *relation);
                if !known {
                    return Err(RestError::NotEmbedded {
                        embed: snippet(relation),
                    });
                }
            }
        }
        for embed in self.embeds() {
            embed.query.check_related_order()?;
        }
        Ok(())
    }
}
