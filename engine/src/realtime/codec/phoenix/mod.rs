//! The Phoenix channel protocol of `@supabase/realtime-js` (`/realtime/v1/websocket`), vsn
//! 1.0.0 and 2.0.0, over the hub: a topic `realtime:<name>` is the hub channel `<name>` (so
//! Phoenix and native clients of one channel, and server-side broadcasts, meet), its
//! `postgres_changes` bindings are hub subscriptions, and its presence is the hub's.
//!
//! ```text
//! → phx_join {config: {broadcast: {self, ack}, presence: {key, enabled},
//!             postgres_changes: [{event, schema, table, filter}], private}, access_token}
//! ← phx_reply {status: "ok", response: {postgres_changes: [{id, event, schema, table, filter}]}}
//! ← presence_state (presence enabled)   ← system "Subscribed to PostgreSQL" (with bindings)
//! → access_token {access_token}   → broadcast {type, event, payload} (or binary kind 3)
//! → presence {type, event: track|untrack, payload}   → phx_leave   → heartbeat (topic phoenix)
//! ← postgres_changes {ids, data}  ← broadcast (or binary kind 4)  ← presence_diff
//! ← phx_close, system errors
//! ```
//! The connection has one identity: an `access_token` (in a join or pushed) re-authorises
//! the whole socket through the same [`Session::set_token`] as the native protocol, refused
//! the same way (expired, revoked, over the user's connection limit). Private channels need
//! `realtime.messages` policies, which Fluxbase does not evaluate: they are refused.

mod config;
pub mod format;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use fluxbase_migrations::{Code, ErrorCode};
use serde_json::{Map, Value, json};

use super::{
    ChannelEvent, ChannelEventKind, Codec, EventFormat, Frame, Notice, Payload, Session,
    SubscribeRequest,
};
use crate::realtime::error::RealtimeError;
use config::{Binding, JoinPayload};
pub use format::{KEY_SEPARATOR, PHOENIX_V1, PHOENIX_V2, PhoenixFormat};
use format::{presence_map, topic_of};
pub use wire::Vsn;
use wire::{Incoming, Message, UserBroadcast};

/// One realtime-js socket: its version and joined topics.
#[derive(Debug)]
pub struct Phoenix {
    vsn: Vsn,
    /// Joined topics by hub channel (the topic without `realtime:`).
    topics: HashMap<Arc<str>, Topic>,
    /// Counter of presence refs (`phx_ref`, unique per track).
    tracks: u64,
}

/// A joined topic.
#[derive(Debug, Clone)]
struct Topic {
    /// The join's ref: every message of this join carries it.
    join_ref: Value,
    /// `config.broadcast.self`: its own broadcasts come back.
    self_broadcast: bool,
    /// `config.broadcast.ack`: broadcasts are acknowledged.
    ack: bool,
    /// Presence events are sent (`config.presence.enabled`, or after a track).
    presence: bool,
    /// `config.presence.key` (empty: the connection id).
    presence_key: String,
}

/// Where a reply goes: the push it answers.
struct Push {
    /// The join's ref (echoed as the reply's `join_ref`).
    join_ref: Value,
    /// The push's own ref (what realtime-js matches the reply by).
    msg_ref: Value,
    /// The push's topic.
    topic: String,
}

fn invalid(message: impl Into<String>) -> RealtimeError {
    RealtimeError::new(Code::InvalidMessage, message)
}

impl Phoenix {
    /// A socket of version `vsn`.
    pub fn new(vsn: Vsn) -> Phoenix {
        Phoenix {
            vsn,
            topics: HashMap::new(),
            tracks: 0,
        }
    }

    fn frame(&self, join_ref: &Value, topic: &str, event: &str, payload: Value) -> Frame {
        wire::encode(self.vsn, join_ref, &Value::Null, topic, event, &payload)
    }

    fn reply(&self, push: &Push, status: &str, response: Value) -> Frame {
        wire::encode(
            self.vsn,
            &push.join_ref,
            &push.msg_ref,
            &push.topic,
            "phx_reply",
            &json!({"status": status, "response": response}),
        )
    }

    fn ok(&self, push: &Push) -> Frame {
        self.reply(push, "ok", json!({}))
    }

    /// An error reply: `reason` is what realtime-js shows, `code` the vocabulary's.
    fn refuse(&self, push: &Push, err: &RealtimeError) -> Frame {
        self.reply(
            push,
            "error",
            json!({"reason": err.client_message(), "code": err.code().as_str()}),
        )
    }

