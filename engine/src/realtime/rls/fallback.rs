//! The SQL fallback: one call of `realtime.check_visibility` (migration 0002) decides every
//! distinct context of one change in one round trip.

use fluxbase_auth::AuthContext;
use serde_json::{Map, Value, json};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::RlsError;

/// Text of the fallback query. Parameters are typed explicitly (`query_typed`) so the call
/// is one round trip without a prepare step.
const CHECK_VISIBILITY: &str =
    "SELECT i FROM realtime.check_visibility($1, $2::text::jsonb, $3::text::jsonb) AS i";

/// Asks PostgreSQL which of `contexts` can SELECT the row of `relid` whose primary key is
/// `pk` (column name → decoded value), switching role and `request.jwt.claims` per
/// context. Returns one boolean per context, in order. A context whose role is missing,
/// lacks privileges, or whose policies raise an error gets `false`.
pub async fn check_visibility(
    client: &Client,
    relid: u32,
    pk: &Map<String, Value>,
    contexts: &[&AuthContext],
) -> Result<Vec<bool>, RlsError> {
    if contexts.is_empty() {
        return Ok(Vec::new());
    }
    let pk_text = Value::Object(pk.clone()).to_string();
    let contexts_text = Value::Array(
        contexts
            .iter()
            .map(|ctx| json!({"role": ctx.role().as_str(), "claims": ctx.claims()}))
            .collect(),
    )
    .to_string();
    let rows = client
        .query_typed(
            CHECK_VISIBILITY,
            &[
                (&relid, Type::OID),
                (&pk_text, Type::TEXT),
                (&contexts_text, Type::TEXT),
            ],
        )
        .await
        .map_err(RlsError::Fallback)?;
    let mut visible = vec![false; contexts.len()];
    for row in rows {
        let index: i32 = row.try_get(0).map_err(RlsError::Fallback)?;
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| visible.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(visible)
}
