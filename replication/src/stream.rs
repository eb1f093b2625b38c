//! The replication loop: connect, prepare publication and slot, stream, deliver whole
//! transactions with backpressure, report acknowledged LSNs, reconnect with backoff.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep, timeout};
use tracing::{debug, error, info, warn};

use crate::catalog;
use crate::config::{Plugin, ReplicationConfig};
use crate::connection::{self, Connection};
use crate::error::{ReplicationError, Result};
use crate::handle::{ReplicationHandle, ReplicationStatus, Shared};
use crate::lsn::Lsn;
use crate::metrics;
use crate::pgoutput;
use crate::pgoutput::message::PgOutputMessage;
use crate::protocol::{ServerFrame, standby_status_update};
use crate::publication;
use crate::slot;
use crate::transaction::Transaction;
use crate::wal2json::{self, Wal2JsonMessage};

/// First server version whose pgoutput can send logical messages.
const MESSAGES_VERSION: u32 = 140_000;

/// Starts streaming in background tasks. Returns the control handle and the receiving end
/// of the bounded transaction channel. Must be called inside a tokio runtime.
pub fn start(
    config: ReplicationConfig,
) -> Result<(ReplicationHandle, mpsc::Receiver<Transaction>)> {
    config.validate()?;
    let (tx, rx) = mpsc::channel(config.channel_capacity);
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        acked: AtomicU64::new(0),
        restart: Default::default(),
        shutdown,
        status: watch::channel(ReplicationStatus {
            slot: config.slot_name.clone(),
            plugin: config.plugin.as_str(),
            publication: config.publication_name.clone(),
            connected: false,
            acknowledged_lsn: Lsn::ZERO,
            confirmed_lsn: None,
            lag_bytes: None,
            degraded: true,
            last_error: None,
            reconnects: 0,
        })
        .0,
        max_lag_bytes: config.max_lag_bytes,
        tasks: Mutex::new(Vec::new()),
    });
    let config = Arc::new(config);
    let stream = tokio::spawn(run(config.clone(), shared.clone(), tx));
    let sampler = tokio::spawn(sample_lag(config, shared.clone()));
    shared
        .tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend([stream, sampler]);
    Ok((ReplicationHandle { shared }, rx))
}

/// The decoder of the configured plugin; both assemble the same transactions.
enum Decoder {
    /// pgoutput protocol 1.
    Pgoutput(pgoutput::Decoder),
    /// wal2json format version 2.
    Wal2json(wal2json::Decoder),
}

impl Decoder {
    /// A fresh decoder for `plugin`.
    fn new(plugin: Plugin) -> Self {
        match plugin {
            Plugin::Pgoutput => Decoder::Pgoutput(pgoutput::Decoder::new()),
            Plugin::Wal2json => Decoder::Wal2json(wal2json::Decoder::new()),
        }
    }

    /// Whether a transaction is open (Begin seen, Commit not yet).
    fn in_transaction(&self) -> bool {
        match self {
            Decoder::Pgoutput(d) => d.in_transaction(),
            Decoder::Wal2json(d) => d.in_transaction(),
        }
    }

    /// Forgets session state before a new session.
    fn reset(&mut self) {
        match self {
            Decoder::Pgoutput(d) => d.reset(),
            Decoder::Wal2json(d) => d.reset(),
        }
    }
}

/// How a session ended without error.
enum SessionEnd {
    /// Shutdown was requested.
    Shutdown,
    /// A restart was requested.
    Restart,
}

