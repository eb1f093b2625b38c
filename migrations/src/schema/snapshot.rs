//! The snapshot: everything the cache knows at one version, immutable and shared behind an
//! `Arc`, with the lookups REST and realtime make on their hot paths (hash maps keyed by
//! exact names and by OID; no allocation to look a name up).

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use super::function::Function;
use super::policy::Policy;
use super::relation::Relation;
use super::relationship::Relationship;

/// A schema (namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// `pg_namespace.oid`.
    pub oid: u32,
    /// Exact name.
    pub name: String,
    /// `COMMENT ON SCHEMA`.
    pub comment: Option<String>,
}

/// Every user schema's relations, functions and policies at one moment, read in one
/// repeatable-read transaction. System schemas (`pg_catalog`, `information_schema`,
/// `pg_toast`, temporary schemas) are left out; which schemas a client may reach is the
/// consumer's decision (REST's `rest.schemas`), not the cache's.
#[derive(Debug)]
pub struct Schema {
    /// Increases by one with every successful load of a cache.
    pub(super) version: u64,
    /// When the load finished.
    pub(super) loaded_at: SystemTime,
    /// How long the load took (the catalog queries and building the maps).
    pub(super) load_duration: Duration,
    /// Sorted by name.
    pub(super) namespaces: Vec<Namespace>,
    /// Sorted by (schema, name).
    pub(super) relations: Vec<Relation>,
    /// schema → name → index in `relations`.
    pub(super) relations_by_name: HashMap<String, HashMap<String, usize>>,
    /// OID → index in `relations`.
    pub(super) relations_by_oid: HashMap<u32, usize>,
    /// Sorted by (schema, name, oid), so the overloads of a name are contiguous.
    pub(super) functions: Vec<Function>,
    /// schema → name → the overloads' range in `functions`.
    pub(super) functions_by_name: HashMap<String, HashMap<String, Range<usize>>>,
}

impl Schema {
    /// The cache's version of this snapshot (0 for one loaded outside a cache).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// How long loading it took.
    pub fn load_duration(&self) -> Duration {
        self.load_duration
    }

    /// Every user schema, by name.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// The schema named exactly `name`.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.namespaces[i])
    }

    /// Every relation, by (schema, name).
    pub fn relations(&self) -> &[Relation] {
        &self.relations
    }

    /// The relations of one schema, by name.
    pub fn relations_in<'a>(&'a self, schema: &'a str) -> impl Iterator<Item = &'a Relation> {
        self.relations.iter().filter(move |r| r.schema == schema)
    }

    /// The relation `schema.name`, names exact (identifiers are case-sensitive).
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        let index = *self.relations_by_name.get(schema)?.get(name)?;
        Some(&self.relations[index])
    }

    /// The relation with this OID.
    pub fn relation_by_oid(&self, oid: u32) -> Option<&Relation> {
        self.relations_by_oid
            .get(&oid)
            .map(|&index| &self.relations[index])
    }

    /// Every way to embed from the relation `oid` (empty for an unknown OID).
    pub fn relationships(&self, oid: u32) -> &[Relationship] {
        self.relation_by_oid(oid)
            .map(|r| r.relationships.as_slice())
            .unwrap_or_default()
    }

    /// The policies of the relation `oid` (empty for an unknown OID).
    pub fn policies(&self, oid: u32) -> &[Policy] {
        self.relation_by_oid(oid)
            .map(|r| r.policies.as_slice())
            .unwrap_or_default()
    }

    /// Every function, by (schema, name, oid).
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// The overloads of `schema.name` (empty when there is no such function).
    pub fn functions_named(&self, schema: &str, name: &str) -> &[Function] {
        self.functions_by_name
            .get(schema)
            .and_then(|names| names.get(name))
            .map(|range| &self.functions[range.clone()])
            .unwrap_or_default()
    }
}
