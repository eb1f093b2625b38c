//! The changes stream: the leader appends each transaction ([`Appender`]); every instance
//! reads it from its last position and fans out ([`read`]).
//!
//! Entries are `lsn` (the transaction's end LSN, 16 upper-case hex digits: text order is
//! LSN order), `seq` (contiguous from 1) and `tx` ([`super::wire`]). The append script
//! takes the transactions waiting at the leader in one call (one round trip for a burst)
//! and skips an LSN at or below the last one appended: a new leader re-reading what the old
//! one appended but had not acknowledged appends nothing twice, and a leader that lost its
//! lock without knowing it cannot append out of order.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::Addr;
use fluxbase_replication::{Lsn, Transaction};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::Cluster;
use super::wire;
use crate::realtime::connection::{CloseReason, close};
use crate::realtime::engine::Engine;
use crate::realtime::pipeline::{Dispatcher, dispatch};

/// KEYS: stream, last-LSN key, sequence key. ARGV: max length, then (lsn, tx) pairs in
/// commit order. Returns how many were appended.
const APPEND: &str = r"
local appended = 0
for i = 2, #ARGV, 2 do
  local last = redis.call('GET', KEYS[2])
  if not (last and last >= ARGV[i]) then
    local seq = redis.call('INCR', KEYS[3])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'lsn', ARGV[i], 'seq', seq, 'tx', ARGV[i + 1])
    redis.call('SET', KEYS[2], ARGV[i])
    appended = appended + 1
  end
end
return appended
";

/// Entries read per XREAD.
const READ_COUNT: usize = 256;
/// How long one XREAD blocks (the reader wakes for shutdown and restarts in between).
const BLOCK_MS: usize = 1000;

/// The LSN as entry text.
fn lsn_text(lsn: Lsn) -> String {
    format!("{:016X}", lsn.0)
}

/// The leader's side: appends transactions; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    cluster: Cluster,
    script: Arc<redis::Script>,
    /// One connection, re-opened after a failure. A tokio lock: held across the append.
    conn: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
}

