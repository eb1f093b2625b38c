//! The HTTP floor's server, run in the child process (see [`super`]).

use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::oneshot;

use super::lane::Lane;
use super::{Ready, Setup};
use crate::config::RestCase;
use crate::scenario::rest::Shape;
use crate::scenario::rest::txn::{self, Caller};
use crate::target::check_database_url;
use crate::token::{AppClaims, Claims};

/// Largest request body read (an insert of 1,000 rows is ~50 KB).
const BODY_LIMIT: usize = 16 << 20;

/// The child's entry point: reads its [`Setup`] from stdin, serves until stdin closes.
pub fn main() -> io::Result<()> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    let setup: Setup = serde_json::from_str(&line).map_err(io::Error::other)?;
    let (closed, on_close) = oneshot::channel();
    std::thread::spawn(move || {
        // Nothing more is sent; end of stdin (the harness gone or done) ends the server.
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = closed.send(());
    });
    let (ready, on_ready) = std::sync::mpsc::channel::<Ready>();
    std::thread::spawn(move || {
        if let Ok(ready) = on_ready.recv() {
            let line = serde_json::to_string(&ready).unwrap_or_default();
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    });
    run(setup, on_close, ready)
}

/// Serves the case on a free loopback port until `stop` fires; sends [`Ready`] once every
/// worker's connections are open. A connection that cannot be opened ends the process.
pub fn run(
    setup: Setup,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Ready>,
) -> io::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let db_config = check_database_url(&setup.database_url).map_err(io::Error::other)?;
    let setup = Arc::new(setup);
    let opened = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    actix_web::rt::System::new().block_on(async move {
        let addr = Arc::new(std::sync::OnceLock::<String>::new());
        let app_addr = addr.clone();
        let server = HttpServer::new(move || {
            // Runs on each worker as it starts: its lane is opened on its thread.
            let index = started.fetch_add(1, Ordering::Relaxed);
            let share = setup.pool / workers + usize::from(index % workers < setup.pool % workers);
            let floor = web::Data::new(Floor::new(&setup));
            let (opening, db_config, setup) = (floor.clone(), db_config.clone(), setup.clone());
            let (opened, ready, addr) = (opened.clone(), ready.clone(), app_addr.clone());
            actix_web::rt::spawn(async move {
                let lane = &opening.lane;
                if let Err(err) = lane
                    .open(&db_config, &setup.shape, setup.sessions, share)
                    .await
                {
                    eprintln!("http-floor server: opening its connections: {err}");
                    std::process::exit(2);
                }
                if opened.fetch_add(share, Ordering::AcqRel) + share == setup.pool
                    && let Some(addr) = addr.get()
                {
                    let _ = ready.send(Ready { addr: addr.clone() });
                }
            });
            App::new()
                .app_data(floor)
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .route("/health", web::get().to(health))
                .route("/rest/v1/{table}", web::route().to(serve))
                .route("/api/v1/tables/{table}", web::route().to(serve))
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))?;
        if let Some(bound) = server.addrs().first() {
            let _ = addr.set(bound.to_string());
        }
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            let _ = stop.await;
            handle.stop(false).await;
        });
        server.await
    })
}

/// One worker's state: its connections, and what it checks requests against.
struct Floor {
    lane: Lane,
    shape: Shape,
    sessions: bool,
    key: DecodingKey,
    validation: Validation,
    /// The list case's query string (`select=…&order=id&limit=100`).
    list_query: String,
}

