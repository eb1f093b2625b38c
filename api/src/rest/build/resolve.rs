//! Resolution: each node of the parser's read tree checked against the schema snapshot and
//! turned into a [`Node`] — columns found (42703 otherwise), casts allowlisted, embeds
//! bound to a relationship, filters on embeds turned into existence tests, related orders
//! checked to-one, ranges capped by `rest.max_rows`, aliases assigned.

use fluxbase_migrations::schema::{DataType, Schema};

use super::embed;
use super::tree::{Child, Col, Cond, Item, Node, Order, Source, Value};
use crate::rest::catalog_error::CatalogError;
use crate::rest::error::{ParamKind, QueryParamError, RestError, snippet};
use crate::rest::field::Field;
use crate::rest::filter::{IsValue, Operation};
use crate::rest::logic::Condition;
use crate::rest::order::OrderTarget;
use crate::rest::query::Query;
use crate::rest::range::RowRange;
use crate::rest::select::{AggregateFunction, Embed, SelectItem};

/// Type names a `::cast` may use besides the types of the snapshot's columns: PostgreSQL's
/// common built-in types, lowercase (the request's spelling is matched case-insensitively).
const CASTS: &[&str] = &[
    "bigint",
    "bit",
    "bit varying",
    "bool",
    "boolean",
    "bpchar",
    "bytea",
    "char",
    "character",
    "character varying",
    "cidr",
    "date",
    "decimal",
    "double precision",
    "float4",
    "float8",
    "inet",
    "int",
    "int2",
    "int4",
    "int8",
    "integer",
    "interval",
    "json",
    "jsonb",
    "macaddr",
    "money",
    "name",
    "numeric",
    "oid",
    "real",
    "smallint",
    "text",
    "time",
    "time with time zone",
    "time without time zone",
    "timestamp",
    "timestamp with time zone",
    "timestamp without time zone",
    "timestamptz",
    "timetz",
    "tsquery",
    "tsvector",
    "uuid",
    "varbit",
    "varchar",
    "xml",
];

/// Resolves read trees against one snapshot, numbering aliases across the statement.
pub(crate) struct Resolver<'a> {
    /// The snapshot.
    pub schema: &'a Schema,
    /// The exposed schemas (embeds may reach these only).
    pub schemas: &'a [String],
    /// `rest.max_rows`.
    pub max_rows: Option<u64>,
    /// The next alias number.
    next_alias: u32,
}

impl<'a> Resolver<'a> {
    /// A resolver over `schema`.
    pub fn new(schema: &'a Schema, schemas: &'a [String], max_rows: Option<u64>) -> Self {
        Resolver {
            schema,
            schemas,
            max_rows,
            next_alias: 0,
        }
    }

    /// A fresh alias number.
    pub fn alias(&mut self) -> u32 {
        let n = self.next_alias;
        self.next_alias += 1;
        n
    }