    /// A `system` message on a topic (`status` ok or error).
    fn system(
        &self,
        join_ref: &Value,
        channel: &str,
        extension: &str,
        status: &str,
        message: &str,
    ) -> Frame {
        self.frame(
            join_ref,
            &topic_of(channel),
            "system",
            json!({"channel": channel, "extension": extension, "status": status, "message": message}),
        )
    }

    /// An error outside any push (an undecodable frame, a refused connection): a `system`
    /// message on the socket's own topic.
    fn socket_error(&self, err: &RealtimeError) -> Frame {
        self.frame(
            &Value::Null,
            "phoenix",
            "system",
            json!({"status": "error", "code": err.code().as_str(), "message": err.client_message()}),
        )
    }

    /// The presence key this connection tracks under in `channel`.
    fn hub_key(&self, topic: &Topic, session: &Session<'_>) -> String {
        let conn = session.conn_id().as_str();
        if topic.presence_key.is_empty() {
            conn.to_string()
        } else {
            format!("{}{KEY_SEPARATOR}{conn}", topic.presence_key)
        }
    }

    /// Drops a topic's bindings and leaves its channel (its presence leaves too).
    async fn drop_topic(&mut self, session: &Session<'_>, channel: &str) {
        self.topics.remove(channel);
        session.unsubscribe(Some(channel), None);
        // Only a stopped engine refuses; the socket goes with it.
        let _ = session.leave(channel).await;
    }

    async fn join(&mut self, session: &Session<'_>, push: Push, payload: Value) -> Vec<Frame> {
        let Some(channel) = push.topic.strip_prefix("realtime:").map(str::to_string) else {
            return vec![self.refuse(&push, &unmatched(&push.topic))];
        };
        let payload: JoinPayload = match serde_json::from_value(payload) {
            Ok(p) => p,
            Err(e) => return vec![self.refuse(&push, &invalid(format!("phx_join payload: {e}")))],
        };
        // A second join of a topic replaces the first (as Phoenix does).
        if self.topics.contains_key(channel.as_str()) {
            self.drop_topic(session, &channel).await;
        }
        let config = payload.config.unwrap_or_default();
        if config.private == Some(true) {
            let err = RealtimeError::new(
                Code::Forbidden,
                "private channels are not supported: their access is decided by realtime.messages policies, which Fluxbase does not evaluate; join with private: false",
            );
            return vec![self.refuse(&push, &err)];
        }
        if let Some(token) = payload.access_token.as_deref().filter(|t| !t.is_empty())
            && let Err(err) = session.set_token(token).await
        {
            return vec![self.refuse(&push, &err)];
        }
        let joined = match session.join(&channel).await {
            Ok(joined) => joined,
            Err(err) => return vec![self.refuse(&push, &err)],
        };
        let bindings = config.postgres_changes.unwrap_or_default();
        let mut echoed = Vec::with_capacity(bindings.len());
        for raw in bindings {
            match self.subscribe(session, &channel, &push.join_ref, raw).await {
                Ok(binding) => echoed.push(binding),
                Err(err) => {
                    session.unsubscribe(Some(&channel), None);
                    let _ = session.leave(&channel).await;
                    return vec![self.refuse(&push, &err)];
                }
            }
        }
        let broadcast = config.broadcast.unwrap_or_default();
        let presence = config.presence.unwrap_or_default();
        let topic = Topic {
            join_ref: push.join_ref.clone(),
            self_broadcast: broadcast.self_broadcast.unwrap_or(false),
            ack: broadcast.ack.unwrap_or(false),
            presence: presence.enabled.unwrap_or(false),
            presence_key: presence.key.unwrap_or_default(),
        };
        let mut out = vec![self.reply(&push, "ok", json!({"postgres_changes": echoed}))];
        if topic.presence {
            out.push(self.frame(
                &push.join_ref,
                &push.topic,
                "presence_state",
                presence_map(&joined.presence),
            ));
        }
        // Every binding is in the index: a write committed from now on is delivered.
        if !echoed.is_empty() {
            out.push(self.system(
                &push.join_ref,
                &channel,
                "postgres_changes",
                "ok",
                "Subscribed to PostgreSQL",
            ));
        }
        self.topics.insert(Arc::from(channel.as_str()), topic);
        out
    }

