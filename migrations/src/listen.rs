//! LISTEN for every part of the server: one dedicated connection listening on a set of
//! channels, its notifications handed over on a bounded channel, reconnecting with backoff
//! after any error and saying so ([`ListenEvent::Reconnected`]) so consumers reload what
//! they may have missed. Generic over the TLS connector (`NoTls`, or the rustls one).
//!
//! # Bound and slow consumers
//! Events wait in a queue of [`ListenOptions::buffer`] entries. The connection task never
//! waits for the consumer: it must keep reading its socket, or PostgreSQL's NOTIFY queue
//! (shared by the whole cluster) would fill behind it. When the queue is full, further
//! notifications are *folded*: counted and dropped, as is every later one until the
//! consumer has caught up (so nothing overtakes what was folded). Once it makes room it
//! gets what it is owed: a folded `Listening`/`Reconnected` first, then one
//! [`ListenEvent::Lagged`] with the count, which it should treat like a reconnection
//! (reload). So memory stays bounded and the consumer always learns that it missed
//! something.
//!
//! # Liveness
//! A silently dead connection (a vanished server, a dropped NAT entry) raises no error by
//! itself: the listener runs `SELECT 1` every [`ListenOptions::ping_interval`] and
//! reconnects when no answer comes within [`ListenOptions::ping_timeout`].

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Config, Socket};

/// Longest channel name PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones are truncated by
/// LISTEN but refused by `pg_notify`, so they could never match.
const MAX_CHANNEL_LEN: usize = 63;

/// Tuning of a [`Listener`]; the defaults suit every caller in the server.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Events queued for the consumer before notifications are folded (see the module doc).
    pub buffer: usize,
    /// First delay before reconnecting; doubles per failed attempt.
    pub min_backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
    /// How long one connection attempt (with TLS and authentication) may take.
    pub connect_timeout: Duration,
    /// How often an idle connection is checked with `SELECT 1`.
    pub ping_interval: Duration,
    /// How long the check may take before the connection counts as dead.
    pub ping_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            buffer: 64,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
        }
    }
}

/// One `NOTIFY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel, exactly as given to `pg_notify`.
    pub channel: String,
    /// The payload (empty when none was given).
    pub payload: String,
}

/// What a [`Listener`] yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// The first LISTEN is in place: notifications sent from now on will arrive.
    Listening,
    /// A notification on one of the channels.
    Notification(Notification),
    /// The connection was lost and is back, listening again: anything sent meanwhile is
    /// lost, reload what depends on it.
    Reconnected,
    /// The consumer was too slow and this many notifications were dropped: reload.
    Lagged {
        /// Notifications dropped.
        missed: u64,
    },
}

/// A running LISTEN connection; stops on the shutdown signal or when dropped.
#[derive(Debug)]
pub struct Listener {
    events: mpsc::Receiver<ListenEvent>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Starts listening on `channels` over a connection made from `config` and `tls`, on
    /// the current tokio runtime. The first event is [`ListenEvent::Listening`] once the
    /// LISTEN is in place. Stops when `shutdown` turns true or its sender is dropped.
    ///
    /// # Panics
    /// When `channels` is empty or a name is empty or longer than 63 bytes: channel names
    /// come from code, and such a name could never be notified.
    pub fn spawn<T>(
        config: Config,
        tls: T,
        channels: &[&str],
        options: ListenOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Listener
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        assert!(
            !channels.is_empty()
                && channels
                    .iter()
                    .all(|c| !c.is_empty() && c.len() <= MAX_CHANNEL_LEN),
            "LISTEN channels must be 1 to {MAX_CHANNEL_LEN} bytes long: {channels:?}"
        );
        // Quoted: LISTEN takes an identifier, which unquoted would be folded to lower case.
        let listen_sql = channels
            .iter()
            .map(|c| format!("LISTEN \"{}\";", c.replace('"', "\"\"")))
            .collect();
        let (tx, events) = mpsc::channel(options.buffer.max(1));
        let worker = Worker {
            config,
            tls,
            listen_sql,
            options,
            tx,
            owed: Owed::default(),
            listened: false,
            up: false,
        };
        let task = tokio::spawn(worker.run(shutdown));
        Listener { events, task }
    }

