//! Issue 12's cases over HTTP, as `@supabase/postgrest-js` sends them: each connection is
//! one user (`Authorization: Bearer <user token>`, plus `apikey: <anon key>` on `/rest/v1`)
//! reading or writing only its own rows. With `--sessions` the user token is an access
//! token as the server issues them, naming the user's seeded session (the server then
//! asserts that session in each request's transaction); without, it carries `sub` and
//! `role` only.
//!
//! - `get-by-key`: `GET {base}/lt_todos_x?id=eq.{id}` → 200, a one-row array;
//! - `list-embed`: `GET {base}/lt_todos_x?select=id,title,done,created_at,list:lt_lists_x(id,name)&order=id&limit=100`
//!   → 200, 100 rows, each with its list;
//! - `insert`: `POST {base}/lt_todos_x` with `Prefer: return=minimal` and an object (one
//!   row) or an array of `rows_per_commit` objects → 201.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use uuid::Uuid;

use super::sessions::Sessions;
use super::{Answer, LIST_ROWS, Requester, drive};
use crate::config::{RestApi, RestCase, ScenarioConfig};
use crate::error::{Error, Result};
use crate::http::HttpConnection;
use crate::report::Report;
use crate::scenario::Context;
use crate::tally::io_kind;
use crate::todos::{LISTS_PER_USER, TodoTables, owned_id, owned_rows};
use crate::token::TokenMinter;

/// What a case run needs to know about the seed (sent to the HTTP floor's child as JSON).
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Shape {
    pub case: RestCase,
    pub tables: TodoTables,
    /// Users (= connections); user `c` is connection `c`.
    pub users: u64,
    /// Todos seeded.
    pub rows: u64,
    /// Rows one request reads or writes.
    pub rows_per_request: u64,
}

impl Shape {
    /// A random todo id of user `c`.
    pub fn random_own_id(&self, c: u64) -> u64 {
        let owned = owned_rows(c, self.users, self.rows).max(1);
        owned_id(c, self.users, rand::rng().random_range(0..owned))
    }

    /// A random list id of user `c`.
    pub fn random_own_list(&self, c: u64) -> u64 {
        owned_id(c, self.users, rand::rng().random_range(0..LISTS_PER_USER))
    }

    /// The query string of the list case (`select=…&order=id&limit=100`).
    pub fn list_query(&self) -> String {
        format!(
            "select=id,title,done,created_at,list:{}(id,name)&order=id&limit={LIST_ROWS}",
            self.tables.lists
        )
    }

    /// Checks a read's body: `get-by-key` returns exactly the row asked for (`id`), and
    /// `list-embed` a page of [`LIST_ROWS`] rows in id order, all of user `c` (rows of
    /// other users mean RLS did not apply). The error is a kind for the tally.
    pub fn check_read(&self, c: u64, id: u64, body: &[u8]) -> Result<(), String> {
        let Some(ids) = row_ids(body) else {
            return Err("body:not_rows_with_ids".to_owned());
        };
        match self.case {
            RestCase::GetByKey if ids == [id] => Ok(()),
            RestCase::GetByKey => Err(format!("body:rows_{}_of_1", ids.len())),
            RestCase::ListEmbed if ids.len() as u64 != LIST_ROWS => {
                Err(format!("body:rows_{}_of_{LIST_ROWS}", ids.len()))
            }
            RestCase::ListEmbed if ids.iter().any(|id| (id - 1) % self.users != c) => {
                Err("body:rows_of_another_user".to_owned())
            }
            RestCase::ListEmbed if !ids.windows(2).all(|w| w[0] < w[1]) => {
                Err("body:rows_out_of_order".to_owned())
            }
            RestCase::ListEmbed | RestCase::Insert => Ok(()),
        }
    }

