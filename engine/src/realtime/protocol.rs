//! The native JSON frame codec of `GET /realtime` (DESIGN §2). Kept apart from the hub so a
//! Phoenix-channel codec for `@supabase/realtime-js` can sit beside it over the same engine.

use bytestring::ByteString;
use serde::Deserialize;
use serde_json::{Value, json};

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
        /// `{"event": "...", "data": …}`
        payload: Value,
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
    /// INSERT, UPDATE, DELETE or `*` (default).
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

/// Why a frame could not be decoded; sent back as an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Stable code.
    pub code: &'static str,
    /// What was wrong, naming the field.
    pub message: String,
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

fn missing(field: &str, kind: &str) -> DecodeError {
    DecodeError {
        code: "invalid_message",
        message: format!("{kind} needs a string field {field:?}"),
    }
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| DecodeError {
        code: "invalid_json",
        message: format!("frame is not a JSON object of the protocol: {e}"),
    })?;
    let kind = raw.kind.ok_or_else(|| DecodeError {
        code: "invalid_message",
        message: "missing field \"type\"".into(),
    })?;
    match kind.as_str() {
        "subscribe" => {
            let channel = raw.channel.ok_or_else(|| missing("channel", "subscribe"))?;
            let config = raw.config.unwrap_or_else(|| json!({}));
            let config: SubscribeConfig =
                serde_json::from_value(config).map_err(|e| DecodeError {
                    code: "invalid_message",
                    message: format!("subscribe config: {e}"),
                })?;
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
            let payload = raw.payload.ok_or_else(|| DecodeError {
                code: "invalid_message",
                message: "broadcast needs a \"payload\"".into(),
            })?;
            Ok(ClientFrame::Broadcast { channel, payload })
        }
        "presence" => {
            let channel = raw.channel.ok_or_else(|| missing("channel", "presence"))?;
            let payload: PresencePayload = raw
                .payload
                .ok_or_else(|| DecodeError {
                    code: "invalid_message",
                    message: "presence needs a \"payload\"".into(),
                })
                .and_then(|p| {
                    serde_json::from_value(p).map_err(|e| DecodeError {
                        code: "invalid_message",
                        message: format!("presence payload: {e}"),
                    })
                })?;
            if payload.event != "track" && payload.event != "untrack" {
                return Err(DecodeError {
                    code: "invalid_message",
                    message: format!(
                        "presence event must be \"track\" or \"untrack\", got {:?}",
                        payload.event
                    ),
                });
            }
            Ok(ClientFrame::Presence { channel, payload })
        }
        other => Err(DecodeError {
            code: "unknown_type",
            message: format!(
                "unknown message type {other:?}: use subscribe, unsubscribe, heartbeat, access_token, broadcast or presence"
            ),
        }),
    }
}

/// Encodes a server frame.
pub fn encode(value: &Value) -> ByteString {
    ByteString::from(value.to_string())
}

/// `{"type":"error","code","message"}` (with the channel when there is one).
pub fn error(code: &str, message: &str, channel: Option<&str>) -> ByteString {
    let mut frame = json!({"type": "error", "code": code, "message": message});
    if let Some(channel) = channel {
        frame["channel"] = Value::String(channel.to_string());
    }
    encode(&frame)
}

/// `{"type":"heartbeat"}`
pub fn heartbeat() -> ByteString {
    encode(&json!({"type": "heartbeat"}))
}

/// `{"type":"system", …}`
pub fn system(message: &str) -> ByteString {
    encode(&json!({"type": "system", "message": message}))
}

/// The start of a `postgres_changes` frame, up to (and including) `"payload":`.
pub fn postgres_changes_prefix(channel: &str, subscription_ids: &[&str]) -> String {
    let ids = serde_json::to_string(subscription_ids).unwrap_or_else(|_| "[]".into());
    let channel = serde_json::to_string(channel).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"type\":\"postgres_changes\",\"channel\":{channel},\"subscription_ids\":{ids},\"payload\":"
    )
}

/// A `postgres_changes` frame from its prefix and the change's payload, serialized once per
/// change: one allocation and two copies per recipient.
pub fn postgres_changes_frame(prefix: &str, payload: &str) -> ByteString {
    let mut out = String::with_capacity(prefix.len() + payload.len() + 1);
    out.push_str(prefix);
    out.push_str(payload);
    out.push('}');
    ByteString::from(out)
}

/// A `postgres_changes` frame.
pub fn postgres_changes(channel: &str, subscription_ids: &[&str], payload: &str) -> ByteString {
    postgres_changes_frame(&postgres_changes_prefix(channel, subscription_ids), payload)
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
        assert!(matches!(
            decode(r#"{"type":"broadcast","channel":"r","payload":{"event":"e","data":1}}"#)
                .unwrap(),
            ClientFrame::Broadcast { .. }
        ));
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
        assert_eq!(decode("not json").unwrap_err().code, "invalid_json");
        assert_eq!(decode("[1,2]").unwrap_err().code, "invalid_json");
        assert_eq!(
            decode(r#"{"type":"dance"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert!(
            decode(r#"{"channel":"c"}"#)
                .unwrap_err()
                .message
                .contains("type")
        );
        assert!(
            decode(r#"{"type":"subscribe"}"#)
                .unwrap_err()
                .message
                .contains("channel")
        );
        assert!(
            decode(r#"{"type":"subscribe","channel":"c","config":{"tabel":"x"}}"#)
                .unwrap_err()
                .message
                .contains("tabel")
        );
        assert!(decode(r#"{"type":"subscribe","channel":5}"#).is_err());
        assert!(
            decode(r#"{"type":"presence","channel":"r","payload":{"event":"dance"}}"#).is_err()
        );
        assert!(
            decode(r#"{"type":"access_token"}"#)
                .unwrap_err()
                .message
                .contains("token")
        );
    }

    #[test]
    fn change_envelope_is_valid_json() {
        let f = postgres_changes("c\"1", &["a", "b"], r#"{"type":"INSERT"}"#);
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["channel"], "c\"1");
        assert_eq!(v["subscription_ids"], json!(["a", "b"]));
        assert_eq!(v["payload"]["type"], "INSERT");
    }
}
