//! The engine's side of one socket: its bounded outgoing queue, its auth context, and its
//! slow/closing state. The socket task (in `api`) drains the queue; the engine only ever
//! `try_send`s into it, so fan-out never awaits a socket.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use fluxbase_auth::AuthContext;
use tokio::sync::{Notify, mpsc};

/// Identifies a connection for the process lifetime.
pub type ConnId = u64;

/// A frame waiting in a socket's queue. A change is queued as two shared pieces — the
/// subscription's envelope prefix and the change's payload, serialized once — so a slow
/// socket's queue holds pointers, not copies, and the concatenation happens on the socket's
/// own worker thread when it is sent.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A complete text frame.
    Text(ByteString),
    /// A `postgres_changes` frame: `prefix` + `payload` + `}`.
    Change {
        /// The envelope up to `"payload":`.
        prefix: Arc<str>,
        /// The payload, shared by every recipient.
        payload: Arc<str>,
    },
}

impl Outbound {
    /// The frame's text.
    pub fn into_text(self) -> ByteString {
        match self {
            Outbound::Text(text) => text,
            Outbound::Change { prefix, payload } => {
                super::protocol::postgres_changes_frame(&prefix, &payload)
            }
        }
    }
}

impl From<ByteString> for Outbound {
    fn from(text: ByteString) -> Self {
        Outbound::Text(text)
    }
}

impl From<&str> for Outbound {
    fn from(text: &str) -> Self {
        Outbound::Text(ByteString::from(text))
    }
}

/// Close codes the engine uses.
pub mod close {
    /// The client could not keep up (DESIGN invariant 3).
    pub const SLOW_CLIENT: u16 = 4008;
    /// The user's sessions were revoked (`DELETE FROM auth.sessions`).
    pub const SESSION_REVOKED: u16 = 4001;
    /// A configured limit refused the connection.
    pub const LIMIT: u16 = 4029;
    /// No pong within `realtime.pong_timeout`.
    pub const PONG_TIMEOUT: u16 = 4000;
    /// The server is shutting down or the engine restarting.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame over `realtime.message_size_limit`.
    pub const TOO_BIG: u16 = 1009;
}

/// Why and how a connection is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code.
    pub code: u16,
    /// Human-readable reason (sent in the close frame).
    pub reason: String,
    /// Label for `fluxbase_realtime_disconnects_total{reason}`.
    pub label: &'static str,
}

/// Backpressure state of a connection, as explicit state (STYLE 6): `Normal`, or `Slow`
/// since an instant. Stored in one atomic (milliseconds since [`epoch`], 0 = normal) so
/// the hot path takes no lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// Queue at or under the threshold.
    Normal,
    /// Over the threshold since this instant.
    Slow(Instant),
}

/// The process's reference instant for the pressure atomics.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Shared between the engine (producer) and the socket task (consumer).
#[derive(Debug)]
pub struct ConnShared {
    /// Connection id.
    pub id: ConnId,
    /// Client IP (for per-IP limits).
    pub ip: IpAddr,
    /// Outgoing frames; bounded by `realtime.client_message_queue_size`.
    tx: mpsc::Sender<Outbound>,
    /// Capacity of `tx`.
    capacity: usize,
    /// Identity; replaced live by `access_token`. An `Arc` so the dispatcher takes it
    /// without copying the claims. A std lock: never held across `.await`.
    context: RwLock<Arc<AuthContext>>,
    /// Backpressure state: 0 normal, else 1 + milliseconds since [`epoch`] it turned slow.
    slow_since: AtomicU64,
    /// Fingerprint of `context`, readable without the lock.
    fingerprint: AtomicU64,
    /// Set once; the socket task closes with it.
    close_reason: Mutex<Option<CloseReason>>,
    /// Wakes the socket task when `close_reason` is set.
    pub closed: Notify,
    closing: AtomicBool,
    /// Frames dropped because the connection was closing.
    pub dropped: AtomicU64,
}

impl ConnShared {
    /// A connection and the receiving end of its queue.
    pub fn new(
        id: ConnId,
        ip: IpAddr,
        context: AuthContext,
        capacity: usize,
    ) -> (Arc<ConnShared>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let conn = ConnShared {
            id,
            ip,
            tx,
            capacity: capacity.max(1),
            fingerprint: AtomicU64::new(context.fingerprint()),
            context: RwLock::new(Arc::new(context)),
            slow_since: AtomicU64::new(0),
            close_reason: Mutex::new(None),
            closed: Notify::new(),
            closing: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        };
        (Arc::new(conn), rx)
    }

    /// The current auth context.
    pub fn context(&self) -> Arc<AuthContext> {
        self.context.read().expect("context lock").clone()
    }

    /// Replaces the auth context (`access_token`).
    pub fn set_context(&self, context: AuthContext) {
        let fingerprint = context.fingerprint();
        *self.context.write().expect("context lock") = Arc::new(context);
        self.fingerprint.store(fingerprint, Ordering::Release);
    }

