//! The bare WebSocket broadcast server `ws-ceiling` measures, run in the child process.
//!
//! Built as the real server is built where it touches sockets: an actix-web `HttpServer`
//! with one worker per core, `actix-ws` sessions, one task per socket draining a bounded
//! queue, and the broadcast loop on the system thread (where the server's dispatcher runs).
//! A socket's task answers the first text frame (the harness's `subscribe`) with an `ack`,
//! then only drains its queue and answers pings. The loop renders each message once and
//! queues the same shared `ByteString` on every socket: no matching, no RLS, no copy per
//! recipient before the WebSocket codec's own.

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};
use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use super::frame::ChangeFrame;
use super::{Broadcast, Command, QUEUE_CAPACITY, Reply, Sent};
use crate::latency::now_micros;

/// Largest frame accepted from a client (the harness sends `subscribe` and heartbeats).
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// The acknowledgement the harness waits for before counting a socket as subscribed.
const ACK: &str = r#"{"type":"ack","channel":"c1","subscribed":true,"subscription_id":"00000000-0000-4000-8000-000000000001"}"#;

/// The queues of the subscribed sockets, in subscription order.
#[derive(Default)]
struct Registry {
    /// A std `Mutex`: taken once per subscription and once per broadcast, never across
    /// `.await`.
    queues: Mutex<Vec<mpsc::Sender<ByteString>>>,
}

impl Registry {
    fn add(&self, queue: mpsc::Sender<ByteString>) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(queue);
    }

    fn snapshot(&self) -> Vec<mpsc::Sender<ByteString>> {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The child's entry point: binds a loopback port, announces it on stdout, and serves
/// until stdin closes.
pub fn main() -> io::Result<()> {
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (replies, replies_rx) = std::sync::mpsc::channel::<Reply>();
    // Replies go out one JSON line each, in order, from one thread.
    let printer = std::thread::spawn(move || {
        let mut out = io::stdout().lock();
        for reply in replies_rx {
            let line = serde_json::to_string(&reply).unwrap_or_default();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                break; // the parent is gone
            }
        }
    });
    // Commands come in one JSON line each; end of stdin ends the server.
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Command>(&line) {
                Ok(command) => {
                    if commands.send(command).is_err() {
                        break;
                    }
                }
                Err(err) => eprintln!("ws-ceiling server: ignoring command: {err}"),
            }
        }
    });
    let served = run(commands_rx, replies);
    let _ = printer.join();
    served
}

/// Serves WebSockets on a free loopback port (announced as [`Reply::Listening`]) and obeys
/// `commands` until that channel closes.
pub fn run(
    commands: mpsc::UnboundedReceiver<Command>,
    replies: std::sync::mpsc::Sender<Reply>,
) -> io::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    actix_web::rt::System::new().block_on(async move {
        let registry = web::Data::new(Registry::default());
        let app_registry = registry.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_registry.clone())
                .route("/realtime", web::get().to(connect))
                .route("/health", web::get().to(health))
        })
        .workers(workers)
        // Bound by actix with this backlog (a std listener would keep its 128, and a
        // connect storm would wait out SYN retransmits).
        .backlog(4096)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))?;
        for addr in server.addrs() {
            let _ = replies.send(Reply::Listening(addr.to_string()));
        }
        let server = server.run();
        actix_web::rt::spawn(control(
            commands,
            replies,
            registry.into_inner(),
            server.handle(),
        ));
        server.await
    })
}

/// `GET /health`: the harness checks its target before a run.
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"healthy"}"#)
}

/// Upgrades to a WebSocket and hands the socket to its own task.
async fn connect(
    req: HttpRequest,
    body: web::Payload,
    registry: web::Data<Registry>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_CLIENT_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_CLIENT_FRAME);
    actix_web::rt::spawn(run_socket(session, stream, registry.into_inner()));
    Ok(response)
}

/// One socket: wait for the subscription, acknowledge it, then drain the queue.
async fn run_socket(
    mut session: Session,
    mut stream: AggregatedMessageStream,
    registry: Arc<Registry>,
) {
    loop {
        match stream.next().await {
            Some(Ok(AggregatedMessage::Text(_))) => break,
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let _ = session.pong(&bytes).await;
            }
            Some(Ok(_)) => {}
            _ => return,
        }
    }
    let (queue, mut frames) = mpsc::channel(QUEUE_CAPACITY);
    // Registered before the ack, so a socket the harness counts is one the loop feeds.
    registry.add(queue);
    if session.text(ACK).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            // Queued frames first, as the server's socket loop does.
            biased;
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if session.text(frame).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            message = stream.next() => match message {
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    let _ = session.pong(&bytes).await;
                }
                Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {} // heartbeats
            },
        }
    }
    let _ = session.close(None).await;
}

/// Runs the commands: one broadcast at a time; when the commands end, the server stops.
async fn control(
    mut commands: mpsc::UnboundedReceiver<Command>,
    replies: std::sync::mpsc::Sender<Reply>,
    registry: Arc<Registry>,
    server: ServerHandle,
) {
    let mut running = None;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Go(broadcast) if running.is_none() => {
                let stop = Arc::new(AtomicBool::new(false));
                let task = actix_web::rt::spawn(run_broadcast(
                    registry.snapshot(),
                    broadcast,
                    stop.clone(),
                ));
                running = Some((stop, task));
            }
            Command::Go(_) => eprintln!("ws-ceiling server: a broadcast is already running"),
            Command::Stop => {
                let sent = match running.take() {
                    Some((stop, task)) => {
                        stop.store(true, Ordering::Relaxed);
                        task.await.unwrap_or_default()
                    }
                    None => Sent::default(),
                };
                let _ = replies.send(Reply::Sent(sent));
            }
        }
    }
    if let Some((stop, task)) = running.take() {
        stop.store(true, Ordering::Relaxed);
        let _ = task.await;
    }
    server.stop(false).await;
}

/// Broadcasts until `stop`: message `seq` is rendered once and queued on every socket.
///
/// A full queue is waited for (the frame is never dropped), so at `rate` 0 the loop runs
/// exactly as fast as the slowest socket drains, and every message it counts reached every
/// queue: the harness expects each of `1..=messages` once on each socket.
async fn run_broadcast(
    queues: Vec<mpsc::Sender<ByteString>>,
    broadcast: Broadcast,
    stop: Arc<AtomicBool>,
) -> Sent {
    let template = ChangeFrame::new(&broadcast.table, broadcast.payload_bytes);
    let started = Instant::now();
    let mut seq: u64 = 0;
    let mut frame_bytes = 0;
    let mut full = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if broadcast.rate > 0.0 {
            let at = started + Duration::from_secs_f64(seq as f64 / broadcast.rate);
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
                continue; // look at `stop` again before the next message
            }
        }
        seq += 1;
        let frame = ByteString::from(template.render(seq, now_micros()));
        if seq == 1 {
            frame_bytes = frame.len();
        }
        for (i, queue) in queues.iter().enumerate() {
            if let Err(TrySendError::Full(_)) = queue.try_send(frame.clone()) {
                full.push(i);
            }
            // A closed queue is a socket gone: the harness counts what it missed.
        }
        for i in full.drain(..) {
            let _ = queues[i].send(frame.clone()).await;
        }
        // Let the control task (same thread) see a stop between messages.
        tokio::task::yield_now().await;
    }
    Sent {
        messages: seq,
        sockets: queues.len(),
        secs: started.elapsed().as_secs_f64(),
        frame_bytes,
    }
}
