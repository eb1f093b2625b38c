//! The socket loop, one per WebSocket, over any [`Codec`]: it drains the connection's
//! bounded queue (filled by fan-out and channels without ever waiting), hands client
//! frames to the codec, pings and expects pongs, drops the subscriptions of an expired
//! token, and closes with the reason the engine set (4008 slow client, 4001 session
//! revoked, 1001 shutdown…). The HTTP layer only upgrades the request and calls
//! [`Engine::serve`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, MessageStream, Session as WsSession,
};
use fluxbase_auth::AuthContext;
use fluxbase_migrations::ErrorCode;
use tokio::time::{Instant, sleep_until};

use super::codec::{Codec, Frame, Notice};
use super::connection::{CloseReason, ConnShared, Outbound, close, unix_now};
use super::engine::Engine;
use super::error::RealtimeError;
use super::hub::Session;

/// Most frames taken off a connection's queue at once: as many as the WebSocket writer's
/// own channel holds, so a batch never waits for the writer halfway.
const BATCH: usize = 32;

/// Closes the WebSocket with `reason`.
async fn close_with(ws: WsSession, reason: &CloseReason) {
    let _ = ws
        .close(Some(actix_ws::CloseReason {
            code: CloseCode::Other(reason.code),
            description: Some(reason.reason.clone()),
        }))
        .await;
}

/// Writes a frame, unless the engine closes the connection meanwhile (a stuck socket
/// must not keep the loop from seeing its close).
async fn send(ws: &mut WsSession, conn: &ConnShared, frame: Frame) -> Result<(), ()> {
    let write = async {
        match frame {
            Frame::Text(text) => ws.text(text).await,
            Frame::Binary(bytes) => ws.binary(bytes).await,
        }
    };
    tokio::select! {
        r = write => r.map_err(|_| ()),
        _ = conn.closed.notified() => {
            // Put the permit back so the main loop sees the close.
            conn.closed.notify_one();
            Ok(())
        }
    }
}

/// An outbound item in the socket's protocol.
fn encode<C: Codec>(codec: &mut C, outbound: Outbound) -> Option<Frame> {
    match outbound {
        Outbound::Frame(frame) => Some(frame),
        Outbound::Change { sub, body } => Some(codec.change(std::slice::from_ref(&sub), &body)),
        Outbound::Changes { subs, body } => Some(codec.change(&subs, &body)),
        Outbound::Channel(event) => codec.channel_event(&event),
    }
}

/// The instant a Unix `exp` falls on.
fn expiry_instant(exp: u64) -> Instant {
    Instant::now() + Duration::from_secs(exp.saturating_sub(unix_now()))
}

impl Engine {
    /// Serves one upgraded WebSocket until it closes: `auth` is the context its
    /// credentials gave (through the auth service), or why they were refused (then an
    /// error notice and close 4001). Registers the connection within the limits (else
    /// close 4029), runs the socket loop over `codec`, unregisters it.
    pub async fn serve<C: Codec>(
        &self,
        mut ws: WsSession,
        stream: MessageStream,
        ip: IpAddr,
        auth: Result<AuthContext, RealtimeError>,
        mut codec: C,
    ) {
        let limit = self.settings().message_size_limit;
        let stream = stream
            .max_frame_size(limit)
            .aggregate_continuations()
            .max_continuation_size(limit);
        let context = match auth {
            Ok(context) => context,
            Err(err) => {
                let _ = ws
                    .text_or_binary(codec.notice(&Notice::Refused(&err)))
                    .await;
                let reason = CloseReason {
                    code: close::SESSION_REVOKED,
                    reason: err.client_message(),
                    label: "invalid_token",
                };
                close_with(ws, &reason).await;
                return;
            }
        };
        let (conn, queue) = match self.connect_shared(ip, context, codec.format()).await {
            Ok(pair) => pair,
            Err(err) => {
                let _ = ws
                    .text_or_binary(codec.notice(&Notice::Refused(&err)))
                    .await;
                let reason = CloseReason {
                    code: close::LIMIT,
                    reason: err.client_message(),
                    label: "limit",
                };
                close_with(ws, &reason).await;
                return;
            }
        };
        let label = self.socket_loop(ws, stream, &conn, queue, &mut codec).await;
        self.disconnect(&conn, label);
    }

