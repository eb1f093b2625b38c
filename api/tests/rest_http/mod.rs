//! REST over HTTP: the running binary on real sockets, at `/api/v1/tables`, `/api/v1/rpc`
//! and `/rest/v1` — route shapes, both error shapes, profile headers, CORS, the body
//! limit, credentials (anon, two users under owner-only RLS, service keys, ended
//! sessions), the runbook's service-key procedure, the `rest.*` keys, and the real
//! `@supabase/postgrest-js` and supabase-js clients. The language itself (every operator,
//! header and preference) is tested against the service in `rest/`.

mod body;
mod config;
mod credentials;
mod errors;
mod postgrest_js;
mod routes;
mod service_keys;

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};

use crate::rest::harness::FIXTURE;
use crate::support::http::{Response, request};
use crate::support::{Server, TempDir, plain_server, token};

/// The binary on a fresh database holding the REST fixture.
pub struct Api {
    /// The database (dropped after the server).
    pub db: TestDb,
    /// The server.
    pub server: Server,
    _dir: TempDir,
}

impl Api {
    /// A server with `public` and `api` exposed, and `env` on top.
    pub async fn start(env: &[(&str, &str)]) -> Api {
        let db = TestDb::new().await;
        db.client()
            .await
            .batch_execute(FIXTURE)
            .await
            .expect("fixture");
        let mut vars = vec![("FLUXBASE_REST_SCHEMAS", "public,api")];
        vars.extend_from_slice(env);
        let (server, dir) = plain_server(&db, &vars).await;
        Api {
            db,
            server,
            _dir: dir,
        }
    }

    /// One request with `headers` and a body.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        request(&self.server.addr, method, path, headers, body).await
    }

    /// `GET path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.req("GET", path, headers, "").await
    }

    /// A JSON request with `headers`.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.req(method, path, &all, &body.to_string()).await
    }

    /// Signs an application user up: their access token and id.
    pub async fn sign_up(&self, email: &str) -> User {
        let got = self
            .json(
                "POST",
                "/api/v1/auth/signup",
                &[],
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(got.status, 200, "{}", got.body);
        let body = got.json();
        User {
            token: body["access_token"].as_str().unwrap().to_owned(),
            id: body["user"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Runs SQL as the superuser.
    pub async fn sql(&self, sql: &str) {
        self.db.client().await.batch_execute(sql).await.unwrap();
    }

    /// A number SQL computes.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// A signed-up application user.
pub struct User {
    /// Their access token.
    pub token: String,
    /// `auth.users.id`.
    pub id: String,
}

impl User {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// A `service_role` API key (as `fluxbase keys` prints).
pub fn service_token() -> String {
    token(json!({"role": "service_role"}))
}

/// An `anon` API key.
pub fn anon_token() -> String {
    token(json!({"role": "anon"}))
}

/// Asserts PostgREST's error body: the status, `code`, a message containing `needle`, and
/// exactly the four keys.
#[track_caller]
pub fn assert_postgrest_error(got: &Response, status: u16, code: &str, needle: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    let body = got.json();
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {body}");
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "details", "hint", "message"], "{body}");
}

/// Asserts Fluxbase's error body: the status, `error.code`, a message containing `needle`,
/// and nothing else.
#[track_caller]
pub fn assert_fluxbase_error(got: &Response, status: u16, code: &str, needle: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    let body = got.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
}

/// The `id`s of a JSON array of objects, in order.
pub fn ids(body: &Value) -> Vec<i64> {
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}
