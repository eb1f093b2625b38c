//! The hub's typed API: connect (within limits), subscribe, unsubscribe, join, leave,
//! track/untrack presence, broadcast, set the context (re-authorise), expire, disconnect.
//! Every call answers a typed value or a [`RealtimeError`] with its code; nothing here reads
//! or writes a frame or a token (codecs and the [`Authenticator`](super::auth::Authenticator)
//! do).
//!
//! An expired context neither subscribes, joins, tracks nor broadcasts (`token_expired`)
//! until a new token is set; the dispatcher and the channels skip it too.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fluxbase_auth::AuthContext;
use fluxbase_migrations::Code;
use serde_json::Value;
use tokio::sync::mpsc;

use super::channels::{self, ChannelEvent, ChannelEventKind, Channels, Joined, Payload};
use super::connection::{ConnId, ConnShared, Outbound, unix_now};
use super::connections::LimitHit;
use super::engine::Engine;
use super::error::RealtimeError;
use super::filter::Filter;
use super::index::{EventMask, Subscription};
use super::rls;

/// A subscription to a table's changes, as a codec asks for it.
pub struct SubscribeRequest<'a> {
    /// The client's channel name (bounded like channel names).
    pub channel: &'a str,
    /// Schema; default `public`.
    pub schema: Option<String>,
    /// Table.
    pub table: String,
    /// `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE` or `*` (default).
    pub event: Option<String>,
    /// `col=op.value`.
    pub filter: Option<String>,
    /// The codec's envelope of this subscription's change frames, given its id: what comes
    /// before a change's shared body (built once, here).
    pub envelope: &'a dyn Fn(&str) -> Arc<str>,
}

/// A live subscription: changes committed from now on reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Server-assigned id.
    pub id: Arc<str>,
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// The event, upper case (`*` for all).
    pub event: String,
    /// The filter as given.
    pub filter: Option<String>,
}

/// The hub as one connection sees it; what a codec calls.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    engine: &'a Engine,
    conn: &'a Arc<ConnShared>,
}

