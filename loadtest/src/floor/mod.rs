//! The HTTP floor: the thinnest HTTP server on the server's own stack that answers a REST
//! case's requests, so `rest` over HTTP can be stated against what any server on this
//! stack, on this machine, could reach (as `realtime-public` is stated against
//! `ws-ceiling`).
//!
//! It is what the real server does for a REST request with everything optional taken out:
//! actix-web with one worker per core (as the server), keep-alive HTTP/1.1, no middleware,
//! no logging, no metrics; per request it verifies the caller's HS256 JWT with the
//! server's secret (as the server does: the harness sends the same requests, token
//! included), reads the id from the path, and runs **the SQL baseline's transaction**
//! ([`crate::scenario::rest::txn`], the same code, so the same bytes) on a PostgreSQL
//! connection owned by the worker that handles the request: each worker opens its share of
//! [`POOL_CONNECTIONS`] (the server's `database.max_connections` in `bench-local.sh`) on
//! its own thread, prepares the statements once per connection, and takes one connection
//! per request. It answers the body PostgreSQL built (`200`, a JSON array), as `/rest/v1`
//! does. What it leaves out is the server's own work: the middleware chain, routing over
//! the whole API, the query-string language and the SQL builder, the schema cache, the
//! statement cache and the shared pool.
//!
//! Like `ws-ceiling`'s server it runs in a **child process** (this binary started again
//! with [`CHILD_ARG`]), so its CPU and RSS are sampled from `/proc/<pid>` as the real
//! server's are. The parent writes one [`Setup`] as a JSON line on the child's stdin
//! (secrets travel there, never in `argv`); the child answers one [`Ready`] line once its
//! connections are open, and exits when its stdin closes.

pub mod child;
pub mod lane;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::scenario::rest::Shape;

/// The first argument that turns the harness binary into the HTTP floor.
pub const CHILD_ARG: &str = "__rest-floor-server";

/// PostgreSQL connections of the floor, split over its workers: `bench-local.sh`'s
/// `FLUXBASE_DATABASE_MAX_CONNECTIONS`, the server's pool in every REST figure.
pub const POOL_CONNECTIONS: usize = 20;

/// Parent → child, one line: what to serve. No `Debug`: it carries the secret and the
/// database password.
#[derive(Clone, Serialize, Deserialize)]
pub struct Setup {
    /// Where the case's tables are (loopback or a unix socket).
    pub database_url: String,
    /// The server's JWT secret: the floor verifies the harness's tokens with it.
    pub jwt_secret: String,
    /// The case and its seeded tables.
    pub shape: Shape,
    /// `--sessions`: tokens name a session, and the transaction probes it.
    pub sessions: bool,
    /// PostgreSQL connections in all ([`POOL_CONNECTIONS`] in the harness).
    pub pool: usize,
}

/// Child → parent, one line: listening, every connection open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Where it listens (loopback).
    pub addr: String,
}
