//! The relation cache: table shapes from Relation messages, keyed by OID, and the type
//! cache that maps user types (enums, domains, their arrays) to a conversion.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pgoutput::message::RelationBody;
use crate::pgoutput::value::{ValueKind, builtin};
use crate::transaction::Column;

/// OIDs below this are built into PostgreSQL; others need a catalog lookup.
pub const FIRST_NORMAL_OID: u32 = 16384;

/// How a user-defined type's values are converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeShape {
    /// A domain (possibly nested) whose base is this built-in type.
    Base(u32),
    /// An array whose element type is this OID (built-in or user).
    ArrayOf(u32),
    /// Enums, composites, ranges and anything else: text.
    Text,
}

/// A user-defined type as resolved from `pg_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserType {
    /// Type name shown to clients.
    pub name: String,
    /// How its values convert.
    pub shape: TypeShape,
}

/// Known user types; unknown ones convert as text.
#[derive(Debug, Default)]
pub struct TypeCache {
    /// Resolved types by OID.
    types: HashMap<u32, UserType>,
    /// Names from Type messages, for types not (yet) resolved.
    names: HashMap<u32, String>,
}

impl TypeCache {
    /// Records a resolved type.
    pub fn insert(&mut self, oid: u32, ty: UserType) {
        self.types.insert(oid, ty);
    }

    /// Records the name a Type message gave.
    pub fn insert_name(&mut self, oid: u32, name: String) {
        self.names.insert(oid, name);
    }

    /// Whether `oid` needs a catalog lookup.
    pub fn is_missing(&self, oid: u32) -> bool {
        oid >= FIRST_NORMAL_OID && !self.types.contains_key(&oid)
    }

    /// Type OIDs of `relation` that need a catalog lookup.
    pub fn missing(&self, relation: &RelationBody) -> Vec<u32> {
        let mut out: Vec<u32> = relation
            .columns
            .iter()
            .map(|c| c.type_oid)
            .filter(|oid| self.is_missing(*oid))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Name and conversion of `oid`.
    pub fn resolve(&self, oid: u32) -> (String, ValueKind) {
        let kind = self.kind(oid, 0);
        let name = match builtin(oid) {
            Some((name, _)) => name.to_owned(),
            None => match self.types.get(&oid) {
                Some(t) => t.name.clone(),
                None => self
                    .names
                    .get(&oid)
                    .cloned()
                    .unwrap_or_else(|| oid.to_string()),
            },
        };
        (name, kind)
    }

    /// Conversion of `oid`, following domains and arrays a bounded number of steps.
    fn kind(&self, oid: u32, depth: usize) -> ValueKind {
        if let Some((_, kind)) = builtin(oid) {
            return kind;
        }
        if depth > 8 {
            return ValueKind::Text;
        }
        match self.types.get(&oid).map(|t| &t.shape) {
            Some(TypeShape::Base(base)) => self.kind(*base, depth + 1),
            Some(TypeShape::ArrayOf(elem)) => {
                ValueKind::Array(Box::new(self.kind(*elem, depth + 1)))
            }
            Some(TypeShape::Text) | None => ValueKind::Text,
        }
    }
}

/// A table as last described by the server.
#[derive(Debug, Clone)]
pub struct Relation {
    /// Table OID.
    pub id: u32,
    /// Schema name.
    pub schema: Arc<str>,
    /// Table name.
    pub table: Arc<str>,
    /// `d`, `n`, `f` or `i`.
    pub replica_identity: u8,
    /// Columns with type names.
    pub columns: Arc<[Column]>,
    /// Conversion per column.
    pub kinds: Vec<ValueKind>,
    /// Primary-key column positions: the real primary key when the catalog told us, else the
    /// replica identity key columns.
    pub primary_key: Vec<usize>,
}

impl Relation {
    /// Builds a relation from its message, the type cache, and the primary-key column names
    /// from the catalog (`None` when unknown).
    pub fn new(body: &RelationBody, types: &TypeCache, primary_key: Option<&[String]>) -> Relation {
        let mut columns = Vec::with_capacity(body.columns.len());
        let mut kinds = Vec::with_capacity(body.columns.len());
        for c in &body.columns {
            let (type_name, kind) = types.resolve(c.type_oid);
            columns.push(Column {
                name: c.name.clone(),
                type_name,
            });
            kinds.push(kind);
        }
        let by_catalog: Vec<usize> = primary_key
            .unwrap_or(&[])
            .iter()
            .filter_map(|name| body.columns.iter().position(|c| &c.name == name))
            .collect();
        let primary_key = if by_catalog.is_empty() {
            body.columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_key)
                .map(|(i, _)| i)
                .collect()
        } else {
            by_catalog
        };
        Relation {
            id: body.id,
            schema: Arc::from(body.schema.as_str()),
            table: Arc::from(body.table.as_str()),
            replica_identity: body.replica_identity,
            columns: Arc::from(columns),
            kinds,
            primary_key,
        }
    }
}

/// Relations by OID.
#[derive(Debug, Default)]
pub struct RelationCache {
    /// By table OID.
    relations: HashMap<u32, Arc<Relation>>,
}

impl RelationCache {
    /// Stores or replaces a relation.
    pub fn insert(&mut self, relation: Relation) {
        self.relations.insert(relation.id, Arc::new(relation));
    }

    /// The relation with this OID.
    pub fn get(&self, id: u32) -> Option<&Arc<Relation>> {
        self.relations.get(&id)
    }

    /// Forgets everything: a new session re-sends Relation messages.
    pub fn clear(&mut self) {
        self.relations.clear();
    }
}