    /// Subscribes one binding; answers it as the client sent it, with its server id.
    async fn subscribe(
        &self,
        session: &Session<'_>,
        channel: &str,
        join_ref: &Value,
        raw: Value,
    ) -> Result<Value, RealtimeError> {
        let binding: Binding = serde_json::from_value(raw.clone())
            .map_err(|e| invalid(format!("postgres_changes binding: {e}")))?;
        let Some(table) = binding.table.filter(|t| !t.is_empty() && t != "*") else {
            return Err(invalid(
                "postgres_changes needs a table: Fluxbase subscribes to one table per binding",
            ));
        };
        if binding.schema.as_deref() == Some("*") {
            return Err(invalid(
                "postgres_changes needs a schema, not \"*\": Fluxbase subscribes to one table per binding",
            ));
        }
        let topic = topic_of(channel);
        let vsn = self.vsn;
        let envelope = |id: &str| Arc::from(wire::change_prefix(vsn, join_ref, &topic, &[id]));
        let sub = session
            .subscribe(SubscribeRequest {
                channel,
                schema: binding.schema,
                table,
                event: Some(binding.event),
                filter: binding.filter.filter(|f| !f.is_empty()),
                envelope: &envelope,
            })
            .await?;
        let mut echoed = match raw {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        echoed.insert("id".into(), Value::String(sub.id.to_string()));
        Ok(Value::Object(echoed))
    }

    async fn leave(&mut self, session: &Session<'_>, push: Push, channel: &str) -> Vec<Frame> {
        self.drop_topic(session, channel).await;
        vec![
            self.ok(&push),
            self.frame(&push.join_ref, &push.topic, "phx_close", json!({})),
        ]
    }

    async fn access_token(
        &mut self,
        session: &Session<'_>,
        push: Push,
        payload: &Value,
    ) -> Vec<Frame> {
        let Some(token) = payload["access_token"].as_str() else {
            return vec![self.refuse(
                &push,
                &invalid("access_token needs a string field \"access_token\""),
            )];
        };
        match session.set_token(token).await {
            Ok(()) => vec![self.ok(&push)],
            Err(err) => {
                let channel = push.topic.trim_start_matches("realtime:").to_string();
                vec![
                    self.refuse(&push, &err),
                    self.system(
                        &push.join_ref,
                        &channel,
                        "system",
                        "error",
                        &err.client_message(),
                    ),
                ]
            }
        }
    }

    async fn broadcast(
        &mut self,
        session: &Session<'_>,
        push: Push,
        channel: &str,
        event: &str,
        payload: Payload,
    ) -> Vec<Frame> {
        let Some(topic) = self.topics.get(channel) else {
            return vec![self.refuse(&push, &unmatched(&push.topic))];
        };
        let (include_self, ack) = (topic.self_broadcast, topic.ack);
        match session
            .broadcast(channel, event, payload, include_self)
            .await
        {
            Ok(()) if ack => vec![self.ok(&push)],
            Ok(()) => Vec::new(),
            Err(err) => vec![self.refuse(&push, &err)],
        }
    }

    async fn presence(
        &mut self,
        session: &Session<'_>,
        push: Push,
        channel: &str,
        payload: &Value,
    ) -> Vec<Frame> {
        let Some(topic) = self.topics.get(channel).cloned() else {
            return vec![self.refuse(&push, &unmatched(&push.topic))];
        };
        let key = self.hub_key(&topic, session);
        match payload["event"].as_str() {
            Some("track") => {
                let mut meta = match &payload["payload"] {
                    Value::Object(meta) => meta.clone(),
                    Value::Null => Map::new(),
                    _ => {
                        return vec![
                            self.refuse(&push, &invalid("presence payload must be an object")),
                        ];
                    }
                };
                self.tracks += 1;
                meta.insert(
                    "phx_ref".into(),
                    Value::String(format!("{}.{}", session.conn_id(), self.tracks)),
                );
                let mut out = Vec::new();
                // Tracking turns presence on for this topic: its state first, so the
                // client's presence leaves its pending state.
                if !topic.presence {
                    match session.join(channel).await {
                        Ok(joined) => out.push(self.frame(
                            &topic.join_ref,
                            &push.topic,
                            "presence_state",
                            presence_map(&joined.presence),
                        )),
                        Err(err) => return vec![self.refuse(&push, &err)],
                    }
                    if let Some(t) = self.topics.get_mut(channel) {
                        t.presence = true;
                    }
                }
                match session
                    .track(channel, Some(&key), Value::Object(meta))
                    .await
                {
                    Ok(()) => out.push(self.ok(&push)),
                    Err(err) => out.push(self.refuse(&push, &err)),
                }
                out
            }
            Some("untrack") => match session.untrack(channel, Some(&key)).await {
                Ok(()) => vec![self.ok(&push)],
                Err(err) => vec![self.refuse(&push, &err)],
            },
            _ => vec![self.refuse(
                &push,
                &invalid("presence event must be \"track\" or \"untrack\""),
            )],
        }
    }

    async fn message(&mut self, session: &Session<'_>, message: Message) -> Vec<Frame> {
        let Message {
            join_ref,
            msg_ref,
            topic,
            event,
            payload,
        } = message;
        let push = Push {
            join_ref,
            msg_ref,
            topic,
        };
        if push.topic == "phoenix" {
            return match event.as_str() {
                "heartbeat" => vec![self.ok(&push)],
                other => vec![self.refuse(&push, &unknown_event(other))],
            };
        }
        if event == "phx_join" {
            return self.join(session, push, payload).await;
        }
        let channel = push
            .topic
            .strip_prefix("realtime:")
            .unwrap_or("")
            .to_string();
        if !self.topics.contains_key(channel.as_str()) {
            // Leaving what is not joined is done already.
            if event == "phx_leave" {
                return vec![self.ok(&push)];
            }
            return vec![self.refuse(&push, &unmatched(&push.topic))];
        }
        match event.as_str() {
            "phx_leave" => self.leave(session, push, &channel).await,
            "access_token" => self.access_token(session, push, &payload).await,
            "broadcast" => {
                let Some(name) = payload["event"].as_str().map(str::to_string) else {
                    return vec![
                        self.refuse(&push, &invalid("broadcast needs a string field \"event\"")),
                    ];
                };
                let data = Payload::Json(Arc::from(payload["payload"].to_string()));
                self.broadcast(session, push, &channel, &name, data).await
            }
            "presence" => self.presence(session, push, &channel, &payload).await,
            other => vec![self.refuse(&push, &unknown_event(other))],
        }
    }
}

/// A topic this socket has not joined (or that is not `realtime:…`).
fn unmatched(topic: &str) -> RealtimeError {
    invalid(format!(
        "unmatched topic {topic:?}: join it first (topics are realtime:<channel>)"
    ))
}

fn unknown_event(event: &str) -> RealtimeError {
    RealtimeError::new(
        Code::UnknownType,
        format!(
            "unknown event {event:?}: use phx_join, phx_leave, access_token, broadcast, presence, or heartbeat on topic phoenix"
        ),
    )
}

impl Codec for Phoenix {
    fn format(&self) -> &'static dyn EventFormat {
        PhoenixFormat::of(self.vsn)
    }

