//! Foreign keys and the relationships derived from them, the way PostgREST embeds: a
//! foreign key on `orders(customer_id)` gives `orders` a many-to-one to `customers` and
//! `customers` a one-to-many to `orders` (one-to-one both ways when the key columns are
//! unique); a junction table whose primary key covers two foreign keys links their targets
//! many-to-many. Derived once per snapshot, so embedding needs no catalog query.

use std::collections::HashMap;

use super::relation::Relation;

/// A foreign key constraint as declared on its relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Constraint name (what `!hint` in `select=` names).
    pub name: String,
    /// Referencing columns on this relation, in constraint order.
    pub columns: Vec<String>,
    /// The referenced relation's OID.
    pub foreign_relation: u32,
    /// The referenced relation's schema.
    pub foreign_schema: String,
    /// The referenced relation's name.
    pub foreign_name: String,
    /// Referenced columns, paired with `columns` by position.
    pub foreign_columns: Vec<String>,
}

/// One way to embed `foreign_table` in a query on `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// The relation the embedding starts from (the one holding this value).
    pub table: u32,
    /// The relation embedded.
    pub foreign_table: u32,
    /// How many rows of each side match, and through which columns.
    pub cardinality: Cardinality,
}

impl Relationship {
    /// A relation related to itself (`categories.parent_id → categories.id`).
    pub fn is_self(&self) -> bool {
        self.table == self.foreign_table
    }

    /// The constraint that links the two sides directly; for many-to-many, the junction's
    /// foreign key to `table`.
    pub fn constraint(&self) -> &str {
        match &self.cardinality {
            Cardinality::ManyToOne { constraint, .. }
            | Cardinality::OneToMany { constraint, .. }
            | Cardinality::OneToOne { constraint, .. } => constraint,
            Cardinality::ManyToMany(junction) => &junction.source_constraint,
        }
    }
}

/// The shape of a relationship. Column pairs are `(column of table, column of
/// foreign_table)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cardinality {
    /// `table` holds the foreign key: each of its rows points to at most one row.
    ManyToOne {
        constraint: String,
        columns: Vec<(String, String)>,
    },
    /// `foreign_table` holds the foreign key: many of its rows may point to one row here.
    OneToMany {
        constraint: String,
        columns: Vec<(String, String)>,
    },
    /// The foreign key columns are also unique on the referencing side: at most one row
    /// each way. `is_parent` when `table` is the referenced side.
    OneToOne {
        constraint: String,
        columns: Vec<(String, String)>,
        is_parent: bool,
    },
    /// Through a junction table holding foreign keys to both sides.
    ManyToMany(Junction),
}

/// The table in the middle of a many-to-many relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Junction {
    /// The junction relation's OID.
    pub table: u32,
    /// Its foreign key to the relationship's `table`.
    pub source_constraint: String,
    /// `(column of table, column of the junction)`.
    pub source_columns: Vec<(String, String)>,
    /// Its foreign key to the relationship's `foreign_table`.
    pub target_constraint: String,
    /// `(column of foreign_table, column of the junction)`.
    pub target_columns: Vec<(String, String)>,
}

/// Fills every relation's `relationships` from the foreign keys of all of them.
pub(super) fn derive(relations: &mut [Relation], by_oid: &HashMap<u32, usize>) {
    let mut found: Vec<(usize, Relationship)> = Vec::new();
    for relation in relations.iter() {
        for fk in &relation.foreign_keys {
            let Some(&target) = by_oid.get(&fk.foreign_relation) else {
                continue;
            };
            let pairs: Vec<(String, String)> = fk
                .columns
                .iter()
                .cloned()
                .zip(fk.foreign_columns.iter().cloned())
                .collect();
            let reversed = pairs.iter().map(|(a, b)| (b.clone(), a.clone())).collect();
            let one_to_one = relation.is_unique(&fk.columns);
            let (outgoing, incoming) = if one_to_one {
                (
                    Cardinality::OneToOne {
                        constraint: fk.name.clone(),
                        columns: pairs,
                        is_parent: false,
                    },
                    Cardinality::OneToOne {
                        constraint: fk.name.clone(),
                        columns: reversed,
                        is_parent: true,
                    },
                )
            } else {
                (
                    Cardinality::ManyToOne {
                        constraint: fk.name.clone(),
                        columns: pairs,
                    },
                    Cardinality::OneToMany {
                        constraint: fk.name.clone(),
                        columns: reversed,
                    },
                )
            };
            let source = by_oid[&relation.oid];
            found.push((
                source,
                Relationship {
                    table: relation.oid,
                    foreign_table: fk.foreign_relation,
                    cardinality: outgoing,
                },
            ));
            found.push((
                target,
                Relationship {
                    table: fk.foreign_relation,
                    foreign_table: relation.oid,
                    cardinality: incoming,
                },
            ));
        }
        found.extend(junctions(relation, by_oid));
    }
    for (index, relationship) in found {
        relations[index].relationships.push(relationship);
    }
}

/// Many-to-many relationships through `junction`: every ordered pair of its foreign keys
/// whose columns together lie within its primary key (PostgREST's rule).
fn junctions<'a>(
    junction: &'a Relation,
    by_oid: &'a HashMap<u32, usize>,
) -> impl Iterator<Item = (usize, Relationship)> + 'a {
    let key = junction.primary_key_columns();
    let fks = &junction.foreign_keys;
    fks.iter().flat_map(move |source| {
        fks.iter().filter_map(move |target| {
            if source.name == target.name
                || key.is_empty()
                || !source
                    .columns
                    .iter()
                    .chain(&target.columns)
                    .all(|c| key.contains(c))
            {
                return None;
            }
            let &index = by_oid.get(&source.foreign_relation)?;
            by_oid.get(&target.foreign_relation)?;
            let pairs = |fk: &ForeignKey| {
                fk.foreign_columns
                    .iter()
                    .cloned()
                    .zip(fk.columns.iter().cloned())
                    .collect()
            };
            Some((
                index,
                Relationship {
                    table: source.foreign_relation,
                    foreign_table: target.foreign_relation,
                    cardinality: Cardinality::ManyToMany(Junction {
                        table: junction.oid,
                        source_constraint: source.name.clone(),
                        source_columns: pairs(source),
                        target_constraint: target.name.clone(),
                        target_columns: pairs(target),
                    }),
                },
            ))
        })
    })
}