    /// The JSON body of an insert of `n` rows into list `list` (an object for one row, as
    /// `.insert({…})` sends; an array otherwise).
    pub fn insert_body(&self, n: u64, list: u64, k: u64) -> String {
        let row = |i: u64| format!(r#"{{"list_id":{list},"title":"loadtest {k}.{i}"}}"#);
        if n == 1 {
            return row(0);
        }
        let mut body = String::with_capacity(48 * n as usize);
        body.push('[');
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&row(i));
        }
        body.push(']');
        body
    }
}

/// Runs the case against the server over HTTP.
pub async fn run(
    config: &ScenarioConfig,
    ctx: &Context,
    report: &mut Report,
    shape: &Shape,
    users: &[Uuid],
    sessions: Option<&Sessions>,
) -> Result<()> {
    // Tokens outlive the run by an hour, so none expires mid-test.
    let minter = TokenMinter::new(
        config.jwt_secret.as_deref().unwrap_or_default(),
        config.duration.as_secs() + 3600,
    );
    let anon_key = minter.mint(Uuid::nil(), "anon")?;
    let base = match config.rest_api {
        RestApi::PostgRest => "/rest/v1",
        RestApi::Fluxbase => "/api/v1/tables",
    };
    let mut requesters = Vec::with_capacity(users.len());
    for (c, user) in users.iter().enumerate() {
        let token = match sessions {
            Some(sessions) => minter.app_user(*user, sessions.of(c))?,
            None => minter.user(*user)?,
        };
        let mut headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
        if config.rest_api == RestApi::PostgRest {
            headers.push(("apikey".to_owned(), anon_key.clone()));
        }
        if shape.case == RestCase::Insert {
            headers.push(("Prefer".to_owned(), "return=minimal".to_owned()));
        }
        requesters.push(CaseRequester {
            http: HttpConnection::new(ctx.target.clone()),
            headers,
            table_path: format!("{base}/{}", shape.tables.todos),
            list_query: shape.list_query(),
            shape: shape.clone(),
            connection: c as u64,
        });
    }
    if let Some(first) = requesters.first_mut() {
        first.await_table().await?;
    }
    drive(config, ctx, report, requesters, shape.rows_per_request).await;
    Ok(())
}

/// How long the server may take to see tables created just before the run: its schema
/// cache follows DDL through notifications, within a second or so.
const TABLE_VISIBLE_WITHIN: Duration = Duration::from_secs(15);