/// Reconnect loop around [`session`].
async fn run(config: Arc<ReplicationConfig>, shared: Arc<Shared>, tx: mpsc::Sender<Transaction>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut decoder = Decoder::new(config.plugin);
    let mut backoff = config.backoff_min;
    // End LSN of the last transaction put in the channel. The channel outlives sessions, so
    // a new session skips up to here: within one process every transaction arrives once.
    let mut delivered = Lsn::ZERO;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut streamed = false;
        let result = session(
            &config,
            &shared,
            &tx,
            &mut decoder,
            &mut shutdown,
            &mut streamed,
            &mut delivered,
        )
        .await;
        shared.update(|s| s.connected = false);
        metrics::record_connected(false);
        if streamed {
            backoff = config.backoff_min;
        }
        match result {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Restart) => {
                info!(slot = %config.slot_name, "replication restart requested");
                metrics::record_reconnect();
                shared.update(|s| s.reconnects += 1);
            }
            Err(err) if !err.is_retryable() => {
                error!(slot = %config.slot_name, kind = err.kind(), error = %err.chain(), "replication stopped");
                shared.update(|s| s.last_error = Some(format!("{}: {}", err.kind(), err.chain())));
                break;
            }
            Err(err) => {
                if let ReplicationError::Decode { lsn, source } = &err {
                    metrics::record_decode_error();
                    warn!(slot = %config.slot_name, lsn = %lsn, error = %source, "undecodable wal message");
                }
                warn!(slot = %config.slot_name, kind = err.kind(), error = %err.chain(), retry_in_ms = backoff.as_millis() as u64, "replication session failed");
                metrics::record_reconnect();
                shared.update(|s| {
                    s.reconnects += 1;
                    s.last_error = Some(format!("{}: {}", err.kind(), err.chain()));
                });
                tokio::select! {
                    _ = sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                    _ = shared.restart.notified() => {}
                }
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
    debug!(slot = %config.slot_name, "replication stream stopped");
}

/// Per-session streaming state.
struct Session<'a> {
    /// The walsender connection.
    conn: Connection,
    /// A normal connection for catalog lookups, opened when first needed.
    side: Option<Connection>,
    /// Configuration.
    config: &'a ReplicationConfig,
    /// Highest WAL position received.
    received: Lsn,
    /// End LSN of the last transaction handed to the channel (in any session).
    delivered: Lsn,
}

impl Session<'_> {
    /// Sends a standby status update. Flush is what the consumer acknowledged; when nothing
    /// is outstanding (every delivered transaction acknowledged, none half-received) the
    /// received position is flushed too, so idle or filtered WAL does not pile up.
    async fn send_status(&mut self, shared: &Shared, decoder: &Decoder) -> Result<()> {
        let acked = shared.acked();
        let flush = if !decoder.in_transaction() && acked >= self.delivered {
            acked.max(self.received)
        } else {
            acked
        };
        let write = self.received.max(flush);
        self.conn
            .send_copy_data(&standby_status_update(write, flush, flush))
            .await
    }

    /// The catalog connection.
    async fn side(&mut self) -> Result<&mut Connection> {
        match &mut self.side {
            Some(conn) => Ok(conn),
            side => Ok(side.insert(open(self.config, "catalog connect").await?)),
        }
    }
}