impl Floor {
    /// A worker's state for `setup`, its lane still empty (opened by the worker).
    fn new(setup: &Setup) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        if setup.sessions {
            // Access tokens as the server issues them carry `aud: authenticated`.
            validation.set_audience(&["authenticated"]);
        }
        Floor {
            lane: Lane::default(),
            shape: setup.shape.clone(),
            sessions: setup.sessions,
            key: DecodingKey::from_secret(setup.jwt_secret.as_bytes()),
            validation,
            list_query: setup.shape.list_query(),
        }
    }

    /// The verified caller's claims text and, with sessions, its (session id, user id):
    /// built by the code the SQL baseline builds them with, so the bytes match.
    fn caller(&self, req: &HttpRequest) -> Option<(String, Option<(String, String)>)> {
        let token = req
            .headers()
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        if self.sessions {
            let claims = jsonwebtoken::decode::<AppClaims>(token, &self.key, &self.validation)
                .ok()?
                .claims;
            let text = claims.to_json_text();
            Some((text, Some((claims.session_id, claims.sub))))
        } else {
            let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
                .ok()?
                .claims;
            Some((claims.to_json_text(), None))
        }
    }

    /// The statement's parameters for this request, or the status refusing it.
    fn params(&self, req: &HttpRequest, body: &[u8]) -> Result<Vec<String>, StatusCode> {
        let method = req.method().as_str();
        match self.shape.case {
            RestCase::GetByKey if method == "GET" => {
                let id = req
                    .query_string()
                    .strip_prefix("id=eq.")
                    .filter(|id| id.parse::<u64>().is_ok())
                    .ok_or(StatusCode::BAD_REQUEST)?;
                Ok(vec![id.to_owned()])
            }
            RestCase::ListEmbed if method == "GET" => {
                if req.query_string() == self.list_query {
                    Ok(txn::list_params())
                } else {
                    Err(StatusCode::BAD_REQUEST)
                }
            }
            RestCase::Insert if method == "POST" => std::str::from_utf8(body)
                .map(|body| vec![body.to_owned()])
                .map_err(|_| StatusCode::BAD_REQUEST),
            _ => Err(StatusCode::METHOD_NOT_ALLOWED),
        }
    }
}

/// `GET /health`: the harness checks its target before a run.
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"healthy"}"#)
}

/// A request on the case's table: verify, bind, run the transaction, answer its body.
async fn serve(req: HttpRequest, body: web::Bytes, floor: web::Data<Floor>) -> HttpResponse {
    if req.match_info().get("table") != Some(floor.shape.tables.todos.as_str()) {
        return HttpResponse::NotFound().finish();
    }
    let Some((claims, session)) = floor.caller(&req) else {
        return HttpResponse::Unauthorized().finish();
    };
    let params = match floor.params(&req, &body) {
        Ok(params) => params,
        Err(status) => return HttpResponse::build(status).finish(),
    };
    let caller = Caller {
        claims: &claims,
        session: session.as_ref().map(|(s, u)| (s.as_str(), u.as_str())),
    };
    let result = {
        let Some(conn) = floor.lane.checkout().await else {
            return HttpResponse::ServiceUnavailable().finish();
        };
        conn.txn.run(&conn.client, &caller, &params).await
    };
    match result {
        Ok(Some(_)) if floor.shape.case == RestCase::Insert => HttpResponse::Created().finish(),
        Ok(Some(row)) => match row.try_get::<_, Option<String>>(2) {
            Ok(Some(body)) => HttpResponse::Ok()
                .content_type("application/json; charset=utf-8")
                .body(body),
            _ => HttpResponse::InternalServerError().finish(),
        },
        Ok(None) => HttpResponse::InternalServerError().finish(),
        Err(err) => HttpResponse::build(status_of(&err)).finish(),
    }
}

/// The status the server gives a failed transaction, by SQLSTATE.
fn status_of(err: &tokio_postgres::Error) -> StatusCode {
    match err.code().map(|c| c.code()) {
        // The session probe: the token's session has ended.
        Some("22012") => StatusCode::UNAUTHORIZED,
        Some("22P02" | "22003" | "23502" | "23514") => StatusCode::BAD_REQUEST,
        Some("23503" | "23505") => StatusCode::CONFLICT,
        Some("42501") => StatusCode::FORBIDDEN,
        Some("57014") => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
