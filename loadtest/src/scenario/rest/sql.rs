//! The SQL baseline of issue 12: for each case, the transaction the server runs for the
//! request ([`super::txn`]), sent straight to PostgreSQL over `--connections` connections,
//! one user per connection, pipelined and prepared as the server's executor does. The
//! baseline differs from the server only by what the server adds: HTTP, parsing, auth,
//! the pool, the response. REST's figure divided by this one is the ratio issue 12 asks
//! for (≥ 0.7 for GET by key).

use tokio_postgres::Client;
use uuid::Uuid;

use super::case::Shape;
use super::sessions::Sessions;
use super::txn::{self, Caller, Transaction};
use super::{Answer, Requester, drive};
use crate::config::{RestCase, ScenarioConfig};
use crate::error::Result;
use crate::report::Report;
use crate::scenario::Context;
use crate::table;
use crate::token::{Claims, TokenMinter};
use crate::writer::sql_kind;

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
    let minter = TokenMinter::new("", config.duration.as_secs() + 3600);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + config.duration.as_secs()
        + 3600;
    let mut requesters = Vec::with_capacity(users.len());
    for (c, user) in users.iter().enumerate() {
        let client = table::connect(db_config).await?;
        let txn = Transaction::prepare(&client, shape, sessions.is_some()).await?;
        // The claims the server sets: those of the user's token.
        let claims = match sessions {
            Some(sessions) => minter.app_claims(*user, sessions.of(c)).to_json_text(),
            None => Claims {
                sub: user.to_string(),
                role: "authenticated".to_owned(),
                exp,
            }
            .to_json_text(),
        };
        requesters.push(SqlRequester {
            client,
            txn,
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
    txn: Transaction,
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
        let expect = match self.shape.case {
            RestCase::GetByKey => 1,
            RestCase::ListEmbed => super::LIST_ROWS,
            RestCase::Insert => self.shape.rows_per_request,
        };
        // Parameters as the server binds them: text, one per value.
        let id = self.shape.random_own_id(c);
        let params: Vec<String> = match self.shape.case {
            RestCase::GetByKey => vec![id.to_string()],
            RestCase::ListEmbed => txn::list_params(),
            RestCase::Insert => vec![self.shape.insert_body(
                self.shape.rows_per_request,
                self.shape.random_own_list(c),
                k,
            )],
        };
        let caller = Caller {
            claims: &self.claims,
            session: self
                .session
                .as_ref()
                .map(|(session, user)| (session.as_str(), user.as_str())),
        };
        let row = match self.txn.run(&self.client, &caller, &params).await {
            Ok(Some(row)) => row,
            Ok(None) => return Answer::Wrong(200, "sql:no_result_row".to_owned()),
            Err(err) => return Answer::Failed(format!("sql:{}", sql_kind(&err))),
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
