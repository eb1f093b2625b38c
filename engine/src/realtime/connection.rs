//! The engine's side of one socket: its bounded outgoing queue, its auth context, its
//! slow/closing state, the bytes it has queued but not yet written, and the position of the
//! last change queued for it. The socket loop drains the queue; the engine only ever
//! `try_send`s into it, so fan-out never awaits a socket.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fluxbase_auth::AuthContext;
use tokio::sync::{Notify, mpsc};

use super::channels::ChannelEvent;
use super::codec::{EventFormat, Frame};
use super::index::Subscription;

/// Identifies a connection: opaque, unique across instances (`<instance>-<counter>`), so
/// presence keys and bus messages of several instances never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(Arc<str>);

impl ConnId {
    /// The id of the `n`th connection of `instance`.
    pub fn new(instance: &str, n: u64) -> ConnId {
        ConnId(Arc::from(format!("{instance}-{n}")))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id read back from its text (a channel event from another instance's bus entry).
    pub fn from_text(text: &str) -> ConnId {
        ConnId(Arc::from(text))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A frame waiting in a socket's queue. Shared parts stay shared: a change is its
/// subscription(s) plus the change's body, encoded once per change and format, so a slow
/// socket's queue holds pointers, not copies; the connection's codec assembles the frame
/// on the socket's own worker thread when it is sent.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A complete frame, already in this connection's protocol.
    Frame(Frame),
    /// A change for one subscription (the common case: no allocation per recipient).
    Change {
        /// The matching subscription.
        sub: Arc<Subscription>,
        /// The change's body in this connection's format, shared by every recipient.
        body: Arc<str>,
    },
    /// A change for several subscriptions of one channel of this connection.
    Changes {
        /// The matching subscriptions (one channel).
        subs: Arc<[Arc<Subscription>]>,
        /// The change's body in this connection's format.
        body: Arc<str>,
    },
    /// A broadcast or presence event of a channel this connection is in.
    Channel(Arc<ChannelEvent>),
}

impl Outbound {
    /// About how many bytes the frame will take (for the per-connection byte count).
    pub fn approx_len(&self) -> usize {
        match self {
            Outbound::Frame(frame) => frame.len(),
            Outbound::Change { sub, body } => body.len() + sub.envelope.len() + 8,
            Outbound::Changes { subs, body } => {
                body.len() + subs.iter().map(|s| s.envelope.len()).sum::<usize>() + 8
            }
            Outbound::Channel(event) => event.approx_len(),
        }
    }
}

impl From<Frame> for Outbound {
    fn from(frame: Frame) -> Self {
        Outbound::Frame(frame)
    }
}

/// Close codes the engine uses.
pub mod close {
    /// The client could not keep up (DESIGN invariant 3).
    pub const SLOW_CLIENT: u16 = 4008;
    /// The token was refused, or the user's sessions were revoked.
    pub const SESSION_REVOKED: u16 = 4001;
    /// A configured limit refused the connection.
    pub const LIMIT: u16 = 4029;
    /// No pong within `realtime.pong_timeout`.
    pub const PONG_TIMEOUT: u16 = 4000;
    /// The server is shutting down or the engine restarting.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame that breaks the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame over `realtime.message_size_limit`.
    pub const TOO_BIG: u16 = 1009;
    /// Scale-out: this instance fell behind the changes stream (or Redis lost entries); the
    /// client reconnects rather than miss events silently.
    pub const BUS_GAP: u16 = 4010;
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

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The queue bounds of a connection (`realtime.*`).
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// `realtime.client_message_queue_size`: frames the queue holds.
    pub capacity: usize,
    /// `realtime.client_queue_bytes`: bytes queued and not yet written.
    pub bytes: usize,
    /// `realtime.slow_client_threshold`: frames over which the client is slow.
    pub threshold: usize,
    /// `realtime.slow_client_timeout`: how long it may stay slow.
    pub timeout: Duration,
}

/// Shared between the engine (producer) and the socket loop (consumer).
pub struct ConnShared {
    /// Local sequence number: groups a connection's matches in the dispatcher cheaply.
    pub seq: u64,
    /// The opaque id (presence key, bus messages, logs).
    pub id: ConnId,
    /// Client IP (for per-IP limits).
    pub ip: IpAddr,
    /// How this connection's protocol writes shared bodies (chosen by its codec).
    pub format: &'static dyn EventFormat,
    /// Outgoing frames; bounded by `limits.capacity`.
    tx: mpsc::Sender<Outbound>,
    limits: QueueLimits,
    /// Identity; replaced live by `access_token`. An `Arc` so the dispatcher takes it
    /// without copying the claims. A std lock: never held across `.await`.
    context: RwLock<Arc<AuthContext>>,
    /// Fingerprint of `context`, readable without the lock.
    fingerprint: AtomicU64,
    /// `exp` of `context` (0: none), readable without the lock.
    expires_at: AtomicU64,
    /// Backpressure state: 0 normal, else 1 + milliseconds since [`epoch`] it turned slow.
    slow_since: AtomicU64,
    /// Bytes pushed and not yet handed to the socket by the socket loop.
    pending_bytes: AtomicUsize,
    /// Commit LSN and change index of the last change queued: a change is never queued
    /// twice for one connection, even when a restarted dispatcher takes its transaction
    /// again. Written by the dispatcher only.
    last_lsn: AtomicU64,
    last_index: AtomicU32,
    /// Set once; the socket loop closes with it.
    close_reason: Mutex<Option<CloseReason>>,
    /// Wakes the socket loop when `close_reason` is set.
    pub closed: Notify,
    closing: AtomicBool,
    /// Frames dropped because the connection was closing.
    pub dropped: AtomicU64,
}

impl fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnShared")
            .field("id", &self.id)
            .field("ip", &self.ip)
            .field("format", &self.format.name())
            .finish_non_exhaustive()
    }
}

impl ConnShared {
    /// A connection and the receiving end of its queue.
    pub fn new(
        seq: u64,
        id: ConnId,
        ip: IpAddr,
        context: AuthContext,
        format: &'static dyn EventFormat,
        limits: QueueLimits,
    ) -> (Arc<ConnShared>, mpsc::Receiver<Outbound>) {
        let limits = QueueLimits {
            capacity: limits.capacity.max(1),
            ..limits
        };
        let (tx, rx) = mpsc::channel(limits.capacity);
        let conn = ConnShared {
            seq,
            id,
            ip,
            format,
            tx,
            limits,
            fingerprint: AtomicU64::new(context.fingerprint()),
            expires_at: AtomicU64::new(context.expires_at().unwrap_or(0)),
            context: RwLock::new(Arc::new(context)),
            slow_since: AtomicU64::new(0),
            pending_bytes: AtomicUsize::new(0),
            last_lsn: AtomicU64::new(0),
            last_index: AtomicU32::new(0),
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

    /// Replaces the auth context (`access_token`, already authenticated).
    pub(crate) fn set_context(&self, context: AuthContext) {
        let fingerprint = context.fingerprint();
        let expires = context.expires_at().unwrap_or(0);
        *self.context.write().expect("context lock") = Arc::new(context);
        self.fingerprint.store(fingerprint, Ordering::Release);
        self.expires_at.store(expires, Ordering::Release);
    }

    /// The context's fingerprint (groups identical contexts without cloning them).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint.load(Ordering::Acquire)
    }

    /// The context's expiry (`exp`), if any.
    pub fn expires_at(&self) -> Option<u64> {
        match self.expires_at.load(Ordering::Acquire) {
            0 => None,
            exp => Some(exp),
        }
    }

    /// Whether the context has expired at `now` (seconds since the epoch): an expired
    /// context neither subscribes nor receives.
    pub fn expired_at(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|exp| exp <= now)
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
        self.limits.capacity - self.tx.capacity()
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Acquire)
    }

