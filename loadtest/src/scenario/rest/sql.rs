//! The SQL baseline of issue 12: for each case, the transaction the server runs for the
//! request, sent straight to PostgreSQL over `--connections` connections, pipelined and
//! prepared as the server's executor does:
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
//! access token, `session_id` included. The statements are
//! the ones the server's builder writes for the cases' requests (`WITH … SELECT` of five
//! columns, the body built by PostgreSQL), so the baseline differs from the server only
//! by what the server adds: HTTP, parsing, auth, the pool, the response. REST's figure
//! divided by this one is the ratio issue 12 asks for (≥ 0.7 for GET by key).

use bytes::BytesMut;
use futures_util::future::join4;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use super::case::Shape;
use super::sessions::Sessions;
use super::{Answer, Requester, drive};
use crate::config::{RestCase, ScenarioConfig};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenario::Context;
use crate::table;
use crate::token::{Claims, TokenMinter};
use crate::writer::sql_kind;

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

/// Runs the case's transaction straight against PostgreSQL.
pub async fn run(
    config: &ScenarioConfig,
    ctx: &Context,
    report: &mut Report,
    shape: &Shape,
    users: &[Uuid],
    sessions: Option<&Sessions>,
    db_config: &tokio_postgres::Config,
) -> Result<()> {
    let text = statement(shape);
    let act_text = if sessions.is_some() { ACT_SESSION } else { ACT };
    let minter = TokenMinter::new("", config.duration.as_secs() + 3600);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + config.duration.as_secs()
        + 3600;
    let mut requesters = Vec::with_capacity(users.len());
    for (c, user) in users.iter().enumerate() {
        let client = table::connect(db_config).await?;
        let act = client
            .prepare(act_text)
            .await
            .map_err(Error::database("preparing the role switch"))?;
        let main = client
            .prepare(&text)
            .await
            .map_err(Error::database("preparing the case's statement"))?;
        // The claims the server sets: those of the user's token.
        let claims = match sessions {
            Some(sessions) => minter.app_claims(*user, sessions.of(c)).to_json_text(),
            None => serde_json::to_string(&Claims {
                sub: user.to_string(),
                role: "authenticated".to_owned(),
                exp,
            })
            .unwrap_or_default(),
        };
        requesters.push(SqlRequester {
            client,
            act,
            main,
            claims,
            session: sessions.map(|s| (s.of(c).to_string(), user.to_string())),
            shape: shape.clone(),
            connection: c as u64,
        });
    }
    drive(config, ctx, report, requesters, shape.rows_per_request).await;
    Ok(())
}

/// One PostgreSQL connection acting as one user.
struct SqlRequester {
    client: Client,
    act: Statement,
    main: Statement,
    /// The user's JWT claims as JSON text.
    claims: String,
    /// With `--sessions`: the session id and user id the probe is given, as text.
    session: Option<(String, String)>,
    shape: Shape,
    connection: u64,
}

impl Requester for SqlRequester {
    async fn send(&mut self, k: u64) -> Answer {
        let c = self.connection;
        let (begin, expect) = match self.shape.case {
            RestCase::GetByKey => ("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", 1),
            RestCase::ListEmbed => (
                "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY",
                super::LIST_ROWS,
            ),
            RestCase::Insert => (
                "BEGIN ISOLATION LEVEL READ COMMITTED",
                self.shape.rows_per_request,
            ),
        };
        // Parameters as the server binds them: text, one per value.
        let id = self.shape.random_own_id(c);
        let params: Vec<String> = match self.shape.case {
            RestCase::GetByKey => vec![id.to_string()],
            RestCase::ListEmbed => ["id", "title", "done", "created_at", "list", "name"]
                .into_iter()
                .map(str::to_owned)
                .chain([super::LIST_ROWS.to_string()])
                .collect(),
            RestCase::Insert => vec![self.shape.insert_body(
                self.shape.rows_per_request,
                self.shape.random_own_list(c),
                k,
            )],
        };
        let params: Vec<TextParam<'_>> = params.iter().map(|p| TextParam(p)).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let mut act_params: Vec<&(dyn ToSql + Sync)> =
            vec![&"authenticated", &self.claims, &STATEMENT_TIMEOUT_MS];
        if let Some((session_id, user_id)) = &self.session {
            act_params.push(session_id);
            act_params.push(user_id);
        }
        let client = &self.client;
        let (begun, acted, ran, ended) = join4(
            client.batch_execute(begin),
            client.query(&self.act, &act_params),
            client.query(&self.main, &params),
            client.batch_execute("COMMIT"),
        )
        .await;
        let rows = match (begun, acted, ran, ended) {
            (Ok(()), Ok(_), Ok(rows), Ok(())) => rows,
            (Err(err), ..) | (_, Err(err), ..) | (_, _, Err(err), _) | (.., Err(err)) => {
                return Answer::Failed(format!("sql:{}", sql_kind(&err)));
            }
        };
        let Some(row) = rows.first() else {
            return Answer::Wrong(200, "sql:no_result_row".to_owned());
        };
        // Column 2 is the page's row count; a read's body must hold as many.
        let page: i64 = row.get(1);
        if page as u64 != expect {
            return Answer::Wrong(200, format!("body:rows_{page}_of_{expect}"));
        }
        if self.shape.case != RestCase::Insert {
            let body: Option<String> = row.get(2);
            let body = body.unwrap_or_default();
            if let Err(kind) = self.shape.check_read(c, id, body.as_bytes()) {
                return Answer::Wrong(200, kind);
            }
        }
        Answer::Status(200)
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
