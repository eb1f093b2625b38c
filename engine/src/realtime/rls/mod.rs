//! Row-Level Security decisions for realtime events (DESIGN §2 "RLS decisions", invariant
//! 4: a row reaches a subscriber only if its role and claims could SELECT it).
//!
//! For one change and the distinct auth contexts of its candidate subscribers,
//! [`RlsDecider::decide`] answers allow/deny per context, cheapest path first:
//! - **bypass**: `service_role` and other roles that bypass RLS, tables without RLS;
//! - **compiled**: the table's SELECT policies, parsed from `pg_get_expr` text
//!   ([`parser`]) and compiled ([`predicate`]) when they fall in the supported subset, are
//!   evaluated on the decoded row with SQL three-valued logic;
//! - **cache**: earlier SQL answers for the same context and the same row values
//!   ([`cache`]);
//! - **sql**: one `realtime.check_image` call for all contexts still undecided
//!   ([`fallback`]): the table's SELECT policies evaluated over the event's row version,
//!   never over the row as it is when the engine asks.
//!
//! Rows are [`image::RowRef`]s: JSON `null` literals of json/jsonb columns are told apart
//! from SQL NULL, and unchanged TOAST values are recovered by [`image::complete`]. A
//! connection is taken only when a decision needs one ([`conn::Conn`]), from the engine's
//! own pool.
//!
//! Tables whose permissive policies all require `col = auth.uid()` also get an
//! [`OwnerRoute`] so the hub can pick the owner's subscriptions by key.

pub mod cache;
pub mod conn;
mod decider;
pub mod fallback;
pub mod image;
pub mod input;
mod lexer;
pub mod owner;
pub mod parser;
pub mod policy;
pub mod predicate;
pub mod value;

pub use cache::{CacheKey, DecisionCache};
pub use conn::{Conn, fallback_pool};
pub use decider::{Decision, RlsConfig, RlsDecider, RowChange, Source};
pub use fallback::{access_fingerprint, access_fingerprint_pair, check_image, fetch_columns};
pub use image::{Completed, RowRef};
pub use owner::{OwnerIndex, OwnerRoute, RowOwner};
pub use policy::{Policy, PolicySet, RelationRef, RoleAccess, TablePolicies, Verdict};

/// Errors of RLS decisions. Every variant wraps the database error that caused it.
#[derive(Debug, thiserror::Error)]
pub enum RlsError {
    /// Reading policies, columns or role privileges from the catalog failed.
    #[error("cannot {what}")]
    Catalog {
        /// What was being read.
        what: &'static str,
        /// The database error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A `realtime.*` fallback call failed (undecided contexts must be denied).
    #[error("the SQL visibility check failed")]
    Fallback(#[source] tokio_postgres::Error),
    /// No connection from the engine's own pool.
    #[error("no connection for RLS decisions")]
    Pool(#[source] deadpool_postgres::PoolError),
}

impl RlsError {
    /// A mapper for `map_err` on catalog reads.
    fn catalog(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> RlsError {
        move |source| RlsError::Catalog { what, source }
    }
}
