//! Running a plan as its caller, in one transaction, in as few round trips as the
//! protocol allows.
//!
//! The statements of a request are sent back to back on one pooled connection
//! (tokio-postgres pipelines requests issued before their answers arrive; each request is
//! written when its future is first polled, and `join` polls them in order):
//!
//! ```text
//! BEGIN [READ ONLY]                                  -- simple query
//! SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
//!        set_config('statement_timeout', $3, true)   -- prepared, cached
//! [EXPLAIN (FORMAT JSON) SELECT 1 FROM …]            -- count=planned|estimated
//! WITH … SELECT …                                    -- the request's statement, prepared
//! [COMMIT]                                           -- unless the result must be seen
//! ```
//!
//! PostgreSQL answers them in order. If the role switch fails, the transaction is aborted
//! and every later statement fails with 25P02 without running: nothing ever runs as the
//! login role. The settings are transaction-local, so the connection goes back to the pool
//! as it came. A warm read is one round trip; a write whose result decides between COMMIT
//! and ROLLBACK is two. A request dropped mid-way (client gone) takes its connection out of
//! the pool instead of returning it inside an open transaction.

use std::time::Instant;

use deadpool_postgres::Object;
use fluxbase_migrations::{Db, DbError};
use futures_util::future::join5;
use tokio_postgres::types::ToSql;

use super::build::{Plan, Sql};
use super::failure::Failure;
use super::statements::PreparedStatements;

/// What a statement's single result row held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The counted total, when counted.
    pub total: Option<i64>,
    /// Rows in this response (or written).
    pub page: i64,
    /// The body PostgreSQL built.
    pub body: Option<String>,
    /// Primary-key values of the first written row, for `Location`.
    pub location: Option<Vec<Option<String>>>,
    /// Rows an upsert inserted (rather than updated).
    pub inserted: Option<i32>,
    /// The planner's estimate, for `count=planned|estimated`.
    pub planned: Option<i64>,
}

/// Who the statements run as.
#[derive(Debug, Clone)]
pub(crate) struct Caller<'a> {
    /// The database role.
    pub role: &'a str,
    /// A role from a JWT other than the three API roles: checked before it is assumed.
    pub custom: bool,
    /// The JWT claims as JSON text.
    pub claims: String,
    /// `statement_timeout` in milliseconds.
    pub timeout_ms: u64,
    /// `Prefer: timezone=`, already checked against `pg_timezone_names`.
    pub timezone: Option<&'a str>,
    /// Whether the caller had credentials (401 or 403 on a refusal).
    pub authed: bool,
    /// An application user's token: the role switch also asserts that the session its
    /// claims name is live, in the same round trip. Its claims' `session_id` and `sub`,
    /// verified and checked to be uuids.
    pub session: Option<SessionIds<'a>>,
}

/// The session an application user's token names: its `session_id` and `sub` claims, bound
/// as parameters of the probe (PostgreSQL then need not parse the claims' JSON for them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionIds<'a> {
    /// `session_id`: `auth.sessions.id`.
    pub session_id: &'a str,
    /// `sub`: `auth.sessions.user_id`.
    pub user_id: &'a str,
}

/// Switches role, claims and statement timeout (and time zone) in one statement.
const ACT: &str = "SELECT true, true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true)";

/// [`ACT`] with `Prefer: timezone=`.
const ACT_TZ: &str = "SELECT true, true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true), \
     pg_catalog.set_config('timezone', $4, true)";

/// The session probe of [`ACT_SESSION`]: the session the claims name (its id and user
/// bound as the parameters the macro is given, as text) is live. Its
/// `1 / 0` when the row is gone is the only division in the statement, so a 22012 from it
/// can only mean "session ended" (a refusal by a raised error aborts the transaction: the
/// request's statement never runs, the `COMMIT` pipelined behind it rolls back). The claims
/// were verified and their `sub` and `session_id` parsed as uuids before this runs; the
/// probe runs as the login role, whose privileges are checked when the statement starts,
/// before any `set_config`.
macro_rules! session_probe {
    ($id:literal, $user:literal) => {
        concat!(
            "1 / (EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = ",
            $id,
            "::text::uuid AND s.user_id = ",
            $user,
            "::text::uuid))::int = 1"
        )
    };
}

/// [`ACT`] for an application user's token: fails with 22012 when its session ended.
const ACT_SESSION: &str = concat!(
    "SELECT ",
    session_probe!("$4", "$5"),
    ", true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true)"
);

