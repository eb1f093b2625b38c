//! Channels: broadcast and presence between sockets. This instance's memberships live in
//! the [`Channels`] actor (supervised); events travel on a [`Bus`] — in-process here
//! ([`LocalBus`]), Redis Streams across instances later — and come back to every
//! instance's actor, which queues them for its own members.
//!
//! Bounds: `realtime.max_channels_per_connection` joins per socket (explicit, implied by a
//! broadcast or a presence track), `realtime.max_channel_name_length` bytes per name.

pub mod bus;
mod local;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use bytes::Bytes;
use fluxbase_migrations::Code;
use serde_json::Value;

pub use bus::{Bus, BusError, Deliver};
pub use local::LocalBus;

use super::codec::{EventFormat, Frame};
use super::connection::{ConnId, ConnShared, Outbound, PushOutcome, unix_now};
use super::error::RealtimeError;
use super::restart::Restarts;
use crate::supervise::{self, Supervision};

/// The payload of a broadcast: JSON text (validated by the codec that read it, never
/// parsed again by the hub) or bytes (Phoenix vsn 2.0.0 binary broadcasts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A JSON value's text.
    Json(Arc<str>),
    /// Opaque bytes.
    Binary(Bytes),
}

impl Payload {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Json(text) => text.len(),
            Payload::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One presence: its key (a connection id, or a key the client chose) and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    /// The presence key.
    pub key: String,
    /// The tracked state.
    pub state: Value,
}

/// What happened in a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEventKind {
    /// A message to the members.
    Broadcast {
        /// The client's event name.
        event: Arc<str>,
        /// The message.
        payload: Payload,
    },
    /// Presences that joined and left.
    PresenceDiff {
        /// Joined (or changed) presences.
        joins: Vec<Presence>,
        /// Left presences, with the state they had.
        leaves: Vec<Presence>,
    },
}

/// A channel event, shared by every recipient; each protocol's frame is encoded once.
#[derive(Debug)]
pub struct ChannelEvent {
    /// The channel.
    pub channel: Arc<str>,
    /// What happened.
    pub kind: ChannelEventKind,
    /// The connection that sent it, when it must not receive it (broadcast without
    /// `self`).
    pub except: Option<ConnId>,
    /// Frames by format (address of the `&'static dyn EventFormat`). A std lock held only
    /// to look up or insert.
    encoded: Mutex<Vec<(usize, Frame)>>,
}

impl ChannelEvent {
    /// A new event.
    pub fn new(
        channel: Arc<str>,
        kind: ChannelEventKind,
        except: Option<ConnId>,
    ) -> Arc<ChannelEvent> {
        Arc::new(ChannelEvent {
            channel,
            kind,
            except,
            encoded: Mutex::new(Vec::new()),
        })
    }

