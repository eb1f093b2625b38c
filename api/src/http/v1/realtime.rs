//! `GET /realtime` (the native WebSocket protocol), `POST /api/v1/realtime/broadcast` and
//! `POST /api/v1/admin/realtime/restart`.
//!
//! Each socket is one task: it drains its connection's bounded queue (filled by the engine's
//! dispatcher without ever waiting), answers client frames, pings, and closes with the
//! reason the engine set (4008 slow client, 4001 session revoked, 1001 shutdown…).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, Session};
use bytestring::ByteString;
use fluxbase_engine::realtime::{CloseReason, ConnShared, Engine, close, protocol};
use fluxbase_migrations::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

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

fn engine(state: &AppState) -> Result<Engine, ApiError> {
    state.engine.clone().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "realtime is disabled (realtime.enabled)",
        )
    })
}

/// Upgrades to a WebSocket. A bad token still upgrades, then gets an `error` frame and a
/// close with the reason, which every WebSocket client can show.
async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let engine = engine(&state)?;
    let ip = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let auth = engine.authenticate(token_of(&req).as_deref());
    // A plain GET (no upgrade) gets our JSON error, like every other refusal.
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|err| {
        ApiError::new(
            Code::BadRequest,
            format!("/realtime is a WebSocket endpoint: {err}"),
        )
    })?;
    let limit = usize::try_from(state.config.realtime.message_size_limit.0).unwrap_or(usize::MAX);
    let stream = stream
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    let timing = Timing {
        ping_interval: state.config.realtime.ping_interval.get(),
        pong_timeout: state.config.realtime.pong_timeout.get(),
        message_size_limit: limit,
    };
    actix_web::rt::spawn(async move {
        match auth {
            Ok(context) => run_socket(engine, session, stream, ip, context, timing).await,
            Err(err) => {
                let mut session = session;
                let _ = session
                    .text(protocol::error(err.code().as_str(), &err.to_string(), None))
                    .await;
                let _ = session
                    .close(Some(actix_ws::CloseReason {
                        code: CloseCode::Other(close::SESSION_REVOKED),
                        description: Some(err.to_string()),
                    }))
                    .await;
            }
        }
    });
    Ok(response)
}

/// Socket timing settings.
#[derive(Debug, Clone, Copy)]
struct Timing {
    ping_interval: Duration,
    pong_timeout: Duration,
    message_size_limit: usize,
}

async fn close_with(session: Session, reason: &CloseReason) {
    let _ = session
        .close(Some(actix_ws::CloseReason {
            code: CloseCode::Other(reason.code),
            description: Some(reason.reason.clone()),
        }))
        .await;
}

/// Sends a frame unless the engine closes the connection meanwhile (a stuck socket must not
/// keep the task from seeing its close).
async fn send(session: &mut Session, conn: &ConnShared, frame: ByteString) -> Result<(), ()> {
    tokio::select! {
        r = session.text(frame) => r.map_err(|_| ()),
        _ = conn.closed.notified() => {
            // Put the permit back so the main loop sees the close.
            conn.closed.notify_one();
            Ok(())
        }
    }
}

async fn run_socket(
    engine: Engine,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    ip: IpAddr,
    context: fluxbase_auth::AuthContext,
    timing: Timing,
) {
    let mut expires = context.expires_at();
    let (conn, mut queue) = match engine.connect(ip, context) {
        Ok(pair) => pair,
        Err(reason) => {
            let _ = session
                .text(protocol::error("connection_limit", &reason.reason, None))
                .await;
            close_with(session, &reason).await;
            return;
        }
    };
    let conn: Arc<ConnShared> = conn;
    let mut ping = tokio::time::interval(timing.ping_interval);
    ping.tick().await;
    let mut pong_deadline: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(86_400 * 365);
    let label: &'static str = loop {
        let expiry = expires.map_or_else(far, expiry_instant);
        tokio::select! {
            // Close first; then frames already queued, so a reply to a later client request
            // never overtakes them; then the client.
            biased;
            _ = conn.closed.notified() => {
                let reason = conn.close_reason().unwrap_or(CloseReason {
                    code: close::GOING_AWAY, reason: "closing".into(), label: "closed",
                });
                let label = reason.label;
                close_with(session, &reason).await;
                engine.disconnect(&conn, label);
                return;
            }
            frame = queue.recv() => match frame {
                Some(frame) => {
                    if send(&mut session, &conn, frame.into_text()).await.is_err() {
                        break "client_closed";
                    }
                }
                None => break "closed",
            },
            msg = futures_util::StreamExt::next(&mut stream) => match msg {
                None => break "client_closed",
                Some(Ok(AggregatedMessage::Text(text))) => {
                    let before = conn.context();
                    for reply in engine.handle_text(&conn, &text).await {
                        if send(&mut session, &conn, reply).await.is_err() {
                            break;
                        }
                    }
                    // A token accepted by `access_token` brings its own expiry; a refused one
                    // changes nothing (an expired context must not re-arm the timer).
                    let after = conn.context();
                    if !Arc::ptr_eq(&before, &after) {
                        expires = after.expires_at();
                    }
                }
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    let _ = send(&mut session, &conn, protocol::error(
                        "invalid_message", "binary frames are not supported: send JSON text frames", None,
                    )).await;
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    let _ = session.pong(&bytes).await;
                }
                Some(Ok(AggregatedMessage::Pong(_))) => pong_deadline = None,
                Some(Ok(AggregatedMessage::Close(_))) => break "client_closed",
                Some(Err(err)) => {
                    let too_big = matches!(err, actix_ws::ProtocolError::Overflow);
                    let reason = if too_big {
                        CloseReason {
                            code: close::TOO_BIG,
                            reason: format!("message too big (realtime.message_size_limit = {} bytes)", timing.message_size_limit),
                            label: "message_too_big",
                        }
                    } else {
                        CloseReason { code: 1002, reason: "protocol error".into(), label: "protocol_error" }
                    };
                    close_with(session, &reason).await;
                    engine.disconnect(&conn, reason.label);
                    return;
                }
            },
            _ = ping.tick() => {
                if session.ping(b"").await.is_err() {
                    break "client_closed";
                }
                pong_deadline.get_or_insert_with(|| Instant::now() + timing.pong_timeout);
            }
            _ = sleep_until(pong_deadline.unwrap_or_else(far)), if pong_deadline.is_some() => {
                let reason = CloseReason {
                    code: close::PONG_TIMEOUT,
                    reason: format!("no pong within {}s (realtime.pong_timeout)", timing.pong_timeout.as_secs()),
                    label: "pong_timeout",
                };
                close_with(session, &reason).await;
                engine.disconnect(&conn, reason.label);
                return;
            }
            _ = sleep_until(expiry), if expires.is_some() => {
                let dropped = engine.drop_subscriptions(&conn);
                let _ = send(&mut session, &conn, protocol::encode(&json!({
                    "type": "error", "code": "token_expired",
                    "message": format!("access token expired: {dropped} subscription(s) closed; send access_token to resubscribe"),
                }))).await;
                expires = None;
            }
        }
    };
    engine.disconnect(&conn, label);
    let _ = session.close(None).await;
}

/// Converts a Unix `exp` into a tokio instant.
fn expiry_instant(exp: u64) -> Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Instant::now() + Duration::from_secs(exp.saturating_sub(now))
}

/// Body of `POST /api/v1/realtime/broadcast`.
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
    let sent = engine.broadcast(&body.channel, &body.event, body.payload);
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