/// [`ACT_SESSION`] with `Prefer: timezone=`.
const ACT_SESSION_TZ: &str = concat!(
    "SELECT ",
    session_probe!("$5", "$6"),
    ", true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true), \
     pg_catalog.set_config('timezone', $4, true)"
);

/// SQLSTATE of the session probe's refusal (`division_by_zero`).
const SESSION_ENDED: &str = "22012";

/// [`ACT`] for a custom role: it must exist and be granted to the login role directly
/// (a superuser login could otherwise become any role a JWT names). A refused role is not
/// assumed: the transaction runs as `anon`, its results are dropped and it is rolled back.
const ACT_CUSTOM: &str = "SELECT r.found, r.granted, pg_catalog.set_config('role', \
     CASE WHEN r.granted THEN $1 ELSE 'anon' END, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true) \
     FROM (SELECT a.oid IS NOT NULL AS found, a.oid IS NOT NULL AND EXISTS (SELECT 1 \
     FROM pg_catalog.pg_auth_members m WHERE m.roleid = a.oid AND m.member = (SELECT oid \
     FROM pg_catalog.pg_roles WHERE rolname = session_user)) AS granted \
     FROM (SELECT (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) AS oid) a) r";

/// [`ACT_CUSTOM`] with `Prefer: timezone=`.
const ACT_CUSTOM_TZ: &str = "SELECT r.found, r.granted, pg_catalog.set_config('role', \
     CASE WHEN r.granted THEN $1 ELSE 'anon' END, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true), \
     pg_catalog.set_config('timezone', $4, true) \
     FROM (SELECT a.oid IS NOT NULL AS found, a.oid IS NOT NULL AND EXISTS (SELECT 1 \
     FROM pg_catalog.pg_auth_members m WHERE m.roleid = a.oid AND m.member = (SELECT oid \
     FROM pg_catalog.pg_roles WHERE rolname = session_user)) AS granted \
     FROM (SELECT (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) AS oid) a) r";

impl Caller<'_> {
    /// The role-switch statement.
    fn sql(&self) -> &'static str {
        match (self.custom, self.session.is_some(), self.timezone.is_some()) {
            (true, _, false) => ACT_CUSTOM,
            (true, _, true) => ACT_CUSTOM_TZ,
            (false, true, false) => ACT_SESSION,
            (false, true, true) => ACT_SESSION_TZ,
            (false, false, false) => ACT,
            (false, false, true) => ACT_TZ,
        }
    }
}

/// A pooled connection that may be inside a transaction.
struct Held {
    /// The connection (taken out when it must not go back to the pool).
    conn: Option<Object>,
    /// A transaction is open on it.
    open: bool,
}

impl Held {
    /// The connection (present until dropped).
    fn client(&self) -> &Object {
        self.conn.as_ref().expect("held until dropped")
    }

    /// Ends the open transaction.
    async fn end(&mut self, commit: bool) -> Result<(), tokio_postgres::Error> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let result = self.client().batch_execute(sql).await;
        self.open = false;
        result
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.open
            && let Some(conn) = self.conn.take()
        {
            // Dropped inside a transaction (the request was cancelled): close the
            // connection rather than hand it to the next caller mid-transaction.
            tracing::debug!("rest request dropped mid-transaction, closing its connection");
            drop(Object::take(conn));
        }
    }
}

/// A write's transaction, left open until the response is known.
pub(crate) struct OpenTx {
    held: Held,
}

impl OpenTx {
    /// Commits, or rolls back.
    pub async fn finish(mut self, commit: bool, authed: bool) -> Result<(), Failure> {
        self.held.end(commit).await.map_err(|e| Failure::Database {
            error: DbError::Query(e),
            authed,
        })
    }
}

/// Runs plans on the pool, with prepared statements cached per connection.
pub(crate) struct Executor {
    /// The pool.
    pub db: Db,
    /// The statement cache.
    pub statements: PreparedStatements,
}