    /// The event in `format`, encoded on first use.
    pub fn encoded(&self, format: &'static dyn EventFormat) -> Frame {
        let key = format as *const dyn EventFormat as *const () as usize;
        if let Some((_, frame)) = self.lock().iter().find(|(k, _)| *k == key) {
            return frame.clone();
        }
        let frame = format.channel_event(self);
        self.lock().push((key, frame.clone()));
        frame
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(usize, Frame)>> {
        self.encoded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// About how many bytes a frame of it takes.
    pub fn approx_len(&self) -> usize {
        let body = match &self.kind {
            ChannelEventKind::Broadcast { event, payload } => event.len() + payload.len(),
            ChannelEventKind::PresenceDiff { joins, leaves } => (joins.len() + leaves.len()) * 64,
        };
        body + self.channel.len() + 64
    }
}

/// The channel bounds (`realtime.*`).
#[derive(Debug, Clone, Copy)]
pub struct ChannelLimits {
    /// `realtime.max_channels_per_connection`
    pub per_connection: usize,
    /// `realtime.max_channel_name_length`
    pub name_length: usize,
}

impl ChannelLimits {
    /// Checks a channel name: not empty, not longer than the bound.
    pub fn check_name(&self, channel: &str) -> Result<(), RealtimeError> {
        if channel.is_empty() {
            return Err(RealtimeError::new(
                Code::InvalidMessage,
                "channel must not be empty",
            ));
        }
        if channel.len() > self.name_length {
            return Err(RealtimeError::new(
                Code::InvalidMessage,
                format!(
                    "channel name is {} bytes, more than realtime.max_channel_name_length ({})",
                    channel.len(),
                    self.name_length
                ),
            ));
        }
        Ok(())
    }
}

/// A member of a channel on this instance.
#[derive(Debug)]
struct Member {
    conn: Arc<ConnShared>,
    /// The presence key it tracks in this channel, if any.
    presence: Option<String>,
}

/// The channels actor: this instance's memberships; delivers bus events to members.
pub struct Channels {
    bus: Arc<dyn Bus>,
    supervision: Supervision,
    limits: ChannelLimits,
    members: HashMap<Arc<str>, HashMap<u64, Member>>,
    /// Channels of each connection (for the bound and for leaving them all).
    joined: HashMap<u64, HashSet<Arc<str>>>,
    restarts: Restarts,
}

impl Channels {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "realtime.channels";

    /// The actor over `bus`.
    pub fn new(bus: Arc<dyn Bus>, supervision: Supervision, limits: ChannelLimits) -> Channels {
        supervision.register(Self::NAME);
        Channels {
            bus,
            supervision,
            limits,
            members: HashMap::new(),
            joined: HashMap::new(),
            restarts: Restarts::default(),
        }
    }

    /// Adds `conn` to `channel` within the bound; returns whether it was new there.
    fn join(&mut self, conn: &Arc<ConnShared>, channel: &Arc<str>) -> Result<bool, RealtimeError> {
        self.limits.check_name(channel)?;
        let joined = self.joined.entry(conn.seq).or_default();
        if joined.contains(channel) {
            return Ok(false);
        }
        if joined.len() >= self.limits.per_connection {
            return Err(RealtimeError::new(
                Code::TooManySubscriptions,
                format!(
                    "at most {} channels per connection (realtime.max_channels_per_connection)",
                    self.limits.per_connection
                ),
            ));
        }
        joined.insert(channel.clone());
        self.members.entry(channel.clone()).or_default().insert(
            conn.seq,
            Member {
                conn: conn.clone(),
                presence: None,
            },
        );
        Ok(true)
    }

    /// Removes `conn` from `channel`; returns the presence key it tracked there.
    fn leave(&mut self, seq: u64, channel: &str) -> Option<Option<String>> {
        let members = self.members.get_mut(channel)?;
        let member = members.remove(&seq)?;
        if members.is_empty() {
            self.members.remove(channel);
        }
        if let Some(joined) = self.joined.get_mut(&seq) {
            joined.remove(channel);
            if joined.is_empty() {
                self.joined.remove(&seq);
            }
        }
        Some(member.presence)
    }

    /// Untracks `key` in `channel` on the bus and publishes the leave.
    fn untrack_later(&self, ctx: &mut Context<Self>, channel: Arc<str>, key: String) {
        let bus = self.bus.clone();
        ctx.spawn(
            async move {
                match bus.untrack(&channel, &key).await {
                    Ok(Some(state)) => bus.publish(ChannelEvent::new(
                        channel,
                        ChannelEventKind::PresenceDiff {
                            joins: Vec::new(),
                            leaves: vec![Presence { key, state }],
                        },
                        None,
                    )),
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %err, "presence leave not recorded"),
                }
            }
            .into_actor(self),
        );
    }

    /// Queues `event` for this instance's members of its channel; returns how many.
    fn deliver(&self, event: &Arc<ChannelEvent>) -> usize {
        let Some(members) = self.members.get(&event.channel) else {
            return 0;
        };
        let now = unix_now();
        let mut sent = 0;
        for member in members.values() {
            if event.except.as_ref() == Some(&member.conn.id) || member.conn.expired_at(now) {
                continue;
            }
            if member.conn.push(Outbound::Channel(event.clone())) == PushOutcome::Queued {
                sent += 1;
            }
        }
        metrics::counter!("fluxbase_realtime_messages_sent_total").increment(sent as u64);
        sent
    }

    /// Runs `f` over the actor; a panic is logged, counted, and restarts the actor.
    fn guarded<R>(
        &mut self,
        ctx: &mut Context<Self>,
        what: &str,
        f: impl FnOnce(&mut Self) -> R,
    ) -> Option<R> {
        match supervise::catch(|| f(self)) {
            Ok(r) => Some(r),
            Err(panic) => {
                self.supervision
                    .failed(Self::NAME, &format!("{what}: {panic}"));
                ctx.stop();
                None
            }
        }
    }
}

impl Actor for Channels {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.bus.attach(ctx.address().recipient());
        let delay = self.restarts.delay();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::sleep(delay)).map(|_, act, _| {
                act.supervision.running(Self::NAME);
            }),
        );
    }
}

impl Supervised for Channels {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.failed();
    }
}

/// A channel joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// Whether the connection was new to the channel.
    pub new: bool,
    /// The channel's presence state.
    pub presence: Vec<Presence>,
}

/// Joins a channel; answers whether it was new there, and the presence state.
#[derive(Debug, Message)]
#[rtype(result = "Result<Joined, RealtimeError>")]
pub struct Join {
    /// The connection.
    pub conn: Arc<ConnShared>,
    /// The channel.
    pub channel: Arc<str>,
}