    /// The next event; `None` once the listener has stopped.
    pub async fn recv(&mut self) -> Option<ListenEvent> {
        self.events.recv().await
    }

    /// Stops receiving and waits until the connection task has ended.
    pub async fn join(self) {
        drop(self.events);
        let _ = self.task.await;
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// Events the consumer is owed but had no room for, folded.
#[derive(Debug, Default)]
struct Owed {
    listening: bool,
    reconnected: bool,
    missed: u64,
}

impl Owed {
    fn any(&self) -> bool {
        self.listening || self.reconnected || self.missed > 0
    }

    fn fold(&mut self, event: ListenEvent) {
        match event {
            ListenEvent::Listening => self.listening = true,
            ListenEvent::Reconnected => self.reconnected = true,
            ListenEvent::Notification(_) => self.missed += 1,
            ListenEvent::Lagged { missed } => self.missed += missed,
        }
    }

    /// The oldest owed event, taken.
    fn take(&mut self) -> Option<ListenEvent> {
        if std::mem::take(&mut self.listening) {
            Some(ListenEvent::Listening)
        } else if std::mem::take(&mut self.reconnected) {
            Some(ListenEvent::Reconnected)
        } else {
            let missed = std::mem::take(&mut self.missed);
            (missed > 0).then_some(ListenEvent::Lagged { missed })
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("no answer to a liveness check")]
    PingTimeout,
}

/// How a session ended: the consumer is gone, or the connection was lost.
enum End {
    Stopped,
    Lost(Failure),
}

impl From<tokio_postgres::Error> for End {
    fn from(err: tokio_postgres::Error) -> End {
        End::Lost(err.into())
    }
}

/// The connection task.
struct Worker<T> {
    config: Config,
    tls: T,
    /// `LISTEN "a"; LISTEN "b";`
    listen_sql: String,
    options: ListenOptions,
    tx: mpsc::Sender<ListenEvent>,
    owed: Owed,
    /// A LISTEN has succeeded before: the next success is a reconnection.
    listened: bool,
    /// The current session got as far as listening (a loss, not a failed attempt).
    up: bool,
}

/// A liveness check in flight, borrowing the session's client.
type Ping<'a> = Pin<
    Box<
        dyn Future<Output = Result<Result<(), tokio_postgres::Error>, tokio::time::error::Elapsed>>
            + Send
            + 'a,
    >,
>;

impl<T> Worker<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let consumer = self.tx.clone();
        let mut backoff = self.options.min_backoff;
        loop {
            self.up = false;
            let end = tokio::select! {
                _ = stop_requested(&mut shutdown) => return,
                _ = consumer.closed() => return,
                end = self.session() => end,
            };
            let err = match end {
                Err(End::Stopped) => return,
                Err(End::Lost(err)) => err,
                Ok(never) => match never {},
            };
            if self.up {
                tracing::warn!(error = %err, "listen connection lost, reconnecting");
                backoff = self.options.min_backoff;
            } else {
                let backoff_ms = backoff.as_millis() as u64;
                tracing::debug!(error = %err, backoff_ms, "listen connection attempt failed");
            }
            let delay = backoff.mul_f64(rand::rng().random_range(0.75..1.25));
            tokio::select! {
                _ = stop_requested(&mut shutdown) => return,
                _ = consumer.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// One connection: connect, LISTEN, forward until something fails.
    async fn session(&mut self) -> Result<Infallible, End> {
        let connect = self.config.connect(self.tls.clone());
        let (client, mut connection) = tokio::time::timeout(self.options.connect_timeout, connect)
            .await
            .map_err(|_| End::Lost(Failure::ConnectTimeout))??;
        // Notifications only surface through poll_message: drive the connection while the
        // LISTEN runs, keeping any that arrive before it has answered.
        let mut early = Vec::new();
        {
            let listen = client.batch_execute(&self.listen_sql);
            tokio::pin!(listen);
            loop {
                tokio::select! {
                    result = &mut listen => {
                        result?;
                        break;
                    }
                    message = poll_fn(|cx| connection.poll_message(cx)) => {
                        if let Some(n) = notification(message)? {
                            early.push(n);
                        }
                    }
                }
            }
        }
        let event = if self.listened {
            tracing::info!("listen connection re-established");
            ListenEvent::Reconnected
        } else {
            ListenEvent::Listening
        };
        self.listened = true;
        self.up = true;
        self.emit(event)?;
        for n in early {
            self.emit(ListenEvent::Notification(n))?;
        }
        let period = self.options.ping_interval;
        let mut ping_timer = tokio::time::interval_at(Instant::now() + period, period);
        let mut ping: Option<Ping<'_>> = None;
        // A handle of our own: a permit borrows it while `emit` borrows `self`.
        let tx = self.tx.clone();
        loop {
            tokio::select! {
                message = poll_fn(|cx| connection.poll_message(cx)) => {
                    if let Some(n) = notification(message)? {
                        self.emit(ListenEvent::Notification(n))?;
                    }
                }
                permit = tx.reserve(), if self.owed.any() => {
                    let permit = permit.map_err(|_| End::Stopped)?;
                    if let Some(event) = self.owed.take() {
                        permit.send(event);
                    }
                }
                _ = ping_timer.tick(), if ping.is_none() => {
                    let check = client.batch_execute("SELECT 1");
                    ping = Some(Box::pin(tokio::time::timeout(self.options.ping_timeout, check)));
                }
                result = async { ping.as_mut().expect("in flight").await }, if ping.is_some() => {
                    ping = None;
                    result.map_err(|_| End::Lost(Failure::PingTimeout))??;
                }
            }
        }
    }

    /// Hands an event over without waiting: folded when the queue is full (or when older
    /// events are already owed, to keep the order).
    fn emit(&mut self, event: ListenEvent) -> Result<(), End> {
        if self.owed.any() {
            self.owed.fold(event);
            return Ok(());
        }
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(event)) => {
                tracing::debug!("listen consumer is slow, folding notifications");
                self.owed.fold(event);
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(End::Stopped),
        }
    }
}

/// The notification in a connection message, if it is one; an error when the connection
/// failed or closed.
fn notification(
    message: Option<Result<AsyncMessage, tokio_postgres::Error>>,
) -> Result<Option<Notification>, End> {
    match message {
        Some(Ok(AsyncMessage::Notification(n))) => Ok(Some(Notification {
            channel: n.channel().to_string(),
            payload: n.payload().to_string(),
        })),
        Some(Ok(_)) => Ok(None),
        Some(Err(err)) => Err(err.into()),
        None => Err(End::Lost(Failure::Closed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_events_come_out_oldest_first_and_folded() {
        let mut owed = Owed::default();
        assert!(!owed.any());
        assert_eq!(owed.take(), None);
        owed.fold(ListenEvent::Listening);
        for _ in 0..3 {
            owed.fold(ListenEvent::Notification(Notification {
                channel: "c".into(),
                payload: "p".into(),
            }));
        }
        owed.fold(ListenEvent::Reconnected);
        owed.fold(ListenEvent::Lagged { missed: 2 });
        assert!(owed.any());
        assert_eq!(owed.take(), Some(ListenEvent::Listening));
        assert_eq!(owed.take(), Some(ListenEvent::Reconnected));
        assert_eq!(owed.take(), Some(ListenEvent::Lagged { missed: 5 }));
        assert_eq!(owed.take(), None);
        assert!(!owed.any());
    }
}
