//! Which relationship an embed follows, by PostgREST's rules (`findRel`): the embed names
//! the related table, a foreign-key constraint or a single foreign-key column; a `!hint`
//! names a constraint, a column on either side, or a junction table. Zero matches is
//! PGRST200, several PGRST201 listing the hints that would choose one. Related tables must
//! live in an exposed schema, so an embed never reaches `auth` or another hidden schema.

use fluxbase_migrations::schema::{Cardinality, Relation, Relationship, Schema};

use super::tree::{JunctionLink, Link};
use crate::rest::catalog_error::{CatalogError, candidate};
use crate::rest::error::{RestError, snippet};
use crate::rest::select::Embed;
use crate::rest::target::is_never_exposed;

/// A relationship chosen for an embed.
pub(crate) struct Found<'a> {
    /// The relationship.
    pub relationship: &'a Relationship,
    /// The related relation.
    pub target: &'a Relation,
    /// The junction of a many-to-many relationship.
    pub junction: Option<&'a Relation>,
}

/// Whether a relation in `schema` may be reached.
fn exposed(schema: &str, schemas: &[String]) -> bool {
    !is_never_exposed(schema) && schemas.iter().any(|s| s == schema)
}

/// The `(table column, foreign column)` pairs of a direct relationship.
fn direct_columns(cardinality: &Cardinality) -> Option<&[(String, String)]> {
    match cardinality {
        Cardinality::ManyToOne { columns, .. }
        | Cardinality::OneToMany { columns, .. }
        | Cardinality::OneToOne { columns, .. } => Some(columns),
        Cardinality::ManyToMany(_) => None,
    }
}

/// The origin-side column of a single-column foreign key equals `name`.
fn fk_column_is(cardinality: &Cardinality, name: &str) -> bool {
    matches!(direct_columns(cardinality), Some([(col, _)]) if col == name)
}

/// The target-side column of a single-column foreign key equals `name`.
fn fk_ref_column_is(cardinality: &Cardinality, name: &str) -> bool {
    matches!(direct_columns(cardinality), Some([(_, col)]) if col == name)
}

/// The constraint of a direct relationship equals `name`.
fn constraint_is(cardinality: &Cardinality, name: &str) -> bool {
    match cardinality {
        Cardinality::ManyToOne { constraint, .. }
        | Cardinality::OneToMany { constraint, .. }
        | Cardinality::OneToOne { constraint, .. } => constraint == name,
        Cardinality::ManyToMany(_) => false,
    }
}

/// Finds the relationship `embed` follows from `origin`.
pub(crate) fn find<'a>(
    schema: &'a Schema,
    origin: &'a Relation,
    embed: &Embed,
    schemas: &[String],
) -> Result<Found<'a>, RestError> {
    let target_name = embed.relation.as_str();
    let hint = embed.hint.as_deref();
    let mut found: Vec<Found<'a>> = Vec::new();
    for relationship in &origin.relationships {
        let Some(target) = schema.relation_by_oid(relationship.foreign_table) else {
            continue;
        };
        if !exposed(&target.schema, schemas) {
            continue;
        }
        let junction = match &relationship.cardinality {
            Cardinality::ManyToMany(j) => match schema.relation_by_oid(j.table) {
                Some(junction) if exposed(&junction.schema, schemas) => Some(junction),
                _ => continue,
            },
            _ => None,
        };
        let card = &relationship.cardinality;
        let is_m2o = matches!(card, Cardinality::ManyToOne { .. });
        let is_o2m = matches!(card, Cardinality::OneToMany { .. });
        let named = target.name == target_name;
        let matches = if relationship.is_self() {
            match hint {
                None => (named && is_o2m) || (fk_column_is(card, target_name) && is_m2o),
                Some(h) => named && is_o2m && fk_ref_column_is(card, h),
            }
        } else {
            match hint {
                None => {
                    named || constraint_is(card, target_name) || fk_column_is(card, target_name)
                }
                Some(h) => {
                    named
                        && (constraint_is(card, h)
                            || fk_column_is(card, h)
                            || fk_ref_column_is(card, h)
                            || junction.is_some_and(|j| j.name == h))
                }
            }
        };
        if matches {
            found.push(Found {
                relationship,
                target,
                junction,
            });
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one match")),
        0 => Err(CatalogError::NoRelationship {
            parent: origin.name.clone(),
            child: snippet(target_name),
            hint: hint.map(snippet),
            schema: origin.schema.clone(),
        }
        .into()),
        _ => Err(ambiguous(origin, target_name, &found)),
    }
}

/// PGRST201 listing every candidate and the hint that would pick it.
fn ambiguous(origin: &Relation, child: &str, found: &[Found]) -> RestError {
    let cols = |pairs: &mut dyn Iterator<Item = &String>| {
        format!(
            "({})",
            pairs.map(String::as_str).collect::<Vec<_>>().join(", ")
        )
    };
    let mut candidates = Vec::new();
    let mut hints = Vec::new();
    for f in found {
        let embedding = format!("{} with {}", origin.name, f.target.name);
        match &f.relationship.cardinality {
            Cardinality::ManyToMany(j) => {
                let junction = f.junction.map_or("", |r| r.name.as_str());
                candidates.push(candidate(
                    "many-to-many",
                    embedding,
                    format!(
                        "{junction} using {}{} and {}{}",
                        j.source_constraint,
                        cols(&mut j.source_columns.iter().map(|(_, c)| c)),
                        j.target_constraint,
                        cols(&mut j.target_columns.iter().map(|(_, c)| c)),
                    ),
                ));
                hints.push(format!("'{}!{junction}'", f.target.name));
            }
            card => {
                let (kind, constraint, columns) = match card {
                    Cardinality::ManyToOne {
                        constraint,
                        columns,
                    } => ("many-to-one", constraint, columns),
                    Cardinality::OneToMany {
                        constraint,
                        columns,
                    } => ("one-to-many", constraint, columns),
                    Cardinality::OneToOne {
                        constraint,
                        columns,
                        ..
                    } => ("one-to-one", constraint, columns),
                    Cardinality::ManyToMany(_) => unreachable!("handled above"),
                };
                candidates.push(candidate(
                    kind,
                    embedding,
                    format!(
                        "{constraint} using {}{} and {}{}",
                        origin.name,
                        cols(&mut columns.iter().map(|(c, _)| c)),
                        f.target.name,
                        cols(&mut columns.iter().map(|(_, c)| c)),
                    ),
                ));
                hints.push(format!("'{}!{constraint}'", f.target.name));
            }
        }
    }
    CatalogError::AmbiguousRelationship {
        parent: origin.name.clone(),
        child: snippet(child),
        candidates,
        hints,
    }
    .into()
}

/// The join of a found relationship; `junction_alias` names the junction, if any.
pub(crate) fn link<'a>(found: &Found<'a>, junction_alias: u32) -> (Link<'a>, bool) {
    let card = &found.relationship.cardinality;
    let to_one = matches!(
        card,
        Cardinality::ManyToOne { .. } | Cardinality::OneToOne { .. }
    );
    let link = match (card, found.junction) {
        (Cardinality::ManyToMany(j), Some(junction)) => Link {
            pairs: Vec::new(),
            junction: Some(JunctionLink {
                relation: junction,
                alias: junction_alias,
                parent_pairs: j
                    .source_columns
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect(),
                child_pairs: j
                    .target_columns
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect(),
            }),
        },
        _ => Link {
            pairs: direct_columns(card)
                .unwrap_or_default()
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect(),
            junction: None,
        },
    };
    (link, to_one)
}
