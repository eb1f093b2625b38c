//! `GET /realtime` (the native WebSocket protocol), `POST /api/v1/realtime/broadcast` and
//! `POST /api/v1/admin/realtime/restart`.
//!
//! The socket route only upgrades: the credentials go through the auth service (signature,
//! validity, live session), the socket's send buffer is capped, and the session is handed
//! to the engine's socket loop with the native codec.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_engine::realtime::codec::Codec;
use fluxbase_engine::realtime::codec::native::Native;
use fluxbase_engine::realtime::{Engine, RealtimeError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, Code};
use crate::http::extract::credentials::token_of;
use crate::http::extract::json::SERVER_LIMIT;
use crate::http::extract::{Admin, Guard, Json, ServiceRole};
use crate::http::resource::{get, post};
use crate::http::state::AppState;

/// Registers the realtime routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/realtime", connect))
        .service(post("/api/v1/realtime/broadcast", broadcast))
        .service(post("/api/v1/admin/realtime/restart", restart));
}

/// The file descriptor of a request's TCP connection, stored by the server's `on_connect`
/// so a WebSocket upgrade can cap its send buffer.
#[derive(Debug, Clone, Copy)]
pub struct SocketFd(pub RawFd);

/// Caps the kernel send buffer of the connection under `req` at `bytes` (0: leave it):
/// a client that stops reading then backs up into the engine's queue within a few hundred
/// kilobytes, where it is counted and cut as slow, instead of into megabytes of kernel
/// buffers at default settings. Also turns off the kernel's send-buffer autotuning for
/// this socket.
pub(crate) fn cap_send_buffer(req: &HttpRequest, bytes: u64) {
    let Some(SocketFd(fd)) = req.conn_data::<SocketFd>().copied() else {
        return;
    };
    let Ok(size) = libc::c_int::try_from(bytes) else {
        return;
    };
    if size == 0 {
        return;
    }
    // SAFETY: `fd` is the open socket of the connection this request arrived on (it lives
    // at least as long as the request), and `size` is a valid `c_int` passed by pointer
    // with its exact length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot cap the socket send buffer");
    }
}

/// The engine, or 503 when realtime is disabled.
pub(crate) fn engine(state: &AppState) -> Result<Engine, ApiError> {
    state.engine.clone().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "realtime is disabled (realtime.enabled)",
        )
    })
}

/// Upgrades to a WebSocket. A refused credential still upgrades, then gets an `error`
/// frame and a close with the reason, which every WebSocket client can show.
async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    upgrade(&req, body, &state, "/realtime", Native)
}

/// Upgrades `req` (a request to `endpoint`) to a WebSocket the engine serves with `codec`:
/// the socket's send buffer capped, the credential checked after the 101 — a refused one
/// still upgrades, then gets the codec's error and a close with the reason.
pub(crate) fn upgrade<C: Codec>(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    endpoint: &str,
    codec: C,
) -> Result<HttpResponse, actix_web::Error> {
    let engine = engine(state)?;
    let ip = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let (response, session, stream) = actix_ws::handle(req, body).map_err(|err| {
        ApiError::new(
            Code::BadRequest,
            format!("{endpoint} is a WebSocket endpoint: {err}"),
        )
    })?;
    cap_send_buffer(req, state.config.realtime.socket_send_buffer.0);
    let token = token_of(req);
    let auth = state.auth.clone();
    actix_web::rt::spawn(async move {
        let context = auth
            .authenticate(token.as_deref())
            .await
            .map_err(|err| RealtimeError::from_coded(&err));
        engine.serve(session, stream, ip, context, codec).await;
    });
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    channel: String,
    event: String,
    #[serde(default)]
    payload: Value,
}

async fn broadcast(
    _caller: Guard<ServiceRole>,
    state: web::Data<AppState>,
    body: Json<BroadcastBody, SERVER_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let engine = engine(&state)?;
    if body.channel.is_empty() || body.event.is_empty() {
        return Err(ApiError::new(
            Code::BadRequest,
            "channel and event must not be empty",
        ));
    }
    let body = body.into_inner();
    let payload: Arc<str> = Arc::from(body.payload.to_string());
    let sent = engine
        .broadcast(&body.channel, &body.event, payload)
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Accepted().json(json!({"channel": body.channel, "sent": sent})))
}

async fn restart(
    _admin: Guard<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let engine = engine(&state)?;
    let restarted = engine.restart().await;
    tracing::info!(
        log_type = "audit",
        action = "realtime_restart",
        "realtime restart requested"
    );
    Ok(HttpResponse::Ok().json(json!({"restarted": restarted})))
}
