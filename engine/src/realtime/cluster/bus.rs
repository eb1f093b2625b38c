//! The channel [`Bus`] across instances: broadcasts and presence diffs travel on the
//! channels stream (every instance reads every entry once and delivers it to its own
//! members: a broadcast reaches each subscriber once, the sender's instance included);
//! presence state is a hash per channel, each value naming the instance that tracked it.
//!
//! Each instance refreshes a heartbeat key (TTL: `realtime.leader_failover_timeout`) and
//! records its presences in a set; every instance sweeps the instances whose heartbeat
//! expired, removes their presences (one sweeper wins each, by `HDEL`) and publishes the
//! leaves. A dead instance's presences leave within about 1⅓ of the timeout.

use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

use actix::Recipient;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Cluster, wire};
use crate::realtime::auth::BoxFuture;
use crate::realtime::channels::{Bus, BusError, ChannelEvent, ChannelEventKind, Deliver, Presence};

/// Events waiting for the writer; beyond, publishing drops and counts (never blocks).
const WRITE_QUEUE: usize = 65_536;
/// Bound of the channels stream (entries; trimmed approximately).
const CHANNELS_MAX_LEN: u64 = 100_000;

/// KEYS: presence hash, instance's presence set. ARGV: key, value, set member.
const TRACK: &str = r"
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return prev
";

/// KEYS: presence hash, instance's presence set. ARGV: key, set member, instance.
/// Removes the key only if this instance tracked it.
const UNTRACK: &str = r"
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if prev and cjson.decode(prev)['i'] == ARGV[3] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return prev
end
return false
";