impl<'a> Session<'a> {
    /// The session of `conn`.
    pub fn new(engine: &'a Engine, conn: &'a Arc<ConnShared>) -> Session<'a> {
        Session { engine, conn }
    }

    /// The connection's id (also its default presence key).
    pub fn conn_id(&self) -> &ConnId {
        &self.conn.id
    }

    /// The current context.
    pub fn context(&self) -> Arc<AuthContext> {
        self.conn.context()
    }

    /// Refuses calls of an expired context.
    fn live(&self) -> Result<(), RealtimeError> {
        if self.conn.expired_at(unix_now()) {
            return Err(RealtimeError::token_expired());
        }
        Ok(())
    }

    /// Subscribes to a table's changes.
    pub async fn subscribe(&self, req: SubscribeRequest<'_>) -> Result<Subscribed, RealtimeError> {
        self.live()?;
        let engine = &self.engine.inner;
        engine.settings.channel_limits().check_name(req.channel)?;
        let schema = req.schema.unwrap_or_else(|| "public".into());
        let event = req.event.unwrap_or_else(|| "*".into());
        let events = EventMask::parse(&event).ok_or_else(|| {
            RealtimeError::new(
                Code::InvalidEvent,
                format!("event must be INSERT, UPDATE, DELETE, TRUNCATE or *, got {event:?}"),
            )
        })?;
        let filter = req
            .filter
            .as_deref()
            .map(Filter::parse)
            .transpose()
            .map_err(|e| RealtimeError::new(Code::InvalidFilter, e.to_string()))?;
        let max = engine.settings.max_subscriptions_per_connection;
        if engine
            .index
            .read()
            .expect("index lock")
            .count_of(self.conn.seq)
            >= max
        {
            return Err(RealtimeError::new(
                Code::TooManySubscriptions,
                format!("at most {max} subscriptions per connection"),
            ));
        }
        let info = engine
            .tables
            .resolve(&engine.pool, &schema, &req.table)
            .await?;
        if let Some(f) = &filter
            && !info.has_column(&f.column)
        {
            return Err(RealtimeError::new(
                Code::UnknownColumn,
                format!(
                    "column {:?} does not exist in {schema}.{}",
                    f.column, req.table
                ),
            ));
        }
        let route = engine.gate.owner_route(info.relid).await;
        // Operands take the column's type; what cannot be compared exactly in-process is
        // left to PostgreSQL (see `filter::Filter::bind`).
        let filter = filter.map(|f| match engine.gate.column(info.relid, &f.column) {
            Some(column) => f.bind(&column),
            None => f.bind(&rls::predicate::ColumnInfo {
                name: String::new(),
                ty: rls::value::SqlType::Other(String::new()),
                collation: rls::predicate::Collation::C,
            }),
        });
        // The token may have expired while the table was looked up.
        self.live()?;
        let id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let sub = Subscription {
            id: id.clone(),
            conn: self.conn.clone(),
            channel: Arc::from(req.channel),
            schema: Arc::from(schema.as_str()),
            table: Arc::from(req.table.as_str()),
            events,
            filter,
            envelope: (req.envelope)(&id),
        };
        {
            let mut index = engine.index.write().expect("index lock");
            index.set_route(&schema, &req.table, route);
            index.add(sub);
        }
        self.engine.publish_gauges();
        Ok(Subscribed {
            id,
            schema,
            table: req.table,
            event: event.to_ascii_uppercase(),
            filter: req.filter,
        })
    }

    /// Drops this connection's subscriptions of `channel` and/or with `id` (all with
    /// neither); returns their ids.
    pub fn unsubscribe(&self, channel: Option<&str>, id: Option<&str>) -> Vec<Arc<str>> {
        let removed =
            self.engine
                .inner
                .index
                .write()
                .expect("index lock")
                .remove(self.conn.seq, channel, id);
        self.engine.publish_gauges();
        removed
    }

    /// Joins a broadcast/presence channel (within `realtime.max_channels_per_connection`);
    /// answers whether it was new there, and the channel's presence state.
    pub async fn join(&self, channel: &str) -> Result<Joined, RealtimeError> {
        self.live()?;
        let addr = self.engine.channels()?;
        addr.send(channels::Join {
            conn: self.conn.clone(),
            channel: Arc::from(channel),
        })
        .await
        .map_err(|_| RealtimeError::not_started())?
    }

    /// Leaves a channel (its presence, if tracked, leaves too); whether it was in it.
    pub async fn leave(&self, channel: &str) -> Result<bool, RealtimeError> {
        let addr = self.engine.channels()?;
        let left = addr
            .send(channels::Leave {
                conn: self.conn.clone(),
                channel: Some(Arc::from(channel)),
            })
            .await
            .map_err(|_| RealtimeError::not_started())?;
        Ok(left > 0)
    }

    /// Tracks this connection's presence in `channel` under `key` (default: the
    /// connection id), joining it when needed.
    pub async fn track(
        &self,
        channel: &str,
        key: Option<&str>,
        state: Value,
    ) -> Result<(), RealtimeError> {
        self.live()?;
        self.presence(channel, key, Some(state)).await
    }

    /// Clears this connection's presence in `channel`.
    pub async fn untrack(&self, channel: &str, key: Option<&str>) -> Result<(), RealtimeError> {
        self.presence(channel, key, None).await
    }

    async fn presence(
        &self,
        channel: &str,
        key: Option<&str>,
        state: Option<Value>,
    ) -> Result<(), RealtimeError> {
        let addr = self.engine.channels()?;
        addr.send(channels::Track {
            conn: self.conn.clone(),
            channel: Arc::from(channel),
            key: key.map_or_else(|| self.conn.id.to_string(), str::to_string),
            state,
        })
        .await
        .map_err(|_| RealtimeError::not_started())?
    }

    /// Broadcasts `payload` as `event` to `channel`'s members (this connection too when
    /// `include_self`), joining it when needed.
    pub async fn broadcast(
        &self,
        channel: &str,
        event: &str,
        payload: Payload,
        include_self: bool,
    ) -> Result<(), RealtimeError> {
        self.live()?;
        let addr = self.engine.channels()?;
        let event = ChannelEvent::new(
            Arc::from(channel),
            ChannelEventKind::Broadcast {
                event: Arc::from(event),
                payload,
            },
            (!include_self).then(|| self.conn.id.clone()),
        );
        addr.send(channels::Broadcast {
            conn: Some(self.conn.clone()),
            event,
        })
        .await
        .map_err(|_| RealtimeError::not_started())?
        .map(|_| ())
    }

    /// Authenticates `token` (signature, validity, live session) and makes it this
    /// connection's context: within the new user's connection limit, its subscriptions
    /// re-routed.
    pub async fn set_token(&self, token: &str) -> Result<(), RealtimeError> {
        let context = self.engine.inner.auth.authenticate(token).await?;
        self.engine.set_context(self.conn, context)
    }

    /// Queues a frame after what is already queued (replies that must not overtake).
    pub fn queue(&self, frame: super::codec::Frame) {
        self.conn.push(Outbound::Frame(frame));
    }
}