    /// The loop proper; returns the disconnect label.
    async fn socket_loop<C: Codec>(
        &self,
        mut ws: WsSession,
        mut stream: AggregatedMessageStream,
        conn: &Arc<ConnShared>,
        mut queue: tokio::sync::mpsc::Receiver<Outbound>,
        codec: &mut C,
    ) -> &'static str {
        let settings = self.settings();
        let (ping_interval, pong_timeout) = (settings.ping_interval, settings.pong_timeout);
        let mut ping = tokio::time::interval(ping_interval);
        ping.tick().await;
        // The timers live across iterations and are re-armed only when their deadline
        // changes: a delivered frame costs no clock read and no timer set-up.
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let pong = sleep_until(far);
        tokio::pin!(pong);
        let mut pong_armed = false;
        let expiry = sleep_until(far);
        tokio::pin!(expiry);
        // The `exp` the expiry timer is armed for, and the one whose expiry was already
        // handled: not again until a new token.
        let (mut armed_for, mut expired_for): (Option<u64>, Option<u64>) = (None, None);
        // Grows with the first frames, never past a batch: an idle socket holds none.
        let mut batch: Vec<Outbound> = Vec::new();
        let session = Session::new(self, conn);
        let label: &'static str = loop {
            let exp = conn.expires_at().filter(|e| expired_for != Some(*e));
            if exp != armed_for {
                armed_for = exp;
                if let Some(e) = exp {
                    expiry.as_mut().reset(expiry_instant(e));
                }
            }
            tokio::select! {
                // Close first; then frames already queued, so a reply to a later client
                // request never overtakes them; then the client.
                biased;
                _ = conn.closed.notified() => {
                    let reason = conn.close_reason().unwrap_or(CloseReason {
                        code: close::GOING_AWAY, reason: "closing".into(), label: "closed",
                    });
                    close_with(ws, &reason).await;
                    return reason.label;
                }
                // Everything queued (up to a batch) goes out together: the frames reach the
                // WebSocket's writer before it runs, so it puts them in one buffer and one
                // write.
                n = queue.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break "closed";
                    }
                    if self.write_batch(&mut ws, conn, codec, &mut batch).await.is_err() {
                        break "client_closed";
                    }
                }
                msg = futures_util::StreamExt::next(&mut stream) => match msg {
                    None => break "client_closed",
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if self.client_frame(&mut ws, conn, codec, &session, Frame::Text(text)).await.is_err() {
                            break "client_closed";
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(bytes))) => {
                        if self.client_frame(&mut ws, conn, codec, &session, Frame::Binary(bytes)).await.is_err() {
                            break "client_closed";
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        let _ = ws.pong(&bytes).await;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => pong_armed = false,
                    Some(Ok(AggregatedMessage::Close(_))) => break "client_closed",
                    Some(Err(err)) => {
                        let reason = if matches!(err, actix_ws::ProtocolError::Overflow) {
                            CloseReason {
                                code: close::TOO_BIG,
                                reason: format!("message too big (realtime.message_size_limit = {} bytes)", settings.message_size_limit),
                                label: "message_too_big",
                            }
                        } else {
                            CloseReason { code: close::PROTOCOL_ERROR, reason: "protocol error".into(), label: "protocol_error" }
                        };
                        close_with(ws, &reason).await;
                        return reason.label;
                    }
                },
                _ = ping.tick() => {
                    if ws.ping(b"").await.is_err() {
                        break "client_closed";
                    }
                    if !pong_armed {
                        pong_armed = true;
                        pong.as_mut().reset(Instant::now() + pong_timeout);
                    }
                }
                _ = &mut pong, if pong_armed => {
                    let reason = CloseReason {
                        code: close::PONG_TIMEOUT,
                        reason: format!("no pong within {}s (realtime.pong_timeout)", pong_timeout.as_secs()),
                        label: "pong_timeout",
                    };
                    close_with(ws, &reason).await;
                    return reason.label;
                }
                _ = &mut expiry, if exp.is_some() => {
                    expired_for = exp;
                    let (subscriptions, channels) = self.expire(conn).await;
                    for notice in codec.notices(&Notice::Expired { subscriptions, channels }) {
                        if send(&mut ws, conn, notice).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let _ = ws.close(None).await;
        label
    }

    /// Writes a batch taken off the queue, in order, and counts its bytes as written once
    /// they all are (until then they stay "not yet written" for the byte limit). Stops at
    /// a close: the loop sees it next.
    async fn write_batch<C: Codec>(
        &self,
        ws: &mut WsSession,
        conn: &ConnShared,
        codec: &mut C,
        batch: &mut Vec<Outbound>,
    ) -> Result<(), ()> {
        let mut len = 0;
        let mut sent = Ok(());
        for item in batch.drain(..) {
            len += item.approx_len();
            if sent.is_err() || conn.is_closing() {
                continue;
            }
            if let Some(frame) = encode(codec, item) {
                sent = send(ws, conn, frame).await;
            }
        }
        conn.written(len);
        sent
    }

    /// Hands one client frame to the codec and sends its replies.
    async fn client_frame<C: Codec>(
        &self,
        ws: &mut WsSession,
        conn: &ConnShared,
        codec: &mut C,
        session: &Session<'_>,
        frame: Frame,
    ) -> Result<(), ()> {
        for reply in codec.handle(frame, session).await {
            send(ws, conn, reply).await?;
        }
        Ok(())
    }
}

/// Sending a [`Frame`] of either kind on an actix-ws session.
trait SendFrame {
    /// Sends `frame` as text or binary.
    async fn text_or_binary(&mut self, frame: Frame) -> Result<(), actix_ws::Closed>;
}

impl SendFrame for WsSession {
    async fn text_or_binary(&mut self, frame: Frame) -> Result<(), actix_ws::Closed> {
        match frame {
            Frame::Text(text) => self.text(text).await,
            Frame::Binary(bytes) => self.binary(bytes).await,
        }
    }
}
