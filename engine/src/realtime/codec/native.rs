//! The native protocol of `GET /realtime` (DESIGN §2): JSON text frames with a `type`.
//! Every frame of it — decoding client frames, acks, errors, change envelopes and bodies,
//! broadcasts, presence, notices — is here.
//!
//! ```text
//! → {"type":"subscribe","channel":"c1","config":{"event":"INSERT","schema":"public","table":"todos","filter":"user_id=eq.42"}}
//! → {"type":"unsubscribe","channel":"c1"}  {"type":"heartbeat"}  {"type":"access_token","token":"…"}
//! → {"type":"broadcast","channel":"room1","payload":{"event":"cursor","data":{…}}}
//! → {"type":"presence","channel":"room1","payload":{"event":"track","state":{…}}}
//! ← ack, postgres_changes, broadcast, presence_state, presence_diff, heartbeat, system, error
//! ```

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ChangeView, ChannelEvent, ChannelEventKind, Codec, EventFormat, Frame, Notice, OldJson,
    Payload, Presence, Session, SubscribeRequest, no_columns,
};
use crate::realtime::error::RealtimeError;
use fluxbase_migrations::{Code, ErrorCode};

/// The native format's shared bodies.
#[derive(Debug)]
pub struct NativeFormat;

/// The native format (a static: formats are compared by address).
pub static NATIVE: NativeFormat = NativeFormat;

/// One socket of the native protocol (no per-socket state but the format).
#[derive(Debug, Default)]
pub struct Native;

/// A frame from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Subscribe to table changes (or, without `table`, join a channel for broadcast and
    /// presence only).
    Subscribe {
        /// Client-chosen channel name.
        channel: String,
        /// What to subscribe to.
        config: SubscribeConfig,
    },
    /// Drop one subscription, or every subscription of a channel.
    Unsubscribe {
        /// Channel.
        channel: Option<String>,
        /// Subscription id from the ack.
        subscription_id: Option<String>,
    },
    /// Keep-alive; answered with a heartbeat.
    Heartbeat,
    /// A fresh token for this connection.
    AccessToken {
        /// The JWT.
        token: String,
    },
    /// A message to the other members of a channel.
    Broadcast {
        /// Channel.
        channel: String,
        /// `payload.event`.
        event: String,
        /// `payload.data` (`null` when absent).
        data: Value,
    },
    /// Presence track/untrack.
    Presence {
        /// Channel.
        channel: String,
        /// `{"event": "track", "state": {…}}` or `{"event": "untrack"}`.
        payload: PresencePayload,
    },
}

/// `config` of a subscribe frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeConfig {
    /// INSERT, UPDATE, DELETE, TRUNCATE or `*` (default).
    #[serde(default)]
    pub event: Option<String>,
    /// Default `public`.
    #[serde(default)]
    pub schema: Option<String>,
    /// The table; absent for a broadcast/presence-only channel.
    #[serde(default)]
    pub table: Option<String>,
    /// `col=op.value`.
    #[serde(default)]
    pub filter: Option<String>,
}

/// Payload of a presence frame.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PresencePayload {
    /// `track` or `untrack`.
    pub event: String,
    /// The tracked state (for `track`).
    #[serde(default)]
    pub state: Option<Value>,
}

/// Raw shape before dispatch on `type`.
#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<String>,
    channel: Option<String>,
    config: Option<Value>,
    subscription_id: Option<String>,
    token: Option<String>,
    payload: Option<Value>,
}

fn invalid(message: impl Into<String>) -> RealtimeError {
    RealtimeError::new(Code::InvalidMessage, message)
}