impl Handler<Join> for Channels {
    type Result = ResponseFuture<Result<Joined, RealtimeError>>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        let joined = self
            .guarded(ctx, "join", |act| act.join(&msg.conn, &msg.channel))
            .unwrap_or_else(|| Err(RealtimeError::not_started()));
        let bus = self.bus.clone();
        Box::pin(async move {
            let new = joined?;
            let presence = bus.presence(&msg.channel).await.map_err(|err| {
                tracing::warn!(error = %err, "presence state not read");
                RealtimeError::new(Code::ServiceUnavailable, err.to_string())
            })?;
            Ok(Joined { new, presence })
        })
    }
}

/// Leaves one channel (with `Some`) or every channel (with `None`); answers how many.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Leave {
    /// The connection.
    pub conn: Arc<ConnShared>,
    /// The channel, or all.
    pub channel: Option<Arc<str>>,
}

impl Handler<Leave> for Channels {
    type Result = usize;

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) -> usize {
        let seq = msg.conn.seq;
        let channels: Vec<Arc<str>> = match msg.channel {
            Some(channel) => vec![channel],
            None => self
                .joined
                .get(&seq)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default(),
        };
        let mut left = 0;
        for channel in channels {
            if let Some(presence) = self.leave(seq, &channel) {
                left += 1;
                if let Some(key) = presence {
                    self.untrack_later(ctx, channel, key);
                }
            }
        }
        left
    }
}

/// Tracks (`Some` state) or untracks (`None`) the connection's presence in a channel,
/// joining it when needed (within the bound).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RealtimeError>")]
pub struct Track {
    /// The connection.
    pub conn: Arc<ConnShared>,
    /// The channel.
    pub channel: Arc<str>,
    /// The presence key.
    pub key: String,
    /// The state, or `None` to untrack.
    pub state: Option<Value>,
}

impl Handler<Track> for Channels {
    type Result = ResponseFuture<Result<(), RealtimeError>>;

    fn handle(&mut self, msg: Track, ctx: &mut Context<Self>) -> Self::Result {
        let Track {
            conn,
            channel,
            key,
            state,
        } = msg;
        let result = self.guarded(ctx, "track", |act| -> Result<(), RealtimeError> {
            if state.is_some() {
                act.join(&conn, &channel)?;
            }
            if let Some(member) = act
                .members
                .get_mut(&channel)
                .and_then(|m| m.get_mut(&conn.seq))
            {
                member.presence = state.is_some().then(|| key.clone());
            }
            Ok(())
        });
        let bus = self.bus.clone();
        Box::pin(async move {
            result.unwrap_or_else(|| Err(RealtimeError::not_started()))?;
            let unavailable =
                |err: BusError| RealtimeError::new(Code::ServiceUnavailable, err.to_string());
            let (joins, leaves) = match state {
                Some(state) => {
                    let previous = bus
                        .track(&channel, &key, state.clone())
                        .await
                        .map_err(unavailable)?;
                    let leaves = previous
                        .map(|state| Presence {
                            key: key.clone(),
                            state,
                        })
                        .into_iter()
                        .collect();
                    (vec![Presence { key, state }], leaves)
                }
                None => {
                    let previous = bus.untrack(&channel, &key).await.map_err(unavailable)?;
                    let leaves: Vec<Presence> = previous
                        .map(|state| Presence { key, state })
                        .into_iter()
                        .collect();
                    (Vec::new(), leaves)
                }
            };
            if !joins.is_empty() || !leaves.is_empty() {
                bus.publish(ChannelEvent::new(
                    channel,
                    ChannelEventKind::PresenceDiff { joins, leaves },
                    None,
                ));
            }
            Ok(())
        })
    }
}

/// Broadcasts to a channel: from a socket (which joins it, within the bound) or from the
/// server (`conn: None`). Answers how many of this instance's members it is for.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, RealtimeError>")]
pub struct Broadcast {
    /// The sending connection, if a socket sent it.
    pub conn: Option<Arc<ConnShared>>,
    /// The event.
    pub event: Arc<ChannelEvent>,
}

impl Handler<Broadcast> for Channels {
    type Result = Result<usize, RealtimeError>;

    fn handle(&mut self, msg: Broadcast, ctx: &mut Context<Self>) -> Self::Result {
        let channel = msg.event.channel.clone();
        self.limits.check_name(&channel)?;
        if let Some(conn) = &msg.conn {
            self.guarded(ctx, "broadcast", |act| act.join(conn, &channel))
                .unwrap_or_else(|| Err(RealtimeError::not_started()))?;
        }
        let members = self.members.get(&channel).map_or(0, |m| {
            m.values()
                .filter(|member| msg.event.except.as_ref() != Some(&member.conn.id))
                .count()
        });
        self.bus.publish(msg.event);
        Ok(members)
    }
}

impl Handler<Deliver> for Channels {
    type Result = ();

    fn handle(&mut self, Deliver(event): Deliver, ctx: &mut Context<Self>) {
        self.guarded(ctx, "deliver", |act| {
            act.deliver(&event);
            act.restarts.succeeded();
        });
    }
}