    /// The socket loop handed `bytes` of a queued frame to the socket.
    pub(crate) fn written(&self, bytes: usize) {
        let _ = self
            .pending_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(bytes))
            });
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
        // notify_one stores a permit when the loop is not waiting yet.
        self.closed.notify_one();
        true
    }

    /// The reason a close was requested, if any.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.lock().expect("close lock").clone()
    }

    /// Whether the change at (`lsn`, `index`) is past the last one queued here (the
    /// dispatcher's duplicate check after a restart).
    pub(crate) fn is_new(&self, lsn: u64, index: u32) -> bool {
        // Commit LSNs are never 0: the initial (0, 0) is before every change.
        let last = self.last_lsn.load(Ordering::Acquire);
        lsn > last || (lsn == last && index > self.last_index.load(Ordering::Acquire))
    }

    /// Records the change at (`lsn`, `index`) as queued.
    pub(crate) fn mark(&self, lsn: u64, index: u32) {
        self.last_index.store(index, Ordering::Release);
        self.last_lsn.store(lsn, Ordering::Release);
    }

    /// Enqueues without waiting. A full queue (frames or bytes), or one over the threshold
    /// for longer than the timeout, closes the connection with 4008: a slow client is cut
    /// loose, never waited for and never silently skipped.
    pub fn push(&self, frame: impl Into<Outbound>) -> PushOutcome {
        if self.is_closing() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return PushOutcome::Closing;
        }
        let frame = frame.into();
        let len = frame.approx_len();
        let pending = self.pending_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if pending > self.limits.bytes {
            self.written(len);
            return self.slow(format!(
                "{pending} bytes not yet written (realtime.client_queue_bytes = {})",
                self.limits.bytes
            ));
        }
        match self.tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.written(len);
                return self.slow(format!("queue full ({} messages)", self.limits.capacity));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.written(len);
                return PushOutcome::Closing;
            }
        }
        self.check_pressure()
    }

    /// Re-evaluates the slow state (also called by the sweeper, so a client that stops
    /// reading is caught even when no new message arrives).
    pub fn check_pressure(&self) -> PushOutcome {
        let QueueLimits {
            threshold, timeout, ..
        } = self.limits;
        let queued = self.queued();
        let since = self.slow_since.load(Ordering::Acquire);
        if queued <= threshold {
            if since != 0 {
                self.slow_since.store(0, Ordering::Release);
                tracing::debug!(conn = %self.id, queued, "client caught up");
            }
            return PushOutcome::Queued;
        }
        let now = epoch().elapsed().as_millis() as u64 + 1;
        if since == 0 {
            self.slow_since.store(now, Ordering::Release);
            tracing::debug!(conn = %self.id, queued, bytes = self.pending_bytes(), "client slow");
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
            tracing::info!(conn = %self.id, detail = %detail, "disconnecting slow client");
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
    use crate::realtime::codec::native::NATIVE;

    fn conn(
        capacity: usize,
        bytes: usize,
        threshold: usize,
        timeout: Duration,
    ) -> (Arc<ConnShared>, mpsc::Receiver<Outbound>) {
        ConnShared::new(
            1,
            ConnId::new("test", 1),
            "127.0.0.1".parse().unwrap(),
            AuthContext::anon(),
            &NATIVE,
            QueueLimits {
                capacity,
                bytes,
                threshold,
                timeout,
            },
        )
    }

    fn text(s: &str) -> Frame {
        Frame::text(s)
    }

    #[test]
    fn full_queue_disconnects_with_4008() {
        let (conn, mut rx) = conn(2, 1 << 20, 10, Duration::from_secs(30));
        assert_eq!(conn.push(text("a")), PushOutcome::Queued);
        assert_eq!(conn.push(text("b")), PushOutcome::Queued);
        assert_eq!(conn.push(text("c")), PushOutcome::Disconnected);
        assert_eq!(conn.close_reason().unwrap().code, close::SLOW_CLIENT);
        assert_eq!(conn.push(text("d")), PushOutcome::Closing);
        assert!(matches!(rx.try_recv().unwrap(), Outbound::Frame(f) if f.len() == 1));
    }

    #[test]
    fn bytes_not_yet_written_are_bounded() {
        let (conn, _rx) = conn(100, 10, 100, Duration::from_secs(30));
        assert_eq!(conn.push(text("12345678")), PushOutcome::Queued);
        assert_eq!(conn.pending_bytes(), 8);
        conn.written(8);
        assert_eq!(conn.pending_bytes(), 0);
        assert_eq!(conn.push(text("12345678")), PushOutcome::Queued);
        assert_eq!(conn.push(text("123")), PushOutcome::Disconnected);
        assert!(conn.close_reason().unwrap().code == close::SLOW_CLIENT);
    }

    #[test]
    fn over_threshold_for_the_timeout_disconnects() {
        let (conn, _rx) = conn(10, 1 << 20, 1, Duration::ZERO);
        assert_eq!(conn.push(text("a")), PushOutcome::Queued);
        // Second message puts it over the threshold: slow from now.
        assert_eq!(conn.push(text("b")), PushOutcome::Queued);
        // Still over, and the (zero) timeout has passed.
        assert_eq!(conn.check_pressure(), PushOutcome::Disconnected);

        let (conn, mut rx2) = super::tests::conn(10, 1 << 20, 1, Duration::from_secs(60));
        conn.push(text("a"));
        conn.push(text("b"));
        rx2.try_recv().unwrap();
        rx2.try_recv().unwrap();
        // Drained: back to normal, never disconnected.
        assert_eq!(conn.check_pressure(), PushOutcome::Queued);
        assert!(!conn.is_closing());
    }

    #[test]
    fn a_change_is_new_once() {
        let (conn, _rx) = conn(10, 1 << 20, 10, Duration::from_secs(1));
        assert!(conn.is_new(5, 0));
        conn.mark(5, 0);
        assert!(!conn.is_new(5, 0));
        assert!(conn.is_new(5, 1));
        conn.mark(5, 1);
        assert!(!conn.is_new(4, 9));
        assert!(conn.is_new(6, 0));
    }
}
