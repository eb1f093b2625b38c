//! The SQL side of RLS decisions (migration 0008): one `realtime.check_image` call judges
//! every distinct context of one change on the row version the event carries; unchanged
//! TOAST values are read with `realtime.fetch_columns`; `realtime.access_fingerprint` tells
//! the role watcher when role attributes, memberships or ACLs changed.

use fluxbase_auth::AuthContext;
use serde_json::{Map, Value, json};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::RlsError;
use super::image::RowRef;
use crate::realtime::filter::Filter;

/// Text of the fallback query. Parameters are typed explicitly (`query_typed`) so the call
/// is one round trip without a prepare step.
const CHECK_IMAGE: &str = "SELECT i FROM realtime.check_image($1, $2::text::jsonb, $3, $4, \
                           $5::text::jsonb) AS i";

/// Asks PostgreSQL which of `contexts` could SELECT the row version `image` of `relid`
/// (column → decoded value, every column present; `json_nulls` names the json/jsonb
/// columns holding the JSON `null` literal), by evaluating the table's SELECT policies
/// over the image under each context's role and `request.jwt.claims`. `xid` is the
/// transaction that wrote the version: the check waits until it is visible, so policies
/// reading other tables see what it wrote. Returns one boolean per context, in order. A
/// context whose role is missing, lacks privileges, or whose policies raise an error gets
/// `false`.
pub async fn check_image(
    client: &Client,
    relid: u32,
    image: &Map<String, Value>,
    json_nulls: &[String],
    xid: u32,
    contexts: &[&AuthContext],
) -> Result<Vec<bool>, RlsError> {
    if contexts.is_empty() {
        return Ok(Vec::new());
    }
    let image_text = Value::Object(image.clone()).to_string();
    let contexts_text = Value::Array(
        contexts
            .iter()
            .map(|ctx| json!({"role": ctx.role().as_str(), "claims": ctx.claims()}))
            .collect(),
    )
    .to_string();
    let xid = i64::from(xid);
    let rows = client
        .query_typed(
            CHECK_IMAGE,
            &[
                (&relid, Type::OID),
                (&image_text, Type::TEXT),
                (&json_nulls, Type::TEXT_ARRAY),
                (&xid, Type::INT8),
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

/// The current values of some columns of one row, as [`fetch_columns`] read them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// `xmin` of the row version read (the transaction that wrote it, as text).
    pub xmin: String,
    /// Column → value, converted like decoded values.
    pub values: Map<String, Value>,
    /// json/jsonb columns among them holding the JSON `null` literal.
    pub json_nulls: Vec<String>,
}

/// Reads `columns` of the row of `relid` whose primary key is `pk`, after waiting until
/// transaction `xid` is visible. `None` when the row is gone.
pub async fn fetch_columns(
    client: &Client,
    relid: u32,
    pk: &Map<String, Value>,
    columns: &[String],
    xid: u32,
) -> Result<Option<Fetched>, RlsError> {
    let pk_text = Value::Object(pk.clone()).to_string();
    let xid = i64::from(xid);
    let rows = client
        .query_typed(
            "SELECT row_xmin, name, type_oid, value
             FROM realtime.fetch_columns($1, $2::text::jsonb, $3, $4)",
            &[
                (&relid, Type::OID),
                (&pk_text, Type::TEXT),
                (&columns, Type::TEXT_ARRAY),
                (&xid, Type::INT8),
            ],
        )
        .await
        .map_err(RlsError::Fallback)?;
    let mut fetched: Option<Fetched> = None;
    for row in rows {
        let xmin: String = row.try_get(0).map_err(RlsError::Fallback)?;
        let name: String = row.try_get(1).map_err(RlsError::Fallback)?;
        let oid: u32 = row.try_get(2).map_err(RlsError::Fallback)?;
        let text: Option<String> = row.try_get(3).map_err(RlsError::Fallback)?;
        let out = fetched.get_or_insert_with(|| Fetched {
            xmin,
            values: Map::new(),
            json_nulls: Vec::new(),
        });
        let value = match text {
            None => Value::Null,
            Some(text) => {
                use fluxbase_replication::pgoutput::value::{ValueKind, builtin, is_json_null};
                let kind = builtin(oid).map_or(ValueKind::Text, |(_, kind)| kind);
                if is_json_null(&kind, &text) {
                    out.json_nulls.push(name.clone());
                }
                fluxbase_replication::pgoutput::value::to_json(&kind, &text)
            }
        };
        out.values.insert(name, value);
    }
    Ok(fetched)
}

/// The access fingerprints of two sets of tables, read in one statement (so under one
/// snapshot): the tables loaded when the last fingerprint was applied, and those loaded now.
pub async fn access_fingerprint_pair(
    client: &Client,
    before: &[u32],
    now: &[u32],
) -> Result<(String, String), RlsError> {
    let row = client
        .query_typed(
            "SELECT realtime.access_fingerprint($1), realtime.access_fingerprint($2)",
            &[(&before, Type::OID_ARRAY), (&now, Type::OID_ARRAY)],
        )
        .await
        .map_err(RlsError::Fallback)?;
    match row.first() {
        Some(r) => Ok((
            r.try_get(0).map_err(RlsError::Fallback)?,
            r.try_get(1).map_err(RlsError::Fallback)?,
        )),
        None => Ok((String::new(), String::new())),
    }
}

/// A hash of everything outside the policies that decides what a role may read: role
/// attributes (superuser, BYPASSRLS, inherit), memberships, and the ACLs of `relids`, their
/// schemas and the `auth` functions. Role attributes and memberships fire no event trigger;
/// the ACLs do (`GRANT`/`REVOKE` on a table, schema or function), and move the schema
/// cache's polled fingerprint where there is no trigger.
pub async fn access_fingerprint(client: &Client, relids: &[u32]) -> Result<String, RlsError> {
    let row = client
        .query_typed(
            "SELECT realtime.access_fingerprint($1)",
            &[(&relids, Type::OID_ARRAY)],
        )
        .await
        .map_err(RlsError::Fallback)?;
    // The function returns exactly one row.
    match row.first() {
        Some(r) => r.try_get(0).map_err(RlsError::Fallback),
        None => Ok(String::new()),
    }
}

/// Asks PostgreSQL which of `filters` the row version `row` passes (filters whose
/// comparison cannot be made exactly in-process), in one call; one boolean per filter.
pub async fn filter_matches(
    client: &Client,
    relid: u32,
    row: RowRef<'_>,
    filters: &[&Filter],
) -> Result<Vec<bool>, RlsError> {
    if filters.is_empty() {
        return Ok(Vec::new());
    }
    let image_text = Value::Object(row.values.clone()).to_string();
    let filters_text = Value::Array(
        filters
            .iter()
            .map(|f| json!({"column": f.column, "op": f.op.as_str(), "values": f.values}))
            .collect(),
    )
    .to_string();
    let rows = client
        .query_typed(
            "SELECT i FROM realtime.filter_matches($1, $2::text::jsonb, $3, $4::text::jsonb) AS i",
            &[
                (&relid, Type::OID),
                (&image_text, Type::TEXT),
                (&row.json_nulls, Type::TEXT_ARRAY),
                (&filters_text, Type::TEXT),
            ],
        )
        .await
        .map_err(RlsError::Fallback)?;
    let mut passed = vec![false; filters.len()];
    for row in rows {
        let index: i32 = row.try_get(0).map_err(RlsError::Fallback)?;
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| passed.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(passed)
}
