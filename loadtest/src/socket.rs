//! One realtime WebSocket: opened from a chosen 127.0.0.x source address, subscribed,
//! then either reading events into its [`Ledger`] (fast) or never reading (slow).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Deserializer};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::latency::{LatencyRecorder, now_micros, parse_timestamp_micros};
use crate::ledger::{Ledger, parse_lsn};
use crate::tally::{ErrorTally, io_kind};
use crate::target::Target;

/// A WebSocket over a plain TCP stream.
pub type Socket = WebSocketStream<TcpStream>;

/// Per-socket read buffer. tungstenite's default (128 KiB, allocated up front) would
/// cost 6 GiB at 50,000 sockets; events are small.
const READ_BUFFER: usize = 8 * 1024;

/// Counters and recorders every socket of a run shares.
#[derive(Default)]
pub struct FleetState {
    /// Sockets whose handshake completed.
    pub connected: AtomicUsize,
    /// Sockets whose subscription was acknowledged.
    pub acked: AtomicUsize,
    /// Sockets that failed to connect or subscribe.
    pub failed: AtomicUsize,
    /// Fast sockets closed by the server (or reset) before the end of the run.
    pub closed_early: AtomicUsize,
    /// `postgres_changes` events received by fast sockets, duplicates included.
    pub received: AtomicU64,
    /// Woken whenever `acked` or `failed` moves.
    pub ready: Notify,
    /// Commit → receive latency of events (µs).
    pub latency: LatencyRecorder,
    /// TCP connect + WebSocket handshake (µs).
    pub connect_latency: LatencyRecorder,
    /// Subscribe sent → ack received (µs).
    pub ack_latency: LatencyRecorder,
    pub errors: ErrorTally,
    /// Indexes of the sockets whose subscription was acknowledged, so the drain knows
    /// exactly how many events are still due. A std `Mutex`: pushed once per socket.
    pub acked_indexes: std::sync::Mutex<Vec<usize>>,
}

/// How one socket is opened and what it subscribes to.
#[derive(Debug, Clone)]
pub struct SocketPlan {
    pub index: usize,
    /// `/realtime?token=…` (or without a token for anon).
    pub path: String,
    /// The subscribe frame, serialized.
    pub subscribe: String,
    /// A slow socket reads its ack, then nothing until the end of the run.
    pub slow: bool,
}

/// Socket-wide settings that are the same for every plan.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    pub target: Target,
    /// With a scaled-out cluster: every instance (`target` first); socket `i` opens on
    /// `targets[i % len]`. Empty: `target` only.
    pub targets: Vec<Target>,
    pub source_addrs: u8,
    pub connect_timeout: Duration,
    pub ack_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// How long a socket may spend reading its backlog / close frame at the end.
    pub drain: Duration,
}

/// What a socket ends with.
#[derive(Debug, Default)]
pub struct SocketOutcome {
    pub index: usize,
    pub slow: bool,
    pub acked: bool,
    pub ledger: Ledger,
    /// How the server ended the socket, if it did: `close:4008`, `reset`, …
    pub closed_by_server: Option<String>,
}

/// Opens a TCP connection from 127.0.0.(1 + index % source_addrs) and performs the
/// WebSocket handshake. Errors come back as a short kind for the tally.
pub async fn open(settings: &SocketSettings, index: usize, path: &str) -> Result<Socket, String> {
    let target = match settings.targets.len() {
        0 => &settings.target,
        n => &settings.targets[index % n],
    };
    let connect = async {
        let stream = connect_tcp(target.addr, index, settings.source_addrs)
            .await
            .map_err(|e| format!("connect:{}", io_kind(&e)))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(target.ws_url(path), stream, Some(config))
                .await
                .map_err(|e| format!("handshake:{}", ws_error_kind(&e)))?;
        Ok(socket)
    };
    match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(result) => result,
        Err(_) => Err("connect:timeout".to_owned()),
    }
}

/// A TCP connection bound to a loopback source address before connecting, so tens of
/// thousands of sockets to one server port do not exhaust one address's ephemeral ports.
async fn connect_tcp(
    addr: SocketAddr,
    index: usize,
    source_addrs: u8,
) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => {
            let socket = TcpSocket::new_v4()?;
            bind_address_no_port(&socket);
            let last = 1 + (index % source_addrs as usize) as u8;
            socket.bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                0,
            ))?;
            socket
        }
        // ::1 is the only IPv6 loopback address: nothing to spread over.
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Asks Linux to pick the source port at connect time (by the full 4-tuple) rather than
/// at bind time, which would reserve the port for the address against every destination.
fn bind_address_no_port(socket: &TcpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd owned by `socket`, a pointer to a c_int that outlives the call,
    // and its exact size. Failure only loses the optimisation, so the result is ignored.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A short kind for a tungstenite error.
pub fn ws_error_kind(err: &tungstenite::Error) -> String {
    use tungstenite::Error as E;
    match err {
        E::Http(response) => format!("http_{}", response.status().as_u16()),
        E::Io(io) => io_kind(io),
        E::ConnectionClosed | E::AlreadyClosed => "closed".into(),
        E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            "reset".into()
        }
        E::Protocol(_) => "protocol".into(),
        E::Capacity(_) => "capacity".into(),
        E::Url(_) => "url".into(),
        E::Utf8(_) => "utf8".into(),
        _ => "other".into(),
    }
}

