//! Acting as the caller inside a transaction: the database role of the request's context
//! (`anon`, `authenticated`, `service_role` or a custom role the login role may switch to)
//! and its JWT claims in `request.jwt.claims`, both transaction-local, so PostgreSQL's
//! grants and Row-Level-Security policies (`auth.uid()`, `auth.jwt()`) decide what the
//! statements that follow may see and change. Every service that runs SQL on a caller's
//! behalf (REST, storage, RPC) starts its transaction with [`act_as`].

use tokio_postgres::GenericClient;

use crate::error::DbError;

/// The statement that switches role and claims (both `is_local`: they end with the
/// transaction, so a pooled connection never carries a caller's identity further).
pub const ACT_AS_SQL: &str = "SELECT pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true)";

/// Switches the current transaction to `role` with `claims` (JSON object text). Must run
/// inside a transaction: outside one, `set_config(..., true)` lasts only for the statement.
pub async fn act_as<C: GenericClient + Sync>(
    client: &C,
    role: &str,
    claims: &str,
) -> Result<(), DbError> {
    client.query_one(ACT_AS_SQL, &[&role, &claims]).await?;
    Ok(())
}