impl CaseRequester {
    /// Waits until the server serves the todo table (`limit=0` answers other than 404), so
    /// the run measures requests, not the schema cache catching up with the seeding.
    async fn await_table(&mut self) -> Result<()> {
        let path = format!("{}?limit=0", self.table_path);
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .filter(|(k, _)| k != "Prefer")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let deadline = tokio::time::Instant::now() + TABLE_VISIBLE_WITHIN;
        loop {
            let status = match self.http.request_with("GET", &path, &headers, None).await {
                Ok(response) => Some(response.status),
                Err(_) => None,
            };
            if status.is_some_and(|s| s != 404) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::config(
                    "case",
                    format!(
                        "the server did not serve {} within {}s of its creation (last answer: {})",
                        self.table_path,
                        TABLE_VISIBLE_WITHIN.as_secs(),
                        status.map_or("no response".into(), |s| s.to_string())
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One connection (one user) sending the case's requests.
struct CaseRequester {
    http: HttpConnection,
    /// Credentials (and `Prefer` for inserts), sent with every request.
    headers: Vec<(String, String)>,
    /// `{base}/lt_todos_x`.
    table_path: String,
    list_query: String,
    shape: Shape,
    connection: u64,
}

impl Requester for CaseRequester {
    async fn send(&mut self, k: u64) -> Answer {
        let c = self.connection;
        let id = self.shape.random_own_id(c);
        let (method, path, body) = match self.shape.case {
            RestCase::GetByKey => ("GET", format!("{}?id=eq.{id}", self.table_path), None),
            RestCase::ListEmbed => (
                "GET",
                format!("{}?{}", self.table_path, self.list_query),
                None,
            ),
            RestCase::Insert => (
                "POST",
                self.table_path.clone(),
                Some(self.shape.insert_body(
                    self.shape.rows_per_request,
                    self.shape.random_own_list(c),
                    k,
                )),
            ),
        };
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = match self
            .http
            .request_with(method, &path, &headers, body.as_deref().map(str::as_bytes))
            .await
        {
            Ok(response) => response,
            Err(err) => return Answer::Failed(format!("http:io_{}", io_kind(&err))),
        };
        if self.shape.case == RestCase::Insert || response.status != 200 {
            return Answer::Status(response.status);
        }
        match self.shape.check_read(c, id, &response.body) {
            Ok(()) => Answer::Status(200),
            Err(kind) => Answer::Wrong(200, kind),
        }
    }

    fn reset(&mut self) {
        self.http = HttpConnection::new(self.http.target().clone());
    }
}

/// A row of a read's body: only its id is looked at.
#[derive(Deserialize)]
struct RowId {
    id: u64,
}

/// The ids of a JSON array of rows, in order (other keys skipped, not built).
pub fn row_ids(body: &[u8]) -> Option<Vec<u64>> {
    serde_json::from_slice::<Vec<RowId>>(body)
        .ok()
        .map(|rows| rows.into_iter().map(|row| row.id).collect())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::target::Target;

    fn shape(case: RestCase, rows_per_request: u64) -> Shape {
        Shape {
            case,
            tables: TodoTables::new("abc"),
            users: 4,
            rows: 1000,
            rows_per_request,
        }
    }

    #[test]
    fn ids_and_lists_are_the_users_own() {
        let s = shape(RestCase::GetByKey, 1);
        for c in 0..4 {
            for _ in 0..100 {
                let id = s.random_own_id(c);
                assert!((1..=1000).contains(&id));
                assert_eq!((id - 1) % 4, c);
                assert_eq!((s.random_own_list(c) - 1) % 4, c);
                assert!(s.random_own_list(c) <= 4 * LISTS_PER_USER);
            }
        }
    }

    #[test]
    fn reads_are_checked_row_by_row() {
        let s = shape(RestCase::GetByKey, 1);
        assert_eq!(s.check_read(1, 6, br#"[{"id":6,"title":"x"}]"#), Ok(()));
        assert!(s.check_read(1, 6, b"[]").is_err());
        assert!(s.check_read(1, 6, br#"[{"id":10}]"#).is_err());
        assert!(s.check_read(1, 6, br#"{"id":6}"#).is_err());
        let list = shape(RestCase::ListEmbed, LIST_ROWS);
        let page = |ids: &mut dyn Iterator<Item = u64>| {
            let rows: Vec<String> = ids
                .map(|id| format!(r#"{{"id":{id},"list":{{"id":2,"name":"l"}}}}"#))
                .collect();
            format!("[{}]", rows.join(","))
        };
        // User 1 of 4 owns 2, 6, 10, …
        let own = page(&mut (0..100).map(|k| 2 + 4 * k));
        assert_eq!(list.check_read(1, 0, own.as_bytes()), Ok(()));
        let short = page(&mut (0..99).map(|k| 2 + 4 * k));
        assert_eq!(
            list.check_read(1, 0, short.as_bytes()),
            Err("body:rows_99_of_100".to_owned())
        );
        let everyone = page(&mut (1..=100));
        assert_eq!(
            list.check_read(1, 0, everyone.as_bytes()),
            Err("body:rows_of_another_user".to_owned())
        );
        let shuffled = page(&mut (0..100).map(|k| 2 + 4 * ((k + 50) % 100)));
        assert_eq!(
            list.check_read(1, 0, shuffled.as_bytes()),
            Err("body:rows_out_of_order".to_owned())
        );
    }

    #[test]
    fn insert_bodies_carry_the_rows_asked_for() {
        let s = shape(RestCase::Insert, 3);
        let one: serde_json::Value = serde_json::from_str(&s.insert_body(1, 5, 7)).unwrap();
        assert_eq!(one["list_id"], 5);
        assert!(one.is_object());
        let body: Vec<serde_json::Value> =
            serde_json::from_str(&s.insert_body(1000, 5, 7)).unwrap();
        assert_eq!(body.len(), 1000);
        assert_eq!(
            s.list_query(),
            "select=id,title,done,created_at,list:lt_lists_abc(id,name)&order=id&limit=100"
        );
    }

    /// Answers `responses` in order on one keep-alive connection; returns each request as
    /// received (head and body).
    async fn canned(
        responses: Vec<&'static str>,
    ) -> (Target, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut requests = Vec::new();
            let mut buffer = Vec::new();
            for response in responses {
                let head_end = loop {
                    if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let mut chunk = [0u8; 4096];
                    let n = socket.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                while buffer.len() < head_end + length {
                    let mut chunk = [0u8; 4096];
                    let n = socket.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let request: Vec<u8> = buffer.drain(..head_end + length).collect();
                requests.push(String::from_utf8(request).unwrap());
                socket.write_all(response.as_bytes()).await.unwrap();
            }
            requests
        });
        (target, server)
    }

    #[tokio::test]
    async fn requests_are_postgrest_shaped_and_answers_checked() {
        let (target, server) = canned(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[{\"id\":2}]",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
            "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        ])
        .await;
        let credentials = vec![
            ("Authorization".to_owned(), "Bearer user-token".to_owned()),
            ("apikey".to_owned(), "anon-key".to_owned()),
        ];
        let mut requester = CaseRequester {
            http: HttpConnection::new(target),
            headers: credentials.clone(),
            table_path: "/rest/v1/lt_todos_abc".to_owned(),
            list_query: shape(RestCase::ListEmbed, LIST_ROWS).list_query(),
            // One todo per user: user 1 owns only row 2.
            shape: Shape {
                rows: 4,
                ..shape(RestCase::GetByKey, 1)
            },
            connection: 1,
        };
        assert!(matches!(requester.send(1).await, Answer::Status(200)));
        // A page without the 100 rows the case reads is not a success.
        requester.shape = shape(RestCase::ListEmbed, LIST_ROWS);
        match requester.send(2).await {
            Answer::Wrong(200, kind) => assert_eq!(kind, "body:rows_0_of_100"),
            _ => panic!("an empty page must be wrong"),
        }
        requester.shape = shape(RestCase::Insert, 3);
        requester
            .headers
            .push(("Prefer".to_owned(), "return=minimal".to_owned()));
        assert!(matches!(requester.send(3).await, Answer::Status(201)));

        let requests = server.await.unwrap();
        let get = &requests[0];
        let id: u64 = get
            .strip_prefix("GET /rest/v1/lt_todos_abc?id=eq.")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{get}"));
        assert_eq!(id, 2, "user 1's row: {get}");
        for request in &requests {
            assert!(
                request.contains("\r\nAuthorization: Bearer user-token\r\n"),
                "{request}"
            );
            assert!(request.contains("\r\napikey: anon-key\r\n"), "{request}");
        }
        assert!(requests[1].starts_with(
            "GET /rest/v1/lt_todos_abc?select=id,title,done,created_at,list:lt_lists_abc(id,name)&order=id&limit=100 HTTP/1.1\r\n"
        ));
        let post = &requests[2];
        assert!(
            post.starts_with("POST /rest/v1/lt_todos_abc HTTP/1.1\r\n"),
            "{post}"
        );
        assert!(post.contains("\r\nPrefer: return=minimal\r\n"), "{post}");
        let body = &post[post.find("\r\n\r\n").unwrap() + 4..];
        let rows: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter()
                .all(|r| (r["list_id"].as_u64().unwrap() - 1) % 4 == 1)
        );
    }
}
