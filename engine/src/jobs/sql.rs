//! The `sql` kind: call a PostgreSQL function with one `jsonb` argument, as `service_role`.
//!
//! Payload: `{"function": "schema.name", "args": <any JSON>}` (`schema` defaults to
//! `public`, `args` to `{}`). The function is looked up in the catalog (a function of that
//! schema and name taking exactly one `jsonb`); the statement is built from the catalog's
//! quoted identifiers, never from the caller's text, and the argument is a bind parameter.
//! The result is the function's value as JSON (`null` for `void`, an array for `SETOF`).
//! The call runs in its own transaction, as `service_role`, under `jobs.sql_timeout`.

use std::time::Duration;

use fluxbase_migrations::caller::act_as;
use fluxbase_migrations::{Db, DbError, DbErrorKind};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use super::error::JobError;
use super::handler::{FailureReason, JobFailure, JobHandler, JobRun, RunResult};

/// The payload of a `sql` job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlPayload {
    /// `schema.name` or `name` (in `public`).
    pub function: String,
    /// The function's single argument.
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A function found in the catalog.
#[derive(Debug, Clone)]
struct Resolved {
    /// `"schema"."name"`, quoted by PostgreSQL.
    qualified: String,
    returns_void: bool,
    returns_set: bool,
}

/// Finds the function of `payload.function` that takes one `jsonb`.
const RESOLVE_SQL: &str = "SELECT format('%I.%I', n.nspname, p.proname), \
       p.prorettype = 'pg_catalog.void'::regtype, p.proretset \
     FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname = $1 AND p.proname = $2 AND p.prokind = 'f' AND p.pronargs = 1 \
       AND p.proargtypes[0] = 'pg_catalog.jsonb'::regtype";

/// Splits `schema.name` (or `name`, in `public`).
fn split_name(text: &str) -> Result<(&str, &str), JobError> {
    let (schema, name) = text.split_once('.').unwrap_or(("public", text));
    if schema.is_empty() || name.is_empty() || name.contains('.') || text.len() > 127 {
        return Err(JobError::invalid(
            "payload.function",
            format!("must be schema.name or name, got {text:?}"),
        ));
    }
    Ok((schema, name))
}

/// Runs `sql` jobs.
#[derive(Debug, Clone)]
pub struct SqlHandler {
    db: Db,
    timeout: Duration,
}

impl SqlHandler {
    /// A handler running functions over `db`, each under `timeout`.
    pub fn new(db: Db, timeout: Duration) -> SqlHandler {
        SqlHandler { db, timeout }
    }

    async fn resolve(&self, function: &str) -> Result<Option<Resolved>, DbError> {
        let (schema, name) = match split_name(function) {
            Ok(parts) => parts,
            Err(_) => return Ok(None),
        };
        let rows = self.db.query(RESOLVE_SQL, &[&schema, &name]).await?;
        Ok(rows.first().map(|row| Resolved {
            qualified: row.get(0),
            returns_void: row.get(1),
            returns_set: row.get(2),
        }))
    }

    /// Checks a payload and that its function exists, naming the field.
    pub async fn check(&self, payload: &Value) -> Result<(), JobError> {
        let payload = parse(payload)?;
        split_name(&payload.function)?;
        match self.resolve(&payload.function).await? {
            Some(_) => Ok(()),
            None => Err(JobError::invalid(
                "payload.function",
                format!(
                    "no function {:?} taking one jsonb argument",
                    payload.function
                ),
            )),
        }
    }

    async fn call(&self, job: &JobRun) -> RunResult {
        let payload = parse(&job.payload)
            .map_err(|err| JobFailure::permanent(FailureReason::InvalidPayload, err.to_string()))?;
        let resolved = self
            .resolve(&payload.function)
            .await
            .map_err(|err| sql_failure(&err))?
            .ok_or_else(|| {
                JobFailure::permanent(
                    FailureReason::Sql,
                    format!(
                        "no function {:?} taking one jsonb argument",
                        payload.function
                    ),
                )
            })?;
        let statement = if resolved.returns_void {
            format!("SELECT {}($1::jsonb) IS NULL", resolved.qualified)
        } else if resolved.returns_set {
            format!(
                "SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb) FROM {}($1::jsonb) AS r",
                resolved.qualified
            )
        } else {
            format!("SELECT to_jsonb({}($1::jsonb))", resolved.qualified)
        };
        let run = async {
            let mut conn = self.db.conn().await?;
            let tx = conn.transaction().await?;
            act_as(&*tx, "service_role", r#"{"role":"service_role"}"#).await?;
            let timeout_ms = self.timeout.as_millis().to_string();
            tx.execute(
                "SELECT pg_catalog.set_config('statement_timeout', $1, true)",
                &[&timeout_ms],
            )
            .await?;
            let row = tx.query_one(&statement, &[&payload.args]).await?;
            let result: Option<Value> = if resolved.returns_void {
                None
            } else {
                row.try_get(0)?
            };
            tx.commit().await?;
            Ok::<_, DbError>(result)
        };
        run.await.map_err(|err| sql_failure(&err))
    }
}

fn parse(payload: &Value) -> Result<SqlPayload, JobError> {
    serde_json::from_value(payload.clone()).map_err(|err| {
        JobError::invalid(
            "payload",
            format!("a sql job needs {{\"function\", \"args\"}}: {err}"),
        )
    })
}

/// A failed call: retried when running it again may work (the database was unavailable, a
/// deadlock, a timeout, an exception the function raised); failed for good when the call
/// itself is wrong (no such object, no privilege, a bad value, SQL that does not compile).
fn sql_failure(err: &DbError) -> JobFailure {
    let message = match err.db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => err.to_string(),
    };
    match err.kind() {
        DbErrorKind::QueryCanceled => JobFailure::retry(FailureReason::Timeout, message),
        DbErrorKind::UndefinedObject
        | DbErrorKind::InsufficientPrivilege
        | DbErrorKind::InvalidInput
        | DbErrorKind::SyntaxOrAccessRule => JobFailure::permanent(FailureReason::Sql, message),
        _ => JobFailure::retry(FailureReason::Sql, message),
    }
}

impl JobHandler for SqlHandler {
    fn kind(&self) -> &str {
        "sql"
    }

    fn validate(&self, payload: &Value) -> Result<(), JobError> {
        split_name(&parse(payload)?.function).map(|_| ())
    }

    fn run<'a>(&'a self, job: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(self.call(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_are_schema_dot_name() {
        assert_eq!(split_name("app.cleanup").unwrap(), ("app", "cleanup"));
        assert_eq!(split_name("cleanup").unwrap(), ("public", "cleanup"));
        for bad in ["", ".x", "a.", "a.b.c"] {
            assert_eq!(
                split_name(bad).unwrap_err().field(),
                Some("payload.function"),
                "{bad}"
            );
        }
    }
}