/// One connection's life: setup, then stream until error, shutdown or restart.
async fn session(
    config: &ReplicationConfig,
    shared: &Shared,
    tx: &mpsc::Sender<Transaction>,
    decoder: &mut Decoder,
    shutdown: &mut watch::Receiver<bool>,
    streamed: &mut bool,
    delivered: &mut Lsn,
) -> Result<SessionEnd> {
    let setup = async {
        let mut conn = timeout(
            config.connect_timeout,
            connection::connect(&config.connection, true),
        )
        .await
        .map_err(|_| ReplicationError::Timeout("replication connect"))??;
        timeout(config.connect_timeout, async {
            publication::refresh(&mut conn, config).await?;
            slot::ensure(&mut conn, config).await
        })
        .await
        .map_err(|_| ReplicationError::Timeout("slot and publication setup"))??;
        Ok::<_, ReplicationError>(conn)
    };
    // Shutdown must not wait for a slow connect: nothing is in flight yet.
    let mut conn = tokio::select! {
        conn = setup => conn?,
        _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
    };
    decoder.reset();

    let start_lsn = shared.acked();
    let options = match config.plugin {
        Plugin::Pgoutput => {
            let mut options = format!(
                "proto_version '1', publication_names '{}'",
                config.publication_name
            );
            if conn.server_version_num() >= MESSAGES_VERSION {
                options.push_str(", messages 'true'");
            }
            options
        }
        Plugin::Wal2json => wal2json::start_options(config),
    };
    conn.start_copy_both(&format!(
        "START_REPLICATION SLOT {} LOGICAL {start_lsn} ({options})",
        config.slot_name
    ))
    .await?;
    *streamed = true;
    info!(slot = %config.slot_name, start_lsn = %start_lsn, "replication streaming");
    shared.update(|s| {
        s.connected = true;
        s.last_error = None;
    });
    metrics::record_connected(true);

    let mut s = Session {
        conn,
        side: None,
        config,
        received: start_lsn,
        delivered: *delivered,
    };
    let mut status_tick = status_interval(config.status_interval);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(finish(s, shared, decoder, SessionEnd::Shutdown).await),
            _ = shared.restart.notified() => return Ok(finish(s, shared, decoder, SessionEnd::Restart).await),
            _ = status_tick.tick() => s.send_status(shared, decoder).await?,
            data = s.conn.next_copy_data() => {
                let data = data?.ok_or_else(|| ReplicationError::Protocol("server ended the copy stream".into()))?;
                let frame = ServerFrame::parse(data).map_err(|source| ReplicationError::Decode { lsn: s.received, source })?;
                match frame {
                    ServerFrame::Keepalive { wal_end, reply } => {
                        s.received = s.received.max(wal_end);
                        if reply {
                            s.send_status(shared, decoder).await?;
                        }
                    }
                    ServerFrame::XLogData { wal_start, data, .. } => {
                        s.received = s.received.max(wal_start);
                        let done = match decoder {
                            Decoder::Pgoutput(decoder) => decode_pgoutput(&mut s, decoder, wal_start, data).await?,
                            Decoder::Wal2json(decoder) => decode_wal2json(&mut s, decoder, wal_start, &data).await?,
                        };
                        if let Some(transaction) = done {
                            if transaction.end_lsn <= shared.acked().max(s.delivered) {
                                debug!(end_lsn = %transaction.end_lsn, "skipping already delivered transaction");
                                continue;
                            }
                            let end_lsn = transaction.end_lsn;
                            metrics::record_transaction(&transaction);
                            if let Some(end) = deliver(&mut s, shared, decoder, tx, transaction, shutdown, &mut status_tick).await? {
                                return Ok(finish(s, shared, decoder, end).await);
                            }
                            s.delivered = end_lsn;
                            *delivered = end_lsn;
                        }
                    }
                }
            }
        }
    }
}

/// Decodes one pgoutput message, looking up what a Relation message does not carry (base
/// types of user types, the primary key).
async fn decode_pgoutput(
    s: &mut Session<'_>,
    decoder: &mut pgoutput::Decoder,
    wal_start: Lsn,
    data: Bytes,
) -> Result<Option<Transaction>> {
    let message = PgOutputMessage::parse(data).map_err(|source| ReplicationError::Decode {
        lsn: wal_start,
        source,
    })?;
    let primary_key = match &message {
        PgOutputMessage::Relation(body) => {
            let missing = decoder.types().missing(body);
            let side = s.side().await?;
            if !missing.is_empty() {
                catalog::resolve_types(side, decoder.types_mut(), missing).await?;
            }
            Some(catalog::primary_key(side, body.id).await?)
        }
        _ => None,
    };
    decoder
        .apply(wal_start, message, primary_key.as_deref())
        .map_err(|source| ReplicationError::Decode {
            lsn: wal_start,
            source,
        })
}

/// Decodes one wal2json message, looking up the table (shape, publication membership) and
/// user types the message names when the decoder does not know them yet.
async fn decode_wal2json(
    s: &mut Session<'_>,
    decoder: &mut wal2json::Decoder,
    wal_start: Lsn,
    data: &[u8],
) -> Result<Option<Transaction>> {
    let message = Wal2JsonMessage::parse(data).map_err(|source| ReplicationError::Decode {
        lsn: wal_start,
        source,
    })?;
    let now = std::time::Instant::now();
    let table = match decoder.needs_table(&message, now, s.config.lag_interval) {
        Some((schema, table)) => {
            let publication = &s.config.publication_name;
            let info = catalog::table(s.side().await?, publication, schema, table).await?;
            Some((schema, table, info))
        }
        None => None,
    };
    let missing = decoder.missing_types(
        &message,
        table.as_ref().and_then(|(_, _, info)| info.as_ref()),
    );
    if !missing.is_empty() {
        catalog::resolve_types(s.side().await?, decoder.types_mut(), missing).await?;
    }
    if let Some((schema, table, info)) = table {
        decoder.insert_table(schema, table, info, now);
    }
    decoder
        .apply(wal_start, message)
        .map_err(|source| ReplicationError::Decode {
            lsn: wal_start,
            source,
        })
}

