//! The transaction of a REST case, as the server's executor runs it for the request, and
//! the one place it is written: the SQL baseline (`--baseline sql`) sends it straight to
//! PostgreSQL, and the HTTP floor (`--baseline http-floor`) sends it from behind a bare
//! HTTP server — so the two baselines send the same bytes.
//!
//! ```text
//! BEGIN ISOLATION LEVEL READ COMMITTED [READ ONLY]              -- simple query
//! SELECT true, true, set_config('role', $1, true),
//!        set_config('request.jwt.claims', $2, true),
//!        set_config('statement_timeout', $3, true)              -- prepared
//! <the request's statement>                                    -- prepared
//! COMMIT
//! ```
//!
//! all four written before the first answer is read (one round trip). With `--sessions`
//! the role switch is the server's `ACT_SESSION`: the same statement with the session
//! probe (`auth.sessions` by id and user) in front, and the claims those of the user's
//! access token, `session_id` included. The statements are the ones the server's builder
//! writes for the cases' requests (`WITH … SELECT` of five columns, the body built by
//! PostgreSQL).

use bytes::BytesMut;
use futures_util::future::join4;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Row, Statement};

use super::case::Shape;
use crate::config::RestCase;
use crate::error::{Error, Result};

/// The server's role switch (its executor's `ACT`, verbatim).
const ACT: &str = "SELECT true, true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true)";

/// The server's role switch for an application user's token (its executor's
/// `ACT_SESSION`, verbatim): fails with 22012 unless the session the claims name is live.
const ACT_SESSION: &str = "SELECT 1 / (EXISTS (SELECT 1 FROM auth.sessions s \
     WHERE s.id = $4::text::uuid AND s.user_id = $5::text::uuid))::int = 1, true, pg_catalog.set_config('role', $1, true), \
     pg_catalog.set_config('request.jwt.claims', $2, true), \
     pg_catalog.set_config('statement_timeout', $3, true)";

/// `rest.statement_timeout`'s default (10 s), as the server passes it.
const STATEMENT_TIMEOUT_MS: &str = "10000";

/// The column names the list case's `select=` binds, in the builder's order.
const LIST_KEYS: [&str; 6] = ["id", "title", "done", "created_at", "list", "name"];

/// The statement of a case: the text the server's builder writes for the case's request
/// (printed from `fluxbase_api::rest::build::build` on 2026-11-29 and copied here, since
/// the harness depends on no server crate), its parameters bound as the server binds
/// them: every value as text, parsed by PostgreSQL as the type it inferred.
pub fn statement(shape: &Shape) -> String {
    const OUTER: &str = "SELECT NULL::int8, count(*)::int8, coalesce(json_agg(q.j), '[]')::text, NULL::text[], NULL::int4";
    let todos = &shape.tables.todos;
    let lists = &shape.tables.lists;
    match shape.case {
        // GET /todos?id=eq.$1
        RestCase::GetByKey => format!(
            "{OUTER} FROM (SELECT row_to_json(r0) AS j FROM \"public\".\"{todos}\" r0 WHERE r0.\"id\" = $1) q"
        ),
        // GET /todos?select=id,title,done,created_at,list:lists(id,name)&order=id&limit=100
        RestCase::ListEmbed => format!(
            "{OUTER} FROM (SELECT json_build_object($1::text, r0.\"id\", $2::text, r0.\"title\", \
             $3::text, r0.\"done\", $4::text, r0.\"created_at\", $5::text, \
             (SELECT json_build_object($1::text, r1.\"id\", $6::text, r1.\"name\") \
             FROM \"public\".\"{lists}\" r1 WHERE r1.\"id\" = r0.\"list_id\")) AS j \
             FROM \"public\".\"{todos}\" r0 ORDER BY r0.\"id\" LIMIT $7) q"
        ),
        // POST /todos with one object (json_to_record) or an array (json_to_recordset),
        // Prefer: return=minimal
        RestCase::Insert => {
            let from = if shape.rows_per_request == 1 {
                "json_to_record"
            } else {
                "json_to_recordset"
            };
            format!(
                "WITH src AS (INSERT INTO \"public\".\"{todos}\" AS r1 (\"list_id\", \"title\") \
                 SELECT r2.\"list_id\", r2.\"title\" FROM {from}($1::json) AS r2(\"list_id\" bigint, \"title\" text) \
                 RETURNING 1) SELECT NULL::int8, count(*)::int8, NULL::text, NULL::text[], NULL::int4 \
                 FROM (SELECT NULL AS j FROM src r0) q"
            )
        }
    }
}

/// The parameters of the list case's statement: its keys, then the page size.
pub fn list_params() -> Vec<String> {
    LIST_KEYS
        .into_iter()
        .map(str::to_owned)
        .chain([super::LIST_ROWS.to_string()])
        .collect()
}

/// Who the transaction runs as: the claims text `request.jwt.claims` is set to, and with
/// `--sessions` the session id and user id the probe is given (as text).
pub struct Caller<'a> {
    /// The token's claims as JSON text (`Claims`/`AppClaims::to_json_text`).
    pub claims: &'a str,
    /// With `--sessions`: (session id, user id) for the probe.
    pub session: Option<(&'a str, &'a str)>,
}

/// A case's two statements, prepared on one connection.
pub struct Transaction {
    act: Statement,
    main: Statement,
    begin: &'static str,
}

impl Transaction {
    /// Prepares the role switch (`ACT_SESSION` with `sessions`, else `ACT`) and the case's
    /// statement on `client`.
    pub async fn prepare(client: &Client, shape: &Shape, sessions: bool) -> Result<Self> {
        let act_text = if sessions { ACT_SESSION } else { ACT };
        let act = client
            .prepare(act_text)
            .await
            .map_err(Error::database("preparing the role switch"))?;
        let main = client
            .prepare(&statement(shape))
            .await
            .map_err(Error::database("preparing the case's statement"))?;
        let begin = match shape.case {
            RestCase::GetByKey | RestCase::ListEmbed => {
                "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
            }
            RestCase::Insert => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        Ok(Transaction { act, main, begin })
    }

    /// Runs the transaction on `client` (the connection it was prepared on), pipelined,
    /// and returns the statement's one row (columns: a count, the page's rows, the body).
    pub async fn run(
        &self,
        client: &Client,
        caller: &Caller<'_>,
        params: &[String],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let params: Vec<TextParam<'_>> = params.iter().map(|p| TextParam(p)).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let mut act_params: Vec<&(dyn ToSql + Sync)> =
            vec![&"authenticated", &caller.claims, &STATEMENT_TIMEOUT_MS];
        if let Some((session_id, user_id)) = &caller.session {
            act_params.push(session_id);
            act_params.push(user_id);
        }
        let (begun, acted, ran, ended) = join4(
            client.batch_execute(self.begin),
            client.query(&self.act, &act_params),
            client.query(&self.main, &params),
            client.batch_execute("COMMIT"),
        )
        .await;
        match (begun, acted, ran, ended) {
            (Ok(()), Ok(_), Ok(rows), Ok(())) => Ok(rows.into_iter().next()),
            (Err(err), ..) | (_, Err(err), ..) | (_, _, Err(err), _) | (.., Err(err)) => Err(err),
        }
    }
}

/// A value in PostgreSQL's text format, parsed by the server as the parameter's type: how
/// the REST service binds every value (its `Param::Text`).
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}