impl Engine {
    /// The channels actor, once started.
    fn channels(&self) -> Result<actix::Addr<Channels>, RealtimeError> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(RealtimeError::not_started)
    }

    /// Registers a socket of `format`, or refuses it (`connection_limit`, the message
    /// naming the key).
    pub fn connect(
        &self,
        ip: IpAddr,
        context: AuthContext,
        format: &'static dyn super::codec::EventFormat,
    ) -> Result<(Arc<ConnShared>, mpsc::Receiver<Outbound>), RealtimeError> {
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let user = context.uid().map(str::to_string);
        let (conn, rx) = ConnShared::new(
            seq,
            ConnId::new(&self.inner.instance, seq),
            ip,
            context,
            format,
            self.inner.settings.queue_limits(),
        );
        if let Err(hit) =
            self.inner
                .connections
                .add(conn.clone(), user, self.inner.settings.limits())
        {
            metrics::counter!("fluxbase_realtime_disconnects_total", "reason" => "limit")
                .increment(1);
            return Err(RealtimeError::new(Code::ConnectionLimit, hit.message()));
        }
        self.publish_gauges();
        Ok((conn, rx))
    }

    /// [`Engine::connect`], then, scaled out over Redis, `realtime.max_connections_per_user`
    /// across every instance (atomic in Redis). Should Redis not answer, the per-instance
    /// limit alone holds (and a warning is logged): sockets are not refused for an outage.
    pub async fn connect_shared(
        &self,
        ip: IpAddr,
        context: AuthContext,
        format: &'static dyn super::codec::EventFormat,
    ) -> Result<(Arc<ConnShared>, mpsc::Receiver<Outbound>), RealtimeError> {
        let user = context.uid().map(str::to_string);
        let (conn, rx) = self.connect(ip, context, format)?;
        let (Some(limits), Some(user)) = (&self.inner.shared_limits, user) else {
            return Ok((conn, rx));
        };
        let per_user = self.inner.settings.max_connections_per_user;
        match limits.acquire(&user, conn.seq, per_user).await {
            Ok(true) => Ok((conn, rx)),
            Ok(false) => {
                self.disconnect(&conn, "limit");
                Err(RealtimeError::new(
                    Code::ConnectionLimit,
                    LimitHit::User(per_user).message(),
                ))
            }
            Err(err) => {
                tracing::warn!(error = %err, "shared connection limit not checked (redis); the per-instance limit applies");
                Ok((conn, rx))
            }
        }
    }

    /// Makes `context` (already authenticated) the connection's: refused when it would make
    /// the connection its user's one too many.
    pub fn set_context(
        &self,
        conn: &ConnShared,
        context: AuthContext,
    ) -> Result<(), RealtimeError> {
        let user = context.uid().map(str::to_string);
        self.inner
            .connections
            .set_user(conn.seq, user, self.inner.settings.max_connections_per_user)
            .map_err(|hit| RealtimeError::new(Code::ConnectionLimit, hit.message()))?;
        conn.set_context(context);
        // Owner routing follows the new `sub`.
        self.inner
            .index
            .write()
            .expect("index lock")
            .reindex_conn(conn.seq);
        Ok(())
    }

    /// The token expired: drops the connection's subscriptions and leaves its channels;
    /// returns (subscriptions, channels).
    pub async fn expire(&self, conn: &Arc<ConnShared>) -> (usize, usize) {
        let subs = self
            .inner
            .index
            .write()
            .expect("index lock")
            .remove(conn.seq, None, None)
            .len();
        self.publish_gauges();
        let channels = match self.channels() {
            Ok(addr) => addr
                .send(channels::Leave {
                    conn: conn.clone(),
                    channel: None,
                })
                .await
                .unwrap_or(0),
            Err(_) => 0,
        };
        (subs, channels)
    }

    /// Unregisters a socket: its subscriptions, channels and presences go.
    pub fn disconnect(&self, conn: &Arc<ConnShared>, label: &'static str) {
        self.inner
            .index
            .write()
            .expect("index lock")
            .remove(conn.seq, None, None);
        self.inner.connections.remove(conn.seq);
        if let Some(limits) = &self.inner.shared_limits {
            limits.release(conn.seq);
        }
        if let Ok(addr) = self.channels() {
            addr.do_send(channels::Leave {
                conn: conn.clone(),
                channel: None,
            });
        }
        metrics::counter!("fluxbase_realtime_disconnects_total", "reason" => label).increment(1);
        self.publish_gauges();
    }

    /// A server-side broadcast (`POST /api/v1/realtime/broadcast`): `payload` is JSON text.
    /// Returns how many of this instance's sockets it is for.
    pub async fn broadcast(
        &self,
        channel: &str,
        event: &str,
        payload: Arc<str>,
    ) -> Result<usize, RealtimeError> {
        let event = ChannelEvent::new(
            Arc::from(channel),
            ChannelEventKind::Broadcast {
                event: Arc::from(event),
                payload: Payload::Json(payload),
            },
            None,
        );
        self.channels()?
            .send(channels::Broadcast { conn: None, event })
            .await
            .map_err(|_| RealtimeError::not_started())?
    }
}
