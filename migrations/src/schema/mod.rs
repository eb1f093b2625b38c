//! The schema cache: what the database holds (schemas, tables and views with their
//! columns and types, keys and foreign keys, functions, RLS flags and policies), read from
//! the catalog in a handful of queries into an immutable, `Arc`-shared [`Schema`] snapshot,
//! and kept fresh on DDL by [`SchemaCache`]. Realtime and REST resolve every identifier
//! against it, so no catalog query runs on a request's path and no identifier a client
//! sends reaches SQL unless the catalog has it.
//!
//! ```ignore
//! let cache = SchemaCache::start(pg_config, NoTls, CacheOptions::default(), shutdown).await?;
//! let schema = cache.snapshot();
//! let todos = schema.relation("public", "todos").ok_or(NotFound)?;
//! for embed in &todos.relationships { /* ... */ }
//! ```
//!
//! Modules by noun: [`relation`] (tables and views, columns, keys), [`relationship`]
//! (foreign keys and the embeddings they allow), [`function`], [`policy`], [`types`];
//! [`snapshot`] holds them and answers lookups, [`load`] reads them, [`fingerprint`] and
//! [`cache`] keep them fresh.

pub mod cache;
pub mod fingerprint;
pub mod function;
pub mod load;
pub mod policy;
pub mod relation;
pub mod relationship;
pub mod snapshot;
pub mod types;

pub use cache::{CacheOptions, DDL_CHANNEL, RefreshMode, RefreshSource, SchemaCache};
pub use fingerprint::Fingerprint;
pub use function::{ArgMode, Function, FunctionArg, ReturnType, Volatility};
pub use load::SchemaError;
pub use policy::{Policy, PolicyCommand};
pub use relation::{Column, Identity, Relation, RelationKind, ReplicaIdentity, UniqueKey};
pub use relationship::{Cardinality, ForeignKey, Junction, Relationship};
pub use snapshot::{Namespace, Schema};
pub use types::{DataType, TypeKind, TypeRef};