fn missing(field: &str, kind: &str) -> RealtimeError {
    invalid(format!("{kind} needs a string field {field:?}"))
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientFrame, RealtimeError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        RealtimeError::new(
            Code::InvalidJson,
            format!("frame is not a JSON object of the protocol: {e}"),
        )
    })?;
    let kind = raw.kind.ok_or_else(|| invalid("missing field \"type\""))?;
    match kind.as_str() {
        "subscribe" => {
            let channel = raw.channel.ok_or_else(|| missing("channel", "subscribe"))?;
            let config = raw.config.unwrap_or_else(|| json!({}));
            let config: SubscribeConfig = serde_json::from_value(config)
                .map_err(|e| invalid(format!("subscribe config: {e}")))?;
            Ok(ClientFrame::Subscribe { channel, config })
        }
        "unsubscribe" => {
            if raw.channel.is_none() && raw.subscription_id.is_none() {
                return Err(missing("channel\" or \"subscription_id", "unsubscribe"));
            }
            Ok(ClientFrame::Unsubscribe {
                channel: raw.channel,
                subscription_id: raw.subscription_id,
            })
        }
        "heartbeat" => Ok(ClientFrame::Heartbeat),
        "access_token" => Ok(ClientFrame::AccessToken {
            token: raw.token.ok_or_else(|| missing("token", "access_token"))?,
        }),
        "broadcast" => {
            let channel = raw.channel.ok_or_else(|| missing("channel", "broadcast"))?;
            let payload = raw
                .payload
                .ok_or_else(|| invalid("broadcast needs a \"payload\""))?;
            let Value::Object(mut payload) = payload else {
                return Err(invalid(
                    "broadcast payload must be an object {\"event\": …, \"data\": …}",
                ));
            };
            let event = match payload.remove("event") {
                Some(Value::String(event)) => event,
                None => String::new(),
                Some(_) => return Err(invalid("broadcast payload.event must be a string")),
            };
            let data = payload.remove("data").unwrap_or(Value::Null);
            Ok(ClientFrame::Broadcast {
                channel,
                event,
                data,
            })
        }
        "presence" => {
            let channel = raw.channel.ok_or_else(|| missing("channel", "presence"))?;
            let payload: PresencePayload = raw
                .payload
                .ok_or_else(|| invalid("presence needs a \"payload\""))
                .and_then(|p| {
                    serde_json::from_value(p).map_err(|e| invalid(format!("presence payload: {e}")))
                })?;
            if payload.event != "track" && payload.event != "untrack" {
                return Err(invalid(format!(
                    "presence event must be \"track\" or \"untrack\", got {:?}",
                    payload.event
                )));
            }
            Ok(ClientFrame::Presence { channel, payload })
        }
        other => Err(RealtimeError::new(
            Code::UnknownType,
            format!(
                "unknown message type {other:?}: use subscribe, unsubscribe, heartbeat, access_token, broadcast or presence"
            ),
        )),
    }
}

/// A JSON value as a text frame.
fn frame(value: &Value) -> Frame {
    Frame::text(value.to_string())
}

/// `{"type":"error","code","message"}` (with the channel when there is one).
pub fn error(err: &RealtimeError, channel: Option<&str>) -> Frame {
    let mut value =
        json!({"type": "error", "code": err.code().as_str(), "message": err.client_message()});
    if let Some(channel) = channel {
        value["channel"] = Value::String(channel.to_string());
    }
    frame(&value)
}

/// A presence list as a JSON object by key.
fn presence_map(presences: &[Presence]) -> Map<String, Value> {
    presences
        .iter()
        .map(|p| (p.key.clone(), p.state.clone()))
        .collect()
}

/// The start of a `postgres_changes` frame, up to (and including) `"payload":`.
fn prefix(channel: &str, subscription_ids: &[&str]) -> Arc<str> {
    let ids = serde_json::to_string(subscription_ids).unwrap_or_else(|_| "[]".into());
    let channel = serde_json::to_string(channel).unwrap_or_else(|_| "\"\"".into());
    Arc::from(format!(
        "{{\"type\":\"postgres_changes\",\"channel\":{channel},\"subscription_ids\":{ids},\"payload\":"
    ))
}