impl Executor {
    /// Runs `plan` as `caller`. With `decide`, the transaction stays open and is returned
    /// for the caller to end; otherwise it ends in the same round trip.
    pub async fn run(
        &self,
        plan: &Plan,
        caller: &Caller<'_>,
        version: u64,
        decide: bool,
    ) -> Result<(Outcome, Option<OpenTx>), Failure> {
        // A refused custom role runs as anon and is rolled back: a write must not commit
        // in the same round trip.
        let decide = decide || (caller.custom && !plan.read_only);
        let db_failure = |error: DbError| Failure::Database {
            error,
            authed: caller.authed,
        };
        let query_failure = |e: tokio_postgres::Error| db_failure(DbError::Query(e));
        let conn = self.db.conn().await.map_err(db_failure)?;
        let mut held = Held {
            conn: Some(conn),
            open: false,
        };
        let client = held.conn.as_ref().expect("just set");
        let act = self
            .statements
            .get(client, caller.sql(), version)
            .await
            .map_err(query_failure)?;
        let explain = match &plan.explain {
            Some(sql) => Some(
                self.statements
                    .get(client, &sql.text, version)
                    .await
                    .map_err(query_failure)?,
            ),
            None => None,
        };
        let main = self
            .statements
            .get(client, &plan.main.text, version)
            .await
            .map_err(query_failure)?;

        let timeout = caller.timeout_ms.to_string();
        let mut act_params: Vec<&(dyn ToSql + Sync)> = vec![&caller.role, &caller.claims, &timeout];
        if let Some(tz) = &caller.timezone {
            act_params.push(tz);
        }
        if let Some(ids) = &caller.session {
            act_params.push(&ids.session_id);
            act_params.push(&ids.user_id);
        }
        let main_params = params(&plan.main);
        let explain_params = plan.explain.as_ref().map(params).unwrap_or_default();
        let begin = if plan.read_only {
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        };
        held.open = true;
        let started = Instant::now();
        let (begun, acted, explained, ran, ended) = join5(
            client.batch_execute(begin),
            client.query(&act, &act_params),
            async {
                match &explain {
                    Some(statement) => client.query(statement, &explain_params).await.map(Some),
                    None => Ok(None),
                }
            },
            client.query(&main, &main_params),
            async {
                if decide {
                    Ok(())
                } else {
                    client.batch_execute("COMMIT").await
                }
            },
        )
        .await;
        let ok = begun.is_ok() && acted.is_ok() && explained.is_ok() && ran.is_ok();
        self.db.observe(&plan.main.text, started.elapsed(), ok);
        if !decide {
            // COMMIT was sent: it committed, or (after an error) rolled back.
            held.open = false;
        }
        if caller.session.is_some()
            && let Err(err) = &acted
            && err.code().map(|c| c.code()) == Some(SESSION_ENDED)
        {
            if held.open {
                let _ = held.end(false).await;
            }
            return Err(Failure::Auth(fluxbase_auth::AuthError::SessionEnded));
        }
        let pipeline = (|| {
            begun?;
            let acted = acted?;
            let explained = explained?;
            let rows = ran?;
            ended?;
            Ok::<_, tokio_postgres::Error>((acted, explained, rows))
        })();
        let (acted, explained, rows) = match pipeline {
            Ok(results) => results,
            Err(err) => {
                if held.open {
                    let _ = held.end(false).await;
                }
                return Err(query_failure(err));
            }
        };
        if let Some(row) = acted.first()
            && !(row.get::<_, bool>(0) && row.get::<_, bool>(1))
        {
            if held.open {
                held.end(false).await.map_err(query_failure)?;
            }
            return Err(Failure::Role {
                role: caller.role.to_owned(),
                exists: row.get(0),
            });
        }
        let row = rows.first().ok_or_else(|| {
            Failure::Request(super::error::RestError::NotImplemented {
                details: "the statement returned no result row".to_owned(),
            })
        })?;
        let outcome = Outcome {
            total: row.get(0),
            page: row.get(1),
            body: row.get(2),
            location: row.get(3),
            inserted: row.get(4),
            planned: explained.and_then(|rows| planned_rows(&rows)),
        };
        let tx = decide.then_some(OpenTx { held });
        Ok((outcome, tx))
    }
}

/// A statement's parameters as tokio-postgres takes them.
fn params(sql: &Sql) -> Vec<&(dyn ToSql + Sync)> {
    sql.params.iter().map(|p| p.as_sql()).collect()
}

/// `Plan Rows` of an `EXPLAIN (FORMAT JSON)` result.
fn planned_rows(rows: &[tokio_postgres::Row]) -> Option<i64> {
    let plan: serde_json::Value = rows.first()?.try_get(0).ok()?;
    let estimate = plan.get(0)?.get("Plan")?.get("Plan Rows")?;
    estimate
        .as_i64()
        .or_else(|| estimate.as_f64().map(|f| f as i64))
}