/// Runs one socket from connect to the end of the run.
///
/// `shutdown` turns true when the run is over; the socket then closes (a slow socket
/// first reads its backlog, bounded by `settings.drain`, to learn how the server ended it).
pub async fn run_socket(
    plan: SocketPlan,
    settings: Arc<SocketSettings>,
    state: Arc<FleetState>,
    mut shutdown: watch::Receiver<bool>,
    handshake_slot: OwnedSemaphorePermit,
) -> SocketOutcome {
    let mut outcome = SocketOutcome {
        index: plan.index,
        slow: plan.slow,
        ..SocketOutcome::default()
    };
    let fail = |kind: String| {
        state.errors.add(kind);
        state.failed.fetch_add(1, Ordering::Relaxed);
        state.ready.notify_waiters();
    };

    let started = Instant::now();
    let mut socket = match open(&settings, plan.index, &plan.path).await {
        Ok(socket) => socket,
        Err(kind) => {
            fail(kind);
            return outcome;
        }
    };
    state
        .connect_latency
        .record(plan.index, started.elapsed().as_micros() as u64);
    state.connected.fetch_add(1, Ordering::Relaxed);

    let subscribed_at = Instant::now();
    if let Err(err) = socket.send(Message::text(plan.subscribe.clone())).await {
        fail(format!("subscribe:{}", ws_error_kind(&err)));
        return outcome;
    }
    match tokio::time::timeout(settings.ack_timeout, wait_for_ack(&mut socket)).await {
        Ok(Ok(())) => {
            state
                .ack_latency
                .record(plan.index, subscribed_at.elapsed().as_micros() as u64);
            outcome.acked = true;
            if !plan.slow {
                state
                    .acked_indexes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(plan.index);
            }
            state.acked.fetch_add(1, Ordering::Relaxed);
            state.ready.notify_waiters();
        }
        Ok(Err(kind)) => {
            fail(kind);
            return outcome;
        }
        Err(_) => {
            fail("subscribe:ack_timeout".to_owned());
            return outcome;
        }
    }
    // Subscribed: let the next socket start its handshake.
    drop(handshake_slot);

    if plan.slow {
        // Never read: the server's queue for this socket fills up.
        let _ = until_set(&mut shutdown).await;
        outcome.closed_by_server = drain_until_close(&mut socket, settings.drain).await;
        return outcome;
    }

    let mut heartbeat = tokio::time::interval(settings.heartbeat_interval);
    heartbeat.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    handle_frame(text.as_str(), plan.index, &mut outcome.ledger, &state);
                }
                Some(Ok(Message::Close(frame))) => {
                    let kind = match frame {
                        Some(frame) => format!("close:{}", u16::from(frame.code)),
                        None => "close:none".to_owned(),
                    };
                    state.errors.add(kind.clone());
                    state.closed_early.fetch_add(1, Ordering::Relaxed);
                    outcome.closed_by_server = Some(kind);
                    break;
                }
                Some(Ok(_)) => {} // pings are answered by tungstenite while we read
                Some(Err(err)) => {
                    let kind = format!("read:{}", ws_error_kind(&err));
                    state.errors.add(kind.clone());
                    state.closed_early.fetch_add(1, Ordering::Relaxed);
                    outcome.closed_by_server = Some(kind);
                    break;
                }
                None => {
                    state.errors.add("read:eof");
                    state.closed_early.fetch_add(1, Ordering::Relaxed);
                    outcome.closed_by_server = Some("read:eof".to_owned());
                    break;
                }
            },
            _ = heartbeat.tick() => {
                if let Err(err) = socket.send(Message::text(r#"{"type":"heartbeat"}"#)).await {
                    state.errors.add(format!("heartbeat:{}", ws_error_kind(&err)));
                }
            }
            _ = until_set(&mut shutdown) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                break;
            }
        }
    }
    outcome
}

/// Resolves once `flag` is true (or its sender is gone). Returns `()` so no watch
/// guard lives across an `.await` of the caller.
pub async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// Reads until the subscription's `ack`; an `error` frame or a refusal is a failure kind.
async fn wait_for_ack(socket: &mut Socket) -> Result<(), String> {
    while let Some(message) = socket.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => {
                return Err(match frame {
                    Some(frame) => format!("subscribe:close_{}", u16::from(frame.code)),
                    None => "subscribe:closed".to_owned(),
                });
            }
            Ok(_) => continue,
            Err(err) => return Err(format!("subscribe:{}", ws_error_kind(&err))),
        };
        let frame: Frame<'_> = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(_) => return Err("subscribe:bad_frame".to_owned()),
        };
        match frame.kind.as_ref() {
            "ack" if frame.subscribed != Some(false) => return Ok(()),
            "ack" => return Err("subscribe:refused".to_owned()),
            "error" => return Err(format!("subscribe:error_{}", frame.code_text())),
            _ => continue, // heartbeat, system
        }
    }
    Err("subscribe:eof".to_owned())
}

