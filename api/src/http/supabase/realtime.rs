//! `/realtime/v1`: the Phoenix channel socket of `@supabase/realtime-js` and the broadcast
//! API, over the same engine as `GET /realtime`.
//!
//! - `GET /realtime/v1/websocket?apikey=…&vsn=1.0.0|2.0.0`: upgrades and serves the socket
//!   with the Phoenix codec (`vsn` defaults to 1.0.0, as Phoenix servers do). The
//!   credential is read as on `/realtime` (`Authorization`, `apikey` header, `apikey` or
//!   `token` query parameter) and checked by the auth service; a join's `access_token`
//!   then re-authorises the socket.
//! - `POST /realtime/v1/api/broadcast` `{messages: [{topic, event, payload, private}]}`:
//!   server-side sends to public channels (`topic` without `realtime:`), 202.
//! - `POST /realtime/v1/api/broadcast/{topic}/events/{event}` (realtime-js `httpSend`):
//!   one JSON payload to one channel, 202.
//!
//! Any valid credential may broadcast to a public channel, as on the socket (anon included).
//! Private channels are refused (403): their access is decided by `realtime.messages`
//! policies, which Fluxbase does not evaluate.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_engine::realtime::codec::phoenix::{Phoenix, Vsn};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, Code};
use crate::http::extract::json::SERVER_LIMIT;
use crate::http::extract::{Anyone, Guard, Json};
use crate::http::resource::{get, post};
use crate::http::state::AppState;
use crate::http::v1::realtime::{engine, upgrade};

/// Registers `/realtime/v1*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/realtime/v1/websocket", websocket))
        .service(post("/realtime/v1/api/broadcast", broadcast))
        .service(post(
            "/realtime/v1/api/broadcast/{topic}/events/{event}",
            send_one,
        ));
}

/// The `vsn` query parameter (default 1.0.0), or a 400 naming it.
fn vsn_of(req: &HttpRequest) -> Result<Vsn, ApiError> {
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map_err(|e| ApiError::new(Code::BadRequest, format!("query string: {e}")))?;
    match query.get("vsn") {
        None => Ok(Vsn::V1),
        Some(vsn) => Vsn::parse(vsn).ok_or_else(|| {
            ApiError::new(
                Code::BadRequest,
                "unsupported vsn: use vsn=1.0.0 or vsn=2.0.0",
            )
        }),
    }
}

/// Upgrades to a WebSocket speaking the Phoenix protocol. A refused credential still
/// upgrades, then gets a `system` error and a close with the reason (4001).
async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // Realtime off answers 503 before the query string is looked at, as `/realtime` does.
    engine(&state)?;
    let vsn = vsn_of(&req)?;
    upgrade(
        &req,
        body,
        &state,
        "/realtime/v1/websocket",
        Phoenix::new(vsn),
    )
}

/// Body of `POST /realtime/v1/api/broadcast`.
#[derive(Debug, Deserialize)]
struct Messages {
    messages: Vec<Message>,
}

/// One message of it.
#[derive(Debug, Deserialize)]
struct Message {
    /// The channel (the topic without `realtime:`).
    topic: String,
    event: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    private: bool,
}

/// Checks a message before any is sent: all go, or none.
fn check(index: Option<usize>, topic: &str, event: &str, private: bool) -> Result<(), ApiError> {
    let at = index.map_or_else(String::new, |i| format!("messages[{i}]."));
    if topic.is_empty() {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("{at}topic must not be empty"),
        ));
    }
    if event.is_empty() {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("{at}event must not be empty"),
        ));
    }
    if private {
        return Err(ApiError::new(
            Code::Forbidden,
            format!(
                "{at}private: private channels are not supported (their access is decided by realtime.messages policies, which Fluxbase does not evaluate)"
            ),
        ));
    }
    Ok(())
}

async fn broadcast(
    _caller: Guard<Anyone>,
    state: web::Data<AppState>,
    body: Json<Messages, SERVER_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let engine = engine(&state)?;
    let messages = body.into_inner().messages;
    for (i, m) in messages.iter().enumerate() {
        check(Some(i), &m.topic, &m.event, m.private)?;
    }
    for m in messages {
        let payload: Arc<str> = Arc::from(m.payload.to_string());
        engine
            .broadcast(&m.topic, &m.event, payload)
            .await
            .map_err(ApiError::from)?;
    }
    Ok(HttpResponse::Accepted().finish())
}

/// `?private=true` of `httpSend`.
#[derive(Debug, Deserialize)]
struct SendQuery {
    #[serde(default)]
    private: Option<String>,
}

async fn send_one(
    _caller: Guard<Anyone>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<SendQuery>,
    body: Json<Value, SERVER_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let engine = engine(&state)?;
    let (topic, event) = path.into_inner();
    let private = query.private.as_deref() == Some("true");
    check(None, &topic, &event, private)?;
    let payload: Arc<str> = Arc::from(body.into_inner().to_string());
    engine
        .broadcast(&topic, &event, payload)
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Accepted().finish())
}