/// The bus over Redis.
pub struct RedisBus {
    cluster: Cluster,
    instance: String,
    /// The channels actor (replaced when it restarts). A std lock: never held across
    /// `.await`.
    sink: Arc<RwLock<Option<Recipient<Deliver>>>>,
    writer: mpsc::Sender<Arc<ChannelEvent>>,
    /// Taken by the writer task when it starts.
    queue: std::sync::Mutex<Option<mpsc::Receiver<Arc<ChannelEvent>>>>,
    started: Once,
    track: Arc<redis::Script>,
    untrack: Arc<redis::Script>,
    /// Presence commands' connection. A tokio lock: held across a command.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl RedisBus {
    /// The bus of `instance` in `cluster`; its tasks start when the channels actor
    /// attaches.
    pub fn new(cluster: Cluster, instance: String) -> RedisBus {
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        RedisBus {
            cluster,
            instance,
            sink: Arc::default(),
            writer,
            queue: std::sync::Mutex::new(Some(queue)),
            started: Once::new(),
            track: Arc::new(redis::Script::new(TRACK)),
            untrack: Arc::new(redis::Script::new(UNTRACK)),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    fn presence_key(&self, channel: &str) -> String {
        self.cluster.key(&format!("presence:{channel}"))
    }

    fn owned_key(&self, instance: &str) -> String {
        self.cluster.key(&format!("instance:{instance}:presence"))
    }

    fn member(channel: &str, key: &str) -> String {
        serde_json::to_string(&(channel, key)).expect("strings serialize")
    }

    /// The presence connection (a clone of the shared multiplexed one), opened when
    /// missing.
    async fn conn(&self) -> Result<MultiplexedConnection, BusError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .cluster
            .connect(false)
            .await
            .map_err(|err| BusError::Unavailable(err.to_string()))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A command failed: the next one reconnects.
    async fn failed(&self, err: redis::RedisError) -> BusError {
        *self.conn.lock().await = None;
        BusError::Unavailable(err.to_string())
    }

    fn start_tasks(&self) {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("started once");
        tokio::spawn(write(self.cluster.clone(), queue));
        tokio::spawn(read(self.cluster.clone(), self.sink.clone()));
        tokio::spawn(heartbeat(
            self.cluster.clone(),
            self.instance.clone(),
            self.writer.clone(),
        ));
    }
}

/// A stored presence value: the instance that tracked it and the state.
fn stored(instance: &str, state: &Value) -> String {
    serde_json::json!({"i": instance, "s": state}).to_string()
}

/// The state of a stored presence value.
fn state_of(stored: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(stored).ok()?;
    Some(value.get_mut("s")?.take())
}

impl Bus for RedisBus {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn attach(&self, sink: Recipient<Deliver>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        self.started.call_once(|| self.start_tasks());
    }

    fn publish(&self, event: Arc<ChannelEvent>) {
        if self.writer.try_send(event).is_err() {
            tracing::warn!("realtime bus write queue full; channel event dropped");
            metrics::counter!("fluxbase_realtime_messages_dropped_total").increment(1);
        }
    }

    fn track<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<Option<Value>, BusError>> {
        Box::pin(async move {
            let (hash, owned) = (self.presence_key(channel), self.owned_key(&self.instance));
            let (value, member) = (stored(&self.instance, &state), Self::member(channel, key));
            let mut conn = self.conn().await?;
            let previous: Option<String> = match self
                .track
                .key(&hash)
                .key(&owned)
                .arg(key)
                .arg(&value)
                .arg(&member)
                .invoke_async(&mut conn)
                .await
            {
                Ok(previous) => previous,
                Err(err) => return Err(self.failed(err).await),
            };
            Ok(previous.as_deref().and_then(state_of))
        })
    }

    fn untrack<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BusError>> {
        Box::pin(async move {
            let (hash, owned) = (self.presence_key(channel), self.owned_key(&self.instance));
            let member = Self::member(channel, key);
            let mut conn = self.conn().await?;
            let previous: Option<String> = match self
                .untrack
                .key(&hash)
                .key(&owned)
                .arg(key)
                .arg(&member)
                .arg(&self.instance)
                .invoke_async(&mut conn)
                .await
            {
                Ok(previous) => previous,
                Err(err) => return Err(self.failed(err).await),
            };
            Ok(previous.as_deref().and_then(state_of))
        })
    }

    fn presence<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<Presence>, BusError>> {
        Box::pin(async move {
            let hash = self.presence_key(channel);
            let mut conn = self.conn().await?;
            let mut all: Vec<(String, String)> = match redis::cmd("HGETALL")
                .arg(&hash)
                .query_async(&mut conn)
                .await
            {
                Ok(all) => all,
                Err(err) => return Err(self.failed(err).await),
            };
            all.sort();
            Ok(all
                .into_iter()
                .filter_map(|(key, value)| state_of(&value).map(|state| Presence { key, state }))
                .collect())
        })
    }
}

/// The writer task: appends published events to the channels stream, in order.
async fn write(cluster: Cluster, mut queue: mpsc::Receiver<Arc<ChannelEvent>>) {
    let key = cluster.key("channels");
    let mut conn: Option<MultiplexedConnection> = None;
    while let Some(event) = queue.recv().await {
        let (meta, payload) = wire::encode_channel_event(&event);
        let mut delay = Duration::from_millis(50);
        // A channel event is worth a few retries, not an unbounded wait: broadcasts are
        // fire-and-forget in every realtime protocol.
        for _ in 0..8 {
            if conn.is_none() {
                conn = cluster.connect(false).await.ok();
            }
            let Some(c) = conn.as_mut() else {
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            };
            let sent: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(CHANNELS_MAX_LEN)
                .arg("*")
                .arg("m")
                .arg(&meta)
                .arg("p")
                .arg(&payload)
                .query_async(c)
                .await;
            match sent {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "channel event not appended to the realtime bus; retrying");
                    conn = None;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
}

/// The reader task: delivers every channels-stream entry to this instance's channels actor.
async fn read(cluster: Cluster, sink: Arc<RwLock<Option<Recipient<Deliver>>>>) {
    let key = cluster.key("channels");
    let mut last: Option<String> = None;
    loop {
        let mut conn = match cluster.connect(true).await {
            Ok(conn) => conn,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if last.is_none() {
            let tail: redis::RedisResult<StreamRangeReply> = redis::cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await;
            match tail {
                Ok(reply) => {
                    last = Some(reply.ids.first().map_or("0-0".into(), |e| e.id.clone()));
                    cluster.shared.channels_ready.send_replace(true);
                }
                Err(_) => continue,
            }
        }
        loop {
            let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(512)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&key)
                .arg(last.as_deref().expect("positioned above"))
                .query_async(&mut conn)
                .await;
            let Ok(reply) = reply else { break };
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                let meta: Option<Vec<u8>> = entry.get("m");
                let payload: Vec<u8> = entry.get("p").unwrap_or_default();
                match meta
                    .as_deref()
                    .map(|m| wire::decode_channel_event(m, payload))
                {
                    Some(Ok(event)) => {
                        if let Some(sink) = sink.read().unwrap_or_else(|e| e.into_inner()).as_ref()
                        {
                            sink.do_send(Deliver(event));
                        }
                    }
                    _ => tracing::error!(id = %entry.id, "unreadable channel event skipped"),
                }
                last = Some(entry.id);
            }
        }
    }
}

/// The heartbeat task: keeps this instance's key alive, and reaps the presences of
/// instances whose key expired.
async fn heartbeat(cluster: Cluster, instance: String, events: mpsc::Sender<Arc<ChannelEvent>>) {
    let ttl = cluster
        .options()
        .failover_timeout
        .max(Duration::from_secs(1));
    let period = ttl / 3;
    let instances = cluster.key("instances");
    let mut conn: Option<MultiplexedConnection> = None;
    loop {
        if conn.is_none() {
            conn = cluster.connect(false).await.ok();
        }
        if let Some(c) = conn.as_mut()
            && let Err(err) = beat(&cluster, c, &instance, &instances, ttl, &events).await
        {
            tracing::debug!(error = %err, "realtime presence heartbeat failed");
            conn = None;
        }
        tokio::time::sleep(period).await;
    }
}

/// One heartbeat and sweep.
async fn beat(
    cluster: &Cluster,
    conn: &mut MultiplexedConnection,
    instance: &str,
    instances: &str,
    ttl: Duration,
    events: &mpsc::Sender<Arc<ChannelEvent>>,
) -> redis::RedisResult<()> {
    let alive = |id: &str| cluster.key(&format!("instance:{id}"));
    redis::pipe()
        .cmd("SET")
        .arg(alive(instance))
        .arg(1)
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .ignore()
        .cmd("SADD")
        .arg(instances)
        .arg(instance)
        .ignore()
        .query_async::<()>(conn)
        .await?;
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(instances)
        .query_async(conn)
        .await?;
    for other in members.iter().filter(|id| *id != instance) {
        let exists: bool = redis::cmd("EXISTS")
            .arg(alive(other))
            .query_async(conn)
            .await?;
        if exists {
            continue;
        }
        let owned = cluster.key(&format!("instance:{other}:presence"));
        let tracked: Vec<String> = redis::cmd("SMEMBERS").arg(&owned).query_async(conn).await?;
        let reap = redis::Script::new(UNTRACK);
        for member in tracked {
            let Ok((channel, key)) = serde_json::from_str::<(String, String)>(&member) else {
                continue;
            };
            let previous: Option<String> = reap
                .key(cluster.key(&format!("presence:{channel}")))
                .key(&owned)
                .arg(&key)
                .arg(&member)
                .arg(other)
                .invoke_async(conn)
                .await?;
            if let Some(state) = previous.as_deref().and_then(state_of) {
                let event = ChannelEvent::new(
                    Arc::from(channel),
                    ChannelEventKind::PresenceDiff {
                        joins: Vec::new(),
                        leaves: vec![Presence { key, state }],
                    },
                    None,
                );
                let _ = events.try_send(event);
            }
        }
        tracing::info!(instance = %other, "reaped the presences of an instance that stopped beating");
        redis::pipe()
            .cmd("DEL")
            .arg(&owned)
            .ignore()
            .cmd("SREM")
            .arg(instances)
            .arg(other)
            .ignore()
            .query_async::<()>(conn)
            .await?;
    }
    Ok(())
}