    /// Resolves `query` reading `source`; `depth` is 0 at the root; `cap` applies
    /// `rest.max_rows` to the ranges (reads and calls, not a write's representation).
    pub fn node(
        &mut self,
        query: &'a Query,
        source: Source<'a>,
        depth: usize,
        cap: bool,
    ) -> Result<Node<'a>, RestError> {
        let alias = self.alias();
        let mut embeds = Vec::new();
        for item in &query.select {
            if let SelectItem::Embed(e) = item {
                embeds.push(self.child(e, source, depth, cap)?);
            }
        }
        let (items, whole_row) = self.items(query, source, &embeds, depth)?;
        let aggregated = items
            .iter()
            .any(|i| matches!(i.value, Value::Aggregate { .. }));
        if aggregated
            && items
                .iter()
                .any(|i| matches!(i.value, Value::Embed(_) | Value::Spread { .. }))
        {
            return Err(RestError::NotImplemented {
                details: "aggregates cannot be combined with embedded resources at the same \
                          level of select"
                    .to_owned(),
            });
        }
        let conds = query
            .filters
            .iter()
            .map(|c| self.cond(c, source, &embeds))
            .collect::<Result<Vec<_>, _>>()?;
        let order = self.order(query, source, &embeds)?;
        let range = if cap {
            cap_range(query.range, self.max_rows)
        } else {
            query.range
        };
        Ok(Node {
            source,
            alias,
            items,
            whole_row,
            aggregated,
            conds,
            order,
            range,
            embeds,
        })
    }

    /// An embed of a node reading `source`.
    fn child(
        &mut self,
        e: &'a Embed,
        source: Source<'a>,
        depth: usize,
        cap: bool,
    ) -> Result<Child<'a>, RestError> {
        let origin = source
            .relation()
            .ok_or_else(|| CatalogError::NoRelationship {
                parent: source.label().to_owned(),
                child: snippet(&e.relation),
                hint: e.hint.as_deref().map(snippet),
                schema: String::new(),
            })?;
        let found = embed::find(self.schema, origin, e, self.schemas)?;
        let junction_alias = if found.junction.is_some() {
            self.alias()
        } else {
            0
        };
        let (link, to_one) = embed::link(&found, junction_alias);
        if e.spread && !to_one {
            return Err(RestError::NotImplemented {
                details: format!(
                    "spreading the to-many relationship '{}' is not supported; embed it instead",
                    snippet(e.key())
                ),
            });
        }
        let node = self.node(&e.query, Source::Relation(found.target), depth + 1, cap)?;
        Ok(Child {
            embed: e,
            link,
            to_one,
            node,
        })
    }

    /// The output keys of a node, and whether its object is the whole row.
    fn items(
        &self,
        query: &'a Query,
        source: Source<'a>,
        embeds: &[Child<'a>],
        depth: usize,
    ) -> Result<(Vec<Item<'a>>, bool), RestError> {
        if let Source::Call(call) = source
            && call.scalar
        {
            return Ok((Vec::new(), false));
        }
        let only_star = matches!(query.select.as_slice(), [SelectItem::Star]);
        let columns = source.columns();
        if columns.is_none() && !only_star {
            return Err(RestError::NotImplemented {
                details: format!(
                    "the columns of what {} returns are unknown: only select=* is possible",
                    source.label()
                ),
            });
        }
        let mut items = Vec::new();
        let mut embed_index = 0;
        for item in &query.select {
            match item {
                SelectItem::Star => {
                    for &(name, ty) in columns.iter().flatten() {
                        items.push(Item {
                            key: (*name).to_owned(),
                            value: Value::Column(Col {
                                name,
                                path: &[],
                                cast: None,
                                tsvector: is_tsvector(ty),
                            }),
                        });
                    }
                }
                SelectItem::Column { field, alias, cast } => {
                    let count_fallback = depth > 0
                        && field.name == "count"
                        && field.json_path.is_empty()
                        && cast.is_none()
                        && source.column("count").is_none();
                    let value = if count_fallback {
                        Value::Aggregate {
                            function: AggregateFunction::Count,
                            field: None,
                            result_cast: None,
                        }
                    } else {
                        Value::Column(self.col(source, field, cast.as_deref())?)
                    };
                    let key = alias.clone().unwrap_or_else(|| field.output_name());
                    items.push(Item { key, value });
                }
                SelectItem::Aggregate {
                    function,
                    field,
                    cast,
                    result_cast,
                    alias,
                } => {
                    let field = match field {
                        Some(f) => Some(self.col(source, f, cast.as_deref())?),
                        None => None,
                    };
                    let result_cast = result_cast.as_deref().map(|c| self.cast(c)).transpose()?;
                    let key = alias
                        .clone()
                        .unwrap_or_else(|| aggregate_name(*function).to_owned());
                    items.push(Item {
                        key,
                        value: Value::Aggregate {
                            function: *function,
                            field,
                            result_cast,
                        },
                    });
                }
                SelectItem::Embed(e) => {
                    let index = embed_index;
                    embed_index += 1;
                    let child = &embeds[index];
                    if e.spread {
                        for inner in &child.node.items {
                            items.push(Item {
                                key: inner.key.clone(),
                                value: Value::Spread {
                                    embed: index,
                                    value: Box::new(inner.value.clone()),
                                },
                            });
                        }
                    } else if !e.query.select.is_empty() {
                        items.push(Item {
                            key: e.key().to_owned(),
                            value: Value::Embed(index),
                        });
                    }
                }
            }
        }
        Ok((items, only_star && embeds.is_empty()))
    }

    /// A column of `source`, with its JSON path and cast.
    fn col(
        &self,
        source: Source<'a>,
        field: &'a Field,
        cast: Option<&'a str>,
    ) -> Result<Col<'a>, RestError> {
        let ty = source
            .column(&field.name)
            .ok_or_else(|| CatalogError::unknown_column(source.label(), &field.name))?;
        Ok(Col {
            name: &field.name,
            path: &field.json_path,
            cast: cast.map(|c| self.cast(c)).transpose()?,
            tsvector: field.json_path.is_empty() && is_tsvector(ty),
        })
    }

    /// A cast's type name, if allowed: a common built-in type, or the exact name of a type
    /// some column of the snapshot has (an enum, a domain).
    fn cast(&self, cast: &'a str) -> Result<&'a str, RestError> {
        let lower = cast.to_ascii_lowercase();
        if let Some(builtin) = CASTS.iter().find(|t| **t == lower) {
            return Ok(builtin);
        }
        let known = self
            .schema
            .relations()
            .iter()
            .flat_map(|r| &r.columns)
            .any(|c| c.data_type.name == cast);
        if known {
            return Ok(cast);
        }
        Err(QueryParamError::value(
            ParamKind::Select,
            "select",
            cast,
            "unknown type for a cast: use a built-in type such as text, int8, numeric, \
             jsonb, or a type of one of the tables",
        )
        .into())
    }

    /// A condition of a node; filters named after an embed test whether it has a row.
    fn cond(
        &self,
        c: &'a Condition,
        source: Source<'a>,
        embeds: &[Child<'a>],
    ) -> Result<Cond<'a>, RestError> {
        match c {
            Condition::Filter(f) => {
                if f.field.json_path.is_empty()
                    && let Some(index) = embed_named(embeds, &f.field.name)
                {
                    let exists = match (&f.operation, f.negated) {
                        (Operation::Is(IsValue::Null), negated) => negated,
                        (Operation::Is(IsValue::NotNull), negated) => !negated,
                        _ => {
                            return Err(RestError::UnacceptableFilter {
                                embed: snippet(&f.field.name),
                            });
                        }
                    };
                    return Ok(Cond::EmbedExists {
                        embed: index,
                        exists,
                    });
                }
                Ok(Cond::Filter {
                    col: self.col(source, &f.field, None)?,
                    negated: f.negated,
                    operation: &f.operation,
                })
            }
            Condition::Logic {
                operator,
                negated,
                conditions,
            } => Ok(Cond::Logic {
                operator: *operator,
                negated: *negated,
                children: conditions
                    .iter()
                    .map(|c| self.cond(c, source, embeds))
                    .collect::<Result<_, _>>()?,
            }),
        }
    }

    /// The `ORDER BY` terms of a node.
    fn order(
        &self,
        query: &'a Query,
        source: Source<'a>,
        embeds: &[Child<'a>],
    ) -> Result<Vec<Order<'a>>, RestError> {
        let mut order = Vec::with_capacity(query.order.len());
        for term in &query.order {
            let (col, embed) = match &term.target {
                OrderTarget::Field(field) => (self.col(source, field, None)?, None),
                OrderTarget::Related { relation, field } => {
                    let index =
                        embed_named(embeds, relation).ok_or_else(|| RestError::NotEmbedded {
                            embed: snippet(relation),
                        })?;
                    let child = &embeds[index];
                    if !child.to_one {
                        return Err(RestError::RelatedOrderNotToOne {
                            origin: source.label().to_owned(),
                            target: snippet(relation),
                        });
                    }
                    (self.col(child.node.source, field, None)?, Some(index))
                }
            };
            order.push(Order { col, embed, term });
        }
        Ok(order)
    }
}

/// The embed a name refers to: by its key (alias or relation), else by its relation.
pub(crate) fn embed_named(embeds: &[Child], name: &str) -> Option<usize> {
    embeds
        .iter()
        .position(|c| c.embed.key() == name)
        .or_else(|| embeds.iter().position(|c| c.embed.relation == name))
}

/// `range` limited to `max_rows` rows.
pub(crate) fn cap_range(range: RowRange, max_rows: Option<u64>) -> RowRange {
    match max_rows {
        Some(max) => RowRange {
            offset: range.offset,
            limit: Some(range.limit.map_or(max, |l| l.min(max))),
        },
        None => range,
    }
}

/// Whether values of `ty` are text-search vectors.
fn is_tsvector(ty: &DataType) -> bool {
    ty.name == "tsvector" || ty.base.as_ref().is_some_and(|b| b.name == "tsvector")
}

/// The key an unaliased aggregate gets (PostgreSQL's column label).
fn aggregate_name(function: AggregateFunction) -> &'static str {
    match function {
        AggregateFunction::Count => "count",
        AggregateFunction::Sum => "sum",
        AggregateFunction::Avg => "avg",
        AggregateFunction::Max => "max",
        AggregateFunction::Min => "min",
    }
}