impl Native {
    async fn subscribe(
        &self,
        session: &Session<'_>,
        channel: String,
        config: SubscribeConfig,
    ) -> Frame {
        let Some(table) = config.table else {
            // A channel for broadcast and presence only.
            return match session.join(&channel).await {
                Ok(joined) if joined.new => frame(&json!({
                    "type": "presence_state", "channel": channel,
                    "payload": presence_map(&joined.presence),
                })),
                Ok(_) => frame(&json!({"type": "ack", "channel": channel, "subscribed": true})),
                Err(err) => error(&err, Some(&channel)),
            };
        };
        let envelope = |id: &str| prefix(&channel, &[id]);
        let request = SubscribeRequest {
            channel: &channel,
            schema: config.schema,
            table,
            event: config.event,
            filter: config.filter,
            envelope: &envelope,
        };
        match session.subscribe(request).await {
            Ok(sub) => frame(&json!({
                "type": "ack", "channel": channel, "subscribed": true,
                "subscription_id": &*sub.id, "schema": sub.schema, "table": sub.table,
                "event": sub.event, "filter": sub.filter,
            })),
            Err(err) => error(&err, Some(&channel)),
        }
    }

    async fn presence(
        &self,
        session: &Session<'_>,
        channel: String,
        payload: PresencePayload,
    ) -> Vec<Frame> {
        let mut replies = Vec::new();
        if payload.event == "track" {
            match session.join(&channel).await {
                Ok(joined) if joined.new => replies.push(frame(&json!({
                    "type": "presence_state", "channel": channel,
                    "payload": presence_map(&joined.presence),
                }))),
                Ok(_) => {}
                Err(err) => return vec![error(&err, Some(&channel))],
            }
            if let Err(err) = session
                .track(&channel, None, payload.state.unwrap_or(Value::Null))
                .await
            {
                replies.push(error(&err, Some(&channel)));
            }
        } else if let Err(err) = session.untrack(&channel, None).await {
            replies.push(error(&err, Some(&channel)));
        }
        replies
    }
}

impl Codec for Native {
    fn format(&self) -> &'static dyn EventFormat {
        &NATIVE
    }

    async fn handle(&mut self, frame_in: Frame, session: &Session<'_>) -> Vec<Frame> {
        let Frame::Text(text) = frame_in else {
            return vec![error(
                &invalid("binary frames are not supported: send JSON text frames"),
                None,
            )];
        };
        let client = match decode(&text) {
            Ok(client) => client,
            Err(err) => return vec![error(&err, None)],
        };
        match client {
            ClientFrame::Heartbeat => vec![frame(&json!({"type": "heartbeat"}))],
            ClientFrame::Subscribe { channel, config } => {
                vec![self.subscribe(session, channel, config).await]
            }
            ClientFrame::Unsubscribe {
                channel,
                subscription_id,
            } => {
                let removed = session.unsubscribe(channel.as_deref(), subscription_id.as_deref());
                let ids: Vec<&str> = removed.iter().map(|id| &**id).collect();
                vec![frame(&json!({
                    "type": "ack", "subscribed": false, "channel": channel,
                    "subscription_ids": ids,
                }))]
            }
            ClientFrame::AccessToken { token } => match session.set_token(&token).await {
                Ok(()) => vec![frame(
                    &json!({"type": "system", "message": "access token updated"}),
                )],
                Err(err) => vec![error(&err, None)],
            },
            ClientFrame::Broadcast {
                channel,
                event,
                data,
            } => {
                let payload = Payload::Json(Arc::from(data.to_string()));
                match session.broadcast(&channel, &event, payload, false).await {
                    Ok(()) => Vec::new(),
                    Err(err) => vec![error(&err, Some(&channel))],
                }
            }
            ClientFrame::Presence { channel, payload } => {
                self.presence(session, channel, payload).await
            }
        }
    }

    fn envelope(&self, channel: &str, ids: &[&str]) -> Arc<str> {
        prefix(channel, ids)
    }

    fn notice(&mut self, notice: &Notice<'_>) -> Frame {
        match notice {
            Notice::Expired {
                subscriptions,
                channels,
            } => frame(&json!({
                "type": "error", "code": Code::TokenExpired.as_str(),
                "message": format!(
                    "access token expired: {subscriptions} subscription(s) closed and {channels} channel(s) left; send access_token to resubscribe"
                ),
            })),
            Notice::Refused(err) | Notice::Unsupported(err) => error(err, None),
        }
    }
}