impl Appender {
    /// An appender for `cluster`'s changes stream.
    pub fn new(cluster: Cluster) -> Appender {
        Appender {
            cluster,
            script: Arc::new(redis::Script::new(APPEND)),
            conn: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Until Redis holds every transaction of `batch` (commit order; appended now, or
    /// before: then not again). Retries with backoff while Redis is unreachable: the slot
    /// is not acknowledged meanwhile, so nothing is lost.
    pub async fn append(&self, batch: &[Arc<Transaction>]) {
        let Some(last) = batch.last() else {
            return;
        };
        let entries: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|tx| (lsn_text(tx.end_lsn), wire::encode_transaction(tx)))
            .collect();
        let mut delay = Duration::from_millis(50);
        loop {
            match self.try_append(&entries).await {
                Ok(appended) => {
                    metrics::counter!("fluxbase_bus_published_total").increment(appended);
                    self.cluster.update(|s| s.published += appended);
                    if (appended as usize) < batch.len() {
                        tracing::info!(
                            skipped = batch.len() - appended as usize,
                            "transactions already on the bus (appended before a failover)"
                        );
                    }
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, lsn = %last.end_lsn, "cannot append to the realtime bus; retrying before acknowledging the slot");
                    *self.conn.lock().await = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn try_append(&self, entries: &[(String, Vec<u8>)]) -> redis::RedisResult<u64> {
        let mut conn = {
            let mut guard = self.conn.lock().await;
            if guard.is_none() {
                *guard = Some(self.cluster.connect(false).await?);
            }
            guard.as_ref().expect("connected above").clone()
        };
        let mut invocation = self.script.key(self.cluster.key("changes"));
        invocation
            .key(self.cluster.key("changes:lsn"))
            .key(self.cluster.key("changes:seq"))
            .arg(self.cluster.options().stream_max_len);
        for (lsn, data) in entries {
            invocation.arg(lsn).arg(data);
        }
        invocation.invoke_async(&mut conn).await
    }
}

/// Where this instance's reader is: kept across the reader's restarts.
#[derive(Debug, Default)]
pub(crate) struct Position {
    /// The last entry id read (`None`: not positioned yet, start from the tail).
    id: Option<String>,
    /// Its `seq` (0: none yet).
    seq: u64,
    /// The highest end LSN fanned out.
    lsn: Lsn,
}

/// Resolves once shutdown begins.
async fn shutting_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The reader loop, until shutdown: reads the stream from the last position and has the
/// dispatcher fan each new transaction out to this instance's sockets.
pub(crate) async fn read(
    engine: Engine,
    cluster: Cluster,
    dispatcher: Addr<Dispatcher>,
    position: Arc<tokio::sync::Mutex<Position>>,
) {
    let mut shutdown = engine.shutdown_signal();
    let mut position = position.lock().await;
    let key = cluster.key("changes");
    let mut delay = Duration::from_millis(100);
    loop {
        let conn = tokio::select! {
            conn = cluster.connect(true) => conn,
            _ = shutting_down(&mut shutdown) => return,
        };
        let mut conn = match conn {
            Ok(conn) => conn,
            Err(err) => {
                cluster.set_connected(false);
                tracing::debug!(error = %err, "realtime bus unreachable");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutting_down(&mut shutdown) => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if position.id.is_none() {
            match tail(&mut conn, &key).await {
                Ok(tail) => {
                    *position = tail;
                    cluster.shared.reader_ready.send_replace(true);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the realtime bus's tail; retrying");
                    continue;
                }
            }
        }
        cluster.set_connected(true);
        delay = Duration::from_millis(100);
        loop {
            let last = position.id.clone().expect("positioned above");
            let reply = tokio::select! {
                reply = xread(&mut conn, &key, &last) => reply,
                _ = shutting_down(&mut shutdown) => return,
                () = cluster.shared.restart.notified() => {
                    tracing::info!("realtime bus reader restarting");
                    break;
                }
            };
            let entries = match reply {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::warn!(error = %err, "realtime bus read failed; reconnecting");
                    cluster.set_connected(false);
                    break;
                }
            };
            if entries.is_empty() {
                // Caught up and idle: nothing waits for this instance.
                metrics::gauge!("fluxbase_bus_lag_seconds").set(0.0);
                cluster.update(|s| s.lag_seconds = 0.0);
            }
            for entry in entries {
                take(&engine, &cluster, &dispatcher, &mut position, entry).await;
            }
        }
    }
}

/// The stream's last entry as a starting position (or the start of an empty stream).
async fn tail(conn: &mut MultiplexedConnection, key: &str) -> redis::RedisResult<Position> {
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(match reply.ids.first() {
        Some(entry) => {
            let (seq, lsn) = numbers(entry);
            Position {
                id: Some(entry.id.clone()),
                seq,
                lsn,
            }
        }
        None => Position {
            id: Some("0-0".into()),
            seq: 0,
            lsn: Lsn::ZERO,
        },
    })
}

/// Entries after `last`, waiting up to [`BLOCK_MS`].
async fn xread(
    conn: &mut MultiplexedConnection,
    key: &str,
    last: &str,
) -> redis::RedisResult<Vec<StreamId>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("BLOCK")
        .arg(BLOCK_MS)
        .arg("STREAMS")
        .arg(key)
        .arg(last)
        .query_async(conn)
        .await?;
    Ok(reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
        .unwrap_or_default())
}

/// An entry's `seq` and `lsn` (0 when unreadable: then it counts as a gap).
fn numbers(entry: &StreamId) -> (u64, Lsn) {
    let seq = entry
        .get::<String>("seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let lsn = entry
        .get::<String>("lsn")
        .and_then(|s| u64::from_str_radix(&s, 16).ok())
        .unwrap_or(0);
    (seq, Lsn(lsn))
}

/// Fans one entry out (unless its LSN was already fanned out); a hole in the numbering
/// closes this instance's sockets first.
async fn take(
    engine: &Engine,
    cluster: &Cluster,
    dispatcher: &Addr<Dispatcher>,
    position: &mut Position,
    entry: StreamId,
) {
    let (seq, lsn) = numbers(&entry);
    if position.seq != 0 && seq != position.seq + 1 {
        tracing::error!(
            expected = position.seq + 1,
            got = seq,
            "realtime bus gap: this instance fell behind the changes stream's retention (or Redis lost entries); closing its sockets"
        );
        metrics::counter!("fluxbase_bus_gaps_total").increment(1);
        engine.close_all(CloseReason {
            code: close::BUS_GAP,
            reason: "realtime fell behind the change stream; reconnect".into(),
            label: "bus_gap",
        });
    }
    position.seq = seq;
    let id = entry.id.clone();
    if lsn > position.lsn {
        let data: Option<Vec<u8>> = entry.get("tx");
        match data.as_deref().map(wire::decode_transaction) {
            Some(Ok(tx)) => {
                dispatch(dispatcher, &Arc::new(tx)).await;
                metrics::counter!("fluxbase_bus_consumed_total").increment(1);
                cluster.update(|s| s.consumed += 1);
            }
            Some(Err(err)) => {
                tracing::error!(error = %err, id = %id, "unreadable realtime bus entry skipped")
            }
            None => tracing::error!(id = %id, "realtime bus entry without a transaction skipped"),
        }
        position.lsn = lsn;
    } else {
        tracing::debug!(lsn = %lsn, "duplicate realtime bus entry skipped");
    }
    let lag = id_millis(&id).map_or(0.0, |ms| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        now.saturating_sub(ms) as f64 / 1000.0
    });
    metrics::gauge!("fluxbase_bus_lag_seconds").set(lag);
    cluster.update(|s| {
        s.lag_seconds = lag;
        s.last_id = Some(id.clone());
    });
    position.id = Some(id);
}

/// The milliseconds part of a stream id (Redis's clock when appended).
fn id_millis(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}
