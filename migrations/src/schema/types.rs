//! Data types as the schema cache describes them: a column's or an argument's type with
//! what REST and OpenAPI need to handle it without asking the catalog again (the domain's
//! base, the array's element, the enum's labels).

use std::collections::HashMap;

/// A type named by OID and by the name `format_type` prints for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// `pg_type.oid`.
    pub oid: u32,
    /// As `format_type` prints it (`integer`, `character varying(80)`, `shop.status[]`):
    /// schema-qualified where the search path would not find it, quoted where needed, so
    /// it can be spliced into a cast.
    pub name: String,
}

/// What kind of type a [`DataType`] is (`pg_type.typtype`, with arrays told apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// A base (scalar) type: `integer`, `text`, `jsonb`, `uuid`...
    Base,
    /// An array; its element is in [`DataType::element`].
    Array,
    /// A composite (row) type: a table's, a view's or a standalone one.
    Composite,
    /// A domain; its base is in [`DataType::base`].
    Domain,
    /// An enum; its labels are in [`DataType::enum_labels`].
    Enum,
    /// A pseudo-type: `record`, `void`, `anyelement`...
    Pseudo,
    /// A range type.
    Range,
    /// A multirange type.
    Multirange,
}

/// The type of a column, a function argument or a function result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataType {
    /// `pg_type.oid` of the declared type (a domain stays a domain here).
    pub oid: u32,
    /// As `format_type` prints it, with the column's modifier (`character varying(80)`).
    pub name: String,
    /// What the declared type is.
    pub kind: TypeKind,
    /// For a domain, the type it is ultimately based on (domains over domains are followed
    /// to the end), with the modifier the domain gives it.
    pub base: Option<TypeRef>,
    /// For an array, or a domain over an array, the element type.
    pub element: Option<TypeRef>,
    /// For an enum, or a domain over an enum, its labels in sort order.
    pub enum_labels: Vec<String>,
}

impl DataType {
    /// Whether values are arrays (directly or through a domain).
    pub fn is_array(&self) -> bool {
        self.element.is_some()
    }

    /// The type values really have: the domain's base, or the type itself.
    pub fn effective(&self) -> TypeRef {
        self.base.clone().unwrap_or_else(|| TypeRef {
            oid: self.oid,
            name: self.name.clone(),
        })
    }
}

/// One `pg_type` row as loaded, before domains and arrays are resolved.
#[derive(Debug, Clone)]
pub(super) struct RawType {
    /// `format_type(oid, NULL)`.
    pub name: String,
    /// `pg_type.typtype`.
    pub typtype: u8,
    /// Domain base (`typbasetype`), 0 otherwise.
    pub base: u32,
    /// The modifier a domain gives its base (`typtypmod`), -1 for none.
    pub typmod: i32,
    /// `format_type(typbasetype, typtypmod)` for domains.
    pub base_name: Option<String>,
    /// Element type of a true array (varlena with `typelem`), 0 otherwise.
    pub element: u32,
    /// `typrelid` of a composite type, 0 otherwise.
    pub relid: u32,
    /// Enum labels in sort order.
    pub labels: Vec<String>,
}

/// Every type of the database by OID: the load resolves each column's and argument's type
/// through it, so a domain over a domain over an array costs no extra query.
#[derive(Debug, Default)]
pub(super) struct TypeTable {
    pub types: HashMap<u32, RawType>,
}

/// Domains nest at most this deep in practice; the bound stops a (corrupt) cycle.
const MAX_DOMAIN_DEPTH: usize = 32;

impl TypeTable {
    /// The `typrelid` of a composite type, if `oid` is one.
    pub fn relid(&self, oid: u32) -> Option<u32> {
        self.types
            .get(&oid)
            .filter(|t| t.typtype == b'c' && t.relid != 0)
            .map(|t| t.relid)
    }

    /// The type named `name` (as printed with its modifier) with its base, element and
    /// labels resolved. An OID missing from the table (dropped concurrently) yields a base
    /// type of that name: the next reload corrects it.
    pub fn resolve(&self, oid: u32, name: String) -> DataType {
        let Some(raw) = self.types.get(&oid) else {
            return DataType {
                oid,
                name,
                kind: TypeKind::Base,
                base: None,
                element: None,
                enum_labels: Vec::new(),
            };
        };
        let kind = kind_of(raw);
        // Follow domains to their final base; the innermost domain carries its modifier.
        let mut base = None;
        let mut effective = raw;
        let mut depth = 0;
        while effective.typtype == b'd' && depth < MAX_DOMAIN_DEPTH {
            let Some(next) = self.types.get(&effective.base) else {
                break;
            };
            base = Some(TypeRef {
                oid: effective.base,
                name: effective
                    .base_name
                    .clone()
                    .unwrap_or_else(|| next.name.clone()),
            });
            effective = next;
            depth += 1;
        }
        let element = (effective.element != 0).then(|| TypeRef {
            oid: effective.element,
            name: self
                .types
                .get(&effective.element)
                .map(|e| e.name.clone())
                .unwrap_or_default(),
        });
        DataType {
            oid,
            name,
            kind,
            base,
            element,
            enum_labels: effective.labels.clone(),
        }
    }

    /// The declared length of a `char(n)`/`varchar(n)` (in characters) or `bit(n)`/
    /// `varbit(n)` (in bits), through domains, as `information_schema` reports it.
    pub fn max_length(&self, oid: u32, typmod: i32) -> Option<i32> {
        let (mut oid, mut typmod) = (oid, typmod);
        for _ in 0..MAX_DOMAIN_DEPTH {
            let raw = self.types.get(&oid)?;
            if raw.typtype != b'd' {
                break;
            }
            if raw.typmod >= 0 {
                typmod = raw.typmod;
            }
            oid = raw.base;
        }
        // pg_type.dat: bpchar, varchar (typmod counts the 4-byte header), bit, varbit.
        match oid {
            1042 | 1043 => (typmod >= 4).then(|| typmod - 4),
            1560 | 1562 => (typmod >= 0).then_some(typmod),
            _ => None,
        }
    }

    /// [`resolve`](Self::resolve) with the type's own name (no modifier: arguments and
    /// results have none).
    pub fn resolve_oid(&self, oid: u32) -> DataType {
        let name = self
            .types
            .get(&oid)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| oid.to_string());
        self.resolve(oid, name)
    }
}

fn kind_of(raw: &RawType) -> TypeKind {
    match raw.typtype {
        b'c' => TypeKind::Composite,
        b'd' => TypeKind::Domain,
        b'e' => TypeKind::Enum,
        b'p' => TypeKind::Pseudo,
        b'r' => TypeKind::Range,
        b'm' => TypeKind::Multirange,
        _ if raw.element != 0 => TypeKind::Array,
        _ => TypeKind::Base,
    }
}