/// Hands a transaction to the channel, waiting while it is full. While waiting, status
/// updates keep the walsender from timing us out; nothing more is read from the socket, so
/// the server is slowed by TCP backpressure rather than our memory growing.
async fn deliver(
    s: &mut Session<'_>,
    shared: &Shared,
    decoder: &Decoder,
    tx: &mpsc::Sender<Transaction>,
    transaction: Transaction,
    shutdown: &mut watch::Receiver<bool>,
    status_tick: &mut Interval,
) -> Result<Option<SessionEnd>> {
    let mut waiting_since: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            permit = tx.reserve() => {
                let permit = permit.map_err(|_| ReplicationError::ReceiverClosed)?;
                permit.send(transaction);
                if let Some(since) = waiting_since {
                    info!(slot = %s.config.slot_name, waited_ms = since.elapsed().as_millis() as u64, "consumer caught up");
                }
                return Ok(None);
            }
            _ = shutdown.changed() => return Ok(Some(SessionEnd::Shutdown)),
            _ = shared.restart.notified() => return Ok(Some(SessionEnd::Restart)),
            _ = status_tick.tick() => {
                if waiting_since.is_none() {
                    waiting_since = Some(Instant::now());
                    info!(slot = %s.config.slot_name, "consumer slow: stream paused");
                }
                s.send_status(shared, decoder).await?;
            }
        }
    }
}

/// Ends a session politely: a last status update, then CopyDone and Terminate.
async fn finish(
    mut s: Session<'_>,
    shared: &Shared,
    decoder: &Decoder,
    end: SessionEnd,
) -> SessionEnd {
    let _ = s.send_status(shared, decoder).await;
    s.conn.close(true).await;
    if let Some(side) = s.side.take() {
        side.close(false).await;
    }
    end
}

/// A ticker for status updates whose first tick is one period away.
fn status_interval(period: Duration) -> Interval {
    let mut tick = interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Samples slot lag and refreshes the publication (new tables) until shutdown.
async fn sample_lag(config: Arc<ReplicationConfig>, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut conn: Option<Connection> = None;
    let mut tick = tokio::time::interval(config.lag_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(err) = sample_once(&config, &shared, &mut conn).await {
            debug!(slot = %config.slot_name, kind = err.kind(), error = %err.chain(), "lag sample failed");
            conn = None;
        }
    }
    if let Some(conn) = conn {
        conn.close(false).await;
    }
}

/// One lag sample.
async fn sample_once(
    config: &ReplicationConfig,
    shared: &Shared,
    conn: &mut Option<Connection>,
) -> Result<()> {
    let c = match conn {
        Some(c) => c,
        empty => empty.insert(open(config, "lag sampler connect").await?),
    };
    if shared.status.borrow().connected {
        publication::refresh(c, config).await?;
    }
    if let Some((confirmed, lag)) = catalog::slot_lag(c, &config.slot_name).await? {
        metrics::record_lag(lag);
        shared.update(|s| {
            s.confirmed_lsn = Some(confirmed);
            s.lag_bytes = Some(lag);
        });
    }
    Ok(())
}

/// Opens a normal (non-replication) connection for catalog queries, within the timeout.
async fn open(config: &ReplicationConfig, what: &'static str) -> Result<Connection> {
    timeout(
        config.connect_timeout,
        connection::connect(&config.connection, false),
    )
    .await
    .map_err(|_| ReplicationError::Timeout(what))?
}