    /// The context's fingerprint (groups identical contexts without cloning them).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint.load(Ordering::Acquire)
    }

    /// The backpressure state.
    pub fn pressure(&self) -> Pressure {
        match self.slow_since.load(Ordering::Acquire) {
            0 => Pressure::Normal,
            n => Pressure::Slow(epoch() + Duration::from_millis(n - 1)),
        }
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Requests a close; the first reason wins. Returns whether this call set it.
    pub fn request_close(&self, reason: CloseReason) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self.close_reason.lock().expect("close lock") = Some(reason);
        // notify_one stores a permit when the task is not waiting yet.
        self.closed.notify_one();
        true
    }

    /// The reason a close was requested, if any.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.lock().expect("close lock").clone()
    }

    /// Enqueues without waiting. A full queue, or one over `threshold` for longer than
    /// `timeout`, closes the connection with 4008: a slow client is cut loose, never waited
    /// for and never silently skipped.
    pub fn push(
        &self,
        frame: impl Into<Outbound>,
        threshold: usize,
        timeout: Duration,
    ) -> PushOutcome {
        if self.is_closing() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return PushOutcome::Closing;
        }
        match self.tx.try_send(frame.into()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return self.slow(format!("queue full ({} messages)", self.capacity));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return PushOutcome::Closing,
        }
        self.check_pressure(threshold, timeout)
    }

    /// Re-evaluates the slow state (also called by the periodic sweep, so a client that
    /// stops reading is caught even when no new message arrives).
    pub fn check_pressure(&self, threshold: usize, timeout: Duration) -> PushOutcome {
        let queued = self.queued();
        let since = self.slow_since.load(Ordering::Acquire);
        if queued <= threshold {
            if since != 0 {
                self.slow_since.store(0, Ordering::Release);
                tracing::debug!(conn = self.id, queued, "client caught up");
            }
            return PushOutcome::Queued;
        }
        let now = epoch().elapsed().as_millis() as u64 + 1;
        if since == 0 {
            self.slow_since.store(now, Ordering::Release);
            tracing::debug!(conn = self.id, queued, "client slow");
            return PushOutcome::Queued;
        }
        if now.saturating_sub(since) >= timeout.as_millis() as u64 {
            return self.slow(format!(
                "over {threshold} queued messages for {}s",
                timeout.as_secs()
            ));
        }
        PushOutcome::Queued
    }

    fn slow(&self, detail: String) -> PushOutcome {
        let set = self.request_close(CloseReason {
            code: close::SLOW_CLIENT,
            reason: "slow client".into(),
            label: "slow_client",
        });
        if set {
            metrics::counter!("fluxbase_realtime_slow_clients_total").increment(1);
            tracing::info!(conn = self.id, detail = %detail, "disconnecting slow client");
        }
        PushOutcome::Disconnected
    }
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// In the queue.
    Queued,
    /// The connection was just closed as slow; the frame was not queued.
    Disconnected,
    /// The connection was already closing.
    Closing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_disconnects_with_4008() {
        let (conn, mut rx) =
            ConnShared::new(1, "127.0.0.1".parse().unwrap(), AuthContext::anon(), 2);
        let t = Duration::from_secs(30);
        assert_eq!(conn.push("a", 10, t), PushOutcome::Queued);
        assert_eq!(conn.push("b", 10, t), PushOutcome::Queued);
        assert_eq!(conn.push("c", 10, t), PushOutcome::Disconnected);
        assert_eq!(conn.close_reason().unwrap().code, close::SLOW_CLIENT);
        assert_eq!(conn.push("d", 10, t), PushOutcome::Closing);
        assert_eq!(rx.try_recv().unwrap().into_text(), "a");
    }

    #[test]
    fn over_threshold_for_the_timeout_disconnects() {
        let (conn, mut rx) =
            ConnShared::new(1, "127.0.0.1".parse().unwrap(), AuthContext::anon(), 10);
        assert_eq!(conn.push("a", 1, Duration::ZERO), PushOutcome::Queued);
        // Second message puts it over the threshold: slow from now.
        assert_eq!(conn.push("b", 1, Duration::ZERO), PushOutcome::Queued);
        // Still over, and the (zero) timeout has passed.
        assert_eq!(
            conn.check_pressure(1, Duration::ZERO),
            PushOutcome::Disconnected
        );

        let (conn, mut rx2) =
            ConnShared::new(2, "127.0.0.1".parse().unwrap(), AuthContext::anon(), 10);
        conn.push("a", 1, Duration::from_secs(60));
        conn.push("b", 1, Duration::from_secs(60));
        rx2.try_recv().unwrap();
        rx2.try_recv().unwrap();
        // Drained: back to normal, never disconnected.
        assert_eq!(conn.check_pressure(1, Duration::ZERO), PushOutcome::Queued);
        assert!(!conn.is_closing());
        let _ = rx.try_recv();
    }
}