/// The `payload` of a native change frame, borrowed from the change: no row is cloned per
/// change. Fields in alphabetical order, as the `serde_json::Map` this replaced wrote them,
/// so the text is unchanged.
#[derive(serde::Serialize)]
struct NativeBody<'a> {
    columns: &'a [fluxbase_replication::Column],
    commit_timestamp: String,
    #[serde(skip_serializing_if = "no_columns")]
    json_nulls: &'a [String],
    lsn: String,
    #[serde(skip_serializing_if = "no_columns")]
    old_json_nulls: &'a [String],
    old_record: OldJson<'a>,
    record: Option<&'a Map<String, Value>>,
    schema: &'a str,
    table: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "no_columns")]
    unchanged_toast: &'a [String],
}

impl EventFormat for NativeFormat {
    fn name(&self) -> &'static str {
        "native"
    }

    /// The `payload` object of a `postgres_changes` frame, serialized straight from the
    /// change (see [`NativeBody`]).
    fn change_body(&self, change: &ChangeView<'_>) -> Arc<str> {
        let body = NativeBody {
            columns: change.columns(),
            commit_timestamp: change.commit_timestamp(),
            // JSON `null` literals of json/jsonb columns are `null` in the records, as SQL
            // NULL is (records stay plain JSON for Supabase-shaped clients); these lists
            // tell them apart.
            json_nulls: change.json_nulls(),
            lsn: change.lsn(),
            old_json_nulls: change.old_json_nulls(),
            old_record: OldJson(change.old_record()),
            record: change.record(),
            schema: change.schema(),
            table: change.table(),
            kind: change.kind().as_str(),
            unchanged_toast: change.unchanged_toast(),
        };
        Arc::from(serde_json::to_string(&body).expect("a change body serializes"))
    }

    fn change_suffix(&self) -> &'static str {
        "}"
    }

    fn channel_event(&self, event: &ChannelEvent) -> Frame {
        let channel = Value::String(event.channel.to_string());
        let text = match &event.kind {
            ChannelEventKind::Broadcast {
                event: name,
                payload,
            } => {
                let name = Value::String(name.to_string());
                match payload {
                    // The payload's JSON text goes in as it is: never parsed again.
                    Payload::Json(data) => format!(
                        "{{\"type\":\"broadcast\",\"channel\":{channel},\"payload\":{{\"event\":{name},\"data\":{data}}}}}"
                    ),
                    Payload::Binary(bytes) => json!({
                        "type": "broadcast", "channel": channel,
                        "payload": {"event": name, "binary": base64::engine::general_purpose::STANDARD.encode(bytes)},
                    })
                    .to_string(),
                }
            }
            ChannelEventKind::PresenceDiff { joins, leaves } => json!({
                "type": "presence_diff", "channel": channel,
                "payload": {"joins": presence_map(joins), "leaves": presence_map(leaves)},
            })
            .to_string(),
        };
        Frame::text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_type() {
        let f = decode(r#"{"type":"subscribe","channel":"c1","config":{"event":"INSERT","schema":"public","table":"todos","filter":"user_id=eq.42"}}"#).unwrap();
        assert!(
            matches!(f, ClientFrame::Subscribe { ref channel, ref config } if channel == "c1" && config.table.as_deref() == Some("todos"))
        );
        assert_eq!(
            decode(r#"{"type":"heartbeat"}"#).unwrap(),
            ClientFrame::Heartbeat
        );
        assert!(matches!(
            decode(r#"{"type":"access_token","token":"x"}"#).unwrap(),
            ClientFrame::AccessToken { .. }
        ));
        assert_eq!(
            decode(r#"{"type":"broadcast","channel":"r","payload":{"event":"e","data":1}}"#)
                .unwrap(),
            ClientFrame::Broadcast {
                channel: "r".into(),
                event: "e".into(),
                data: json!(1)
            }
        );
        assert!(matches!(
            decode(
                r#"{"type":"presence","channel":"r","payload":{"event":"track","state":{"a":1}}}"#
            )
            .unwrap(),
            ClientFrame::Presence { .. }
        ));
        assert!(matches!(
            decode(r#"{"type":"unsubscribe","channel":"c1"}"#).unwrap(),
            ClientFrame::Unsubscribe { .. }
        ));
    }

    #[test]
    fn bad_frames_name_the_problem() {
        let code = |text: &str| decode(text).unwrap_err().code().as_str();
        let message = |text: &str| decode(text).unwrap_err().to_string();
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code("[1,2]"), "invalid_json");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert!(message(r#"{"channel":"c"}"#).contains("type"));
        assert!(message(r#"{"type":"subscribe"}"#).contains("channel"));
        assert!(
            message(r#"{"type":"subscribe","channel":"c","config":{"tabel":"x"}}"#)
                .contains("tabel")
        );
        assert!(decode(r#"{"type":"subscribe","channel":5}"#).is_err());
        assert!(
            decode(r#"{"type":"presence","channel":"r","payload":{"event":"dance"}}"#).is_err()
        );
        assert!(message(r#"{"type":"access_token"}"#).contains("token"));
        assert_eq!(
            code(r#"{"type":"broadcast","channel":"r","payload":5}"#),
            "invalid_message"
        );
    }

    #[test]
    fn frames_are_valid_json() {
        let body = r#"{"type":"INSERT"}"#;
        let mut codec = Native;
        let envelope = codec.envelope("c\"1", &["a", "b"]);
        let sub = |id: &str| {
            use crate::realtime::connection::{ConnId, ConnShared, QueueLimits};
            let conn = ConnShared::new(
                1,
                ConnId::new("t", 1),
                "127.0.0.1".parse().unwrap(),
                fluxbase_auth::AuthContext::anon(),
                &NATIVE,
                QueueLimits {
                    capacity: 1,
                    bytes: 1,
                    threshold: 1,
                    timeout: std::time::Duration::from_secs(1),
                },
            )
            .0;
            Arc::new(crate::realtime::index::Subscription {
                id: id.into(),
                conn,
                channel: "c\"1".into(),
                schema: "public".into(),
                table: "t".into(),
                events: crate::realtime::index::EventMask::parse("*").unwrap(),
                filter: None,
                envelope: prefix("c\"1", &[id]),
            })
        };
        let Frame::Text(two) = codec.change(&[sub("a"), sub("b")], body) else {
            panic!("text")
        };
        let v: Value = serde_json::from_str(&two).unwrap();
        assert_eq!(v["channel"], "c\"1");
        assert_eq!(v["subscription_ids"], json!(["a", "b"]));
        assert_eq!(v["payload"]["type"], "INSERT");
        assert!(envelope.starts_with("{\"type\":\"postgres_changes\""));

        let event = ChannelEvent::new(
            "room".into(),
            ChannelEventKind::Broadcast {
                event: "cursor".into(),
                payload: Payload::Json("{\"x\":1}".into()),
            },
            None,
        );
        let Frame::Text(text) = event.encoded(&NATIVE) else {
            panic!("text")
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"type": "broadcast", "channel": "room", "payload": {"event": "cursor", "data": {"x": 1}}})
        );
    }
}