    async fn handle(&mut self, frame: Frame, session: &Session<'_>) -> Vec<Frame> {
        match wire::decode(self.vsn, &frame) {
            Ok(Incoming::Message(message)) => self.message(session, message).await,
            Ok(Incoming::UserBroadcast(UserBroadcast {
                join_ref,
                msg_ref,
                topic,
                event,
                payload,
            })) => {
                let channel = topic.strip_prefix("realtime:").unwrap_or("").to_string();
                let push = Push {
                    join_ref,
                    msg_ref,
                    topic,
                };
                self.broadcast(session, push, &channel, &event, payload)
                    .await
            }
            Err(err) => vec![self.socket_error(&err)],
        }
    }

    fn envelope(&self, channel: &str, ids: &[&str]) -> Arc<str> {
        let join_ref = self
            .topics
            .get(channel)
            .map_or(Value::Null, |t| t.join_ref.clone());
        Arc::from(wire::change_prefix(
            self.vsn,
            &join_ref,
            &topic_of(channel),
            ids,
        ))
    }

    /// Events of joined topics only; presence diffs only where presence is on.
    fn channel_event(&mut self, event: &ChannelEvent) -> Option<Frame> {
        let topic = self.topics.get(&event.channel)?;
        if matches!(event.kind, ChannelEventKind::PresenceDiff { .. }) && !topic.presence {
            return None;
        }
        Some(event.encoded(self.format()))
    }

    fn notice(&mut self, notice: &Notice<'_>) -> Frame {
        match notice {
            Notice::Expired { .. } => self.socket_error(&RealtimeError::token_expired()),
            Notice::Refused(err) | Notice::Unsupported(err) => self.socket_error(err),
        }
    }

    /// An expired token closes every topic (as Supabase does): a `system` error, then
    /// `phx_close`; the client subscribes again with a fresh token.
    fn notices(&mut self, notice: &Notice<'_>) -> Vec<Frame> {
        let Notice::Expired { .. } = notice else {
            return vec![self.notice(notice)];
        };
        let message =
            "access token expired: the channel was closed; subscribe again with a fresh token";
        let mut topics: Vec<(Arc<str>, Topic)> = self.topics.drain().collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(topics.len() * 2);
        for (channel, topic) in topics {
            out.push(self.system(&topic.join_ref, &channel, "system", "error", message));
            out.push(self.frame(&topic.join_ref, &topic_of(&channel), "phx_close", json!({})));
        }
        if out.is_empty() {
            out.push(self.notice(notice));
        }
        out
    }
}