/// Handles one text frame of a subscribed fast socket.
fn handle_frame(text: &str, index: usize, ledger: &mut Ledger, state: &FleetState) {
    let frame: Frame<'_> = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(_) => {
            state.errors.add("frame:unparsable");
            return;
        }
    };
    match frame.kind.as_ref() {
        "postgres_changes" => {
            let received_at = now_micros();
            let Some(change) = frame.payload else {
                state.errors.add("frame:no_payload");
                return;
            };
            let seq = change
                .record
                .as_ref()
                .and_then(|r| r.seq)
                .or_else(|| change.old_record.as_ref().and_then(|r| r.seq));
            let Some(seq) = seq else {
                state.errors.add("frame:no_seq");
                return;
            };
            let lsn = change.lsn.as_deref().and_then(parse_lsn).unwrap_or(0);
            ledger.record(seq, lsn);
            ledger.add_bytes(text.len());
            state.received.fetch_add(1, Ordering::Relaxed);
            match change
                .commit_timestamp
                .as_deref()
                .and_then(parse_timestamp_micros)
            {
                Some(committed) => {
                    let latency = received_at - committed;
                    if latency < 0 {
                        state.errors.add("latency:negative");
                    }
                    state.latency.record(index, latency.max(0) as u64);
                }
                None => state.errors.add("frame:no_commit_timestamp"),
            }
        }
        "error" => state.errors.add(format!("server:{}", frame.code_text())),
        _ => {} // heartbeat, ack of a re-subscribe, system
    }
}

/// Reads a slow socket's backlog until the close frame, bounded by `limit`.
/// Returns how the server ended it, or `None` if it is still open.
async fn drain_until_close(socket: &mut Socket, limit: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(match frame {
                    Some(frame) => format!("close:{}", u16::from(frame.code)),
                    None => "close:none".to_owned(),
                });
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(err))) => return Some(format!("read:{}", ws_error_kind(&err))),
            Ok(None) => return Some("read:eof".to_owned()),
        }
    }
}

/// The parts of a server frame the harness reads; everything else is skipped.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    subscribed: Option<bool>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, borrow)]
    payload: Option<Change<'a>>,
}

impl Frame<'_> {
    /// The `code` of an error frame, as text.
    fn code_text(&self) -> String {
        match &self.code {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "unknown".to_owned(),
        }
    }
}

/// A `postgres_changes` payload.
#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default, borrow)]
    commit_timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    lsn: Option<Cow<'a, str>>,
    #[serde(default)]
    record: Option<Row>,
    #[serde(default)]
    old_record: Option<Row>,
}

/// A row: only its sequence number matters (int8 may come as a number or a string).
#[derive(Deserialize)]
struct Row {
    #[serde(default, deserialize_with = "seq_number")]
    seq: Option<u64>,
}

fn seq_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seq {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Seq>::deserialize(deserializer)? {
        Some(Seq::Number(n)) => Some(n),
        Some(Seq::Text(s)) => s.parse().ok(),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_recorded_with_seq_as_number_or_string() {
        let state = FleetState::default();
        let mut ledger = Ledger::default();
        let now = chrono_like_now();
        let frame = |seq: &str| {
            format!(
                r#"{{"type":"postgres_changes","channel":"c1","subscription_ids":["s"],"payload":{{"type":"INSERT","schema":"public","table":"t","commit_timestamp":"{now}","lsn":"0/16B3748","columns":[{{"name":"id","type":"int8"}}],"record":{{"id":1,"seq":{seq},"payload":"x"}},"old_record":null}}}}"#
            )
        };
        handle_frame(&frame("7"), 0, &mut ledger, &state);
        handle_frame(&frame("\"8\""), 0, &mut ledger, &state);
        handle_frame(r#"{"type":"heartbeat"}"#, 0, &mut ledger, &state);
        handle_frame(
            r#"{"type":"error","code":"rls","message":"no"}"#,
            0,
            &mut ledger,
            &state,
        );
        handle_frame("not json", 0, &mut ledger, &state);
        assert_eq!(state.received.load(Ordering::Relaxed), 2);
        assert_eq!(ledger.clone().settle(&[7, 8]).delivered, 2);
        assert_eq!(
            ledger.bytes(),
            (frame("7").len() + frame("\"8\"").len()) as u64
        );
        let errors = state.errors.snapshot();
        assert_eq!(errors.get("server:rls"), Some(&1));
        assert_eq!(errors.get("frame:unparsable"), Some(&1));
        assert_eq!(state.latency.percentiles().unwrap().count, 2);
    }

    /// Now as an RFC 3339 UTC timestamp, minus 5 ms so the latency is positive.
    fn chrono_like_now() -> String {
        let micros = now_micros() - 5_000;
        let secs = micros.div_euclid(1_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // civil_from_days (H. Hinnant)
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            micros.rem_euclid(1_000_000)
        )
    }
}
