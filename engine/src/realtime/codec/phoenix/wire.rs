//! The Phoenix channel wire format of `@supabase/realtime-js`, both versions:
//!
//! ```text
//! vsn 1.0.0  {"join_ref":"1","ref":"2","topic":"realtime:room","event":"phx_join","payload":{…}}
//! vsn 2.0.0  ["1","2","realtime:room","phx_join",{…}]
//!            + binary user broadcasts:
//!   client push (kind 3): [3][join_ref len][ref len][topic len][event len][meta len][encoding]
//!                         join_ref ref topic event meta payload
//!   server push (kind 4): [4][topic len][event len][meta len][encoding] topic event meta payload
//! ```
//! Lengths are one byte each (UTF-8 byte counts); `encoding` is 0 for raw bytes, 1 for JSON.
//! Refs are echoed exactly as the client wrote them (realtime-js compares them with `===`).

use bytes::{BufMut, Bytes, BytesMut};
use fluxbase_migrations::Code;
use serde_json::{Map, Value, json};

use super::super::{Frame, Payload};
use crate::realtime::error::RealtimeError;

/// A protocol version (`vsn` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// `1.0.0`: JSON objects.
    V1,
    /// `2.0.0`: JSON arrays, and binary frames for user broadcasts.
    V2,
}

impl Vsn {
    /// The version named `vsn`, if supported.
    pub fn parse(vsn: &str) -> Option<Vsn> {
        match vsn {
            "1.0.0" => Some(Vsn::V1),
            "2.0.0" => Some(Vsn::V2),
            _ => None,
        }
    }

    /// `1.0.0` or `2.0.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Vsn::V1 => "1.0.0",
            Vsn::V2 => "2.0.0",
        }
    }
}

/// Binary frame kind of a client's user broadcast.
const KIND_USER_BROADCAST_PUSH: u8 = 3;
/// Binary frame kind of a user broadcast the server sends.
const KIND_USER_BROADCAST: u8 = 4;
/// Payload encodings of the binary frames.
const ENCODING_BINARY: u8 = 0;
const ENCODING_JSON: u8 = 1;

/// A JSON message from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The ref of the join this message belongs to (`null` for heartbeats).
    pub join_ref: Value,
    /// The message's own ref (what the reply echoes).
    pub msg_ref: Value,
    /// `realtime:<channel>`, or `phoenix` for heartbeats.
    pub topic: String,
    /// `phx_join`, `phx_leave`, `heartbeat`, `access_token`, `broadcast`, `presence`…
    pub event: String,
    /// The event's payload.
    pub payload: Value,
}

/// A user broadcast sent as a binary frame (vsn 2.0.0, kind 3).
#[derive(Debug, Clone, PartialEq)]
pub struct UserBroadcast {
    /// The join's ref.
    pub join_ref: Value,
    /// The message's ref.
    pub msg_ref: Value,
    /// The topic.
    pub topic: String,
    /// The user's event name.
    pub event: String,
    /// The payload: JSON text (validated) or bytes.
    pub payload: Payload,
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON message (either version).
    Message(Message),
    /// A binary user broadcast (vsn 2.0.0).
    UserBroadcast(UserBroadcast),
}

fn invalid(message: impl Into<String>) -> RealtimeError {
    RealtimeError::new(Code::InvalidMessage, message)
}

/// A ref as the protocol allows it: a string, a number or `null`.
fn check_ref(value: Value, field: &str) -> Result<Value, RealtimeError> {
    match value {
        Value::Null | Value::String(_) | Value::Number(_) => Ok(value),
        _ => Err(invalid(format!("{field} must be a string or null"))),
    }
}

fn string(value: Value, field: &str) -> Result<String, RealtimeError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(invalid(format!("{field} must be a string"))),
    }
}

/// Decodes one client frame of version `vsn`.
pub fn decode(vsn: Vsn, frame: &Frame) -> Result<Incoming, RealtimeError> {
    match (vsn, frame) {
        (Vsn::V1, Frame::Binary(_)) => Err(invalid(
            "binary frames need vsn=2.0.0: send JSON text frames",
        )),
        (Vsn::V2, Frame::Binary(bytes)) => decode_binary(bytes).map(Incoming::UserBroadcast),
        (_, Frame::Text(text)) => {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                RealtimeError::new(Code::InvalidJson, format!("frame is not JSON: {e}"))
            })?;
            decode_json(vsn, value).map(Incoming::Message)
        }
    }
}

/// A JSON message: an object (1.0.0) or a five-element array (2.0.0).
fn decode_json(vsn: Vsn, value: Value) -> Result<Message, RealtimeError> {
    let (join_ref, msg_ref, topic, event, payload) = match (vsn, value) {
        (Vsn::V1, Value::Object(mut map)) => {
            let mut take = |k: &str| map.remove(k).unwrap_or(Value::Null);
            (
                take("join_ref"),
                take("ref"),
                take("topic"),
                take("event"),
                take("payload"),
            )
        }
        (Vsn::V2, Value::Array(items)) if items.len() == 5 => {
            let mut items = items.into_iter();
            let mut next = || items.next().unwrap_or(Value::Null);
            (next(), next(), next(), next(), next())
        }
        (Vsn::V1, _) => {
            return Err(RealtimeError::new(
                Code::InvalidJson,
                "vsn 1.0.0 frames are JSON objects {join_ref, ref, topic, event, payload}",
            ));
        }
        (Vsn::V2, _) => {
            return Err(RealtimeError::new(
                Code::InvalidJson,
                "vsn 2.0.0 frames are JSON arrays [join_ref, ref, topic, event, payload]",
            ));
        }
    };
    Ok(Message {
        join_ref: check_ref(join_ref, "join_ref")?,
        msg_ref: check_ref(msg_ref, "ref")?,
        topic: string(topic, "topic")?,
        event: string(event, "event")?,
        payload: match payload {
            Value::Null => Value::Object(Map::new()),
            payload => payload,
        },
    })
}

/// A kind-3 binary frame.
fn decode_binary(bytes: &Bytes) -> Result<UserBroadcast, RealtimeError> {
    const HEADER: usize = 7;
    let short = || invalid("binary frame is shorter than its header says");
    if bytes.len() < HEADER {
        return Err(short());
    }
    if bytes[0] != KIND_USER_BROADCAST_PUSH {
        return Err(invalid(format!(
            "binary frame of kind {} is not supported: only user broadcasts (kind 3)",
            bytes[0]
        )));
    }
    let lens = [bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]].map(usize::from);
    let encoding = bytes[6];
    let mut at = HEADER;
    let mut fields = Vec::with_capacity(5);
    for (len, name) in lens
        .iter()
        .zip(["join_ref", "ref", "topic", "event", "metadata"])
    {
        let raw = bytes.get(at..at + len).ok_or_else(short)?;
        let text = std::str::from_utf8(raw)
            .map_err(|_| invalid(format!("binary frame: {name} is not UTF-8")))?;
        fields.push(text.to_string());
        at += len;
    }
    let body = bytes.slice(at..);
    let payload = match encoding {
        ENCODING_BINARY => Payload::Binary(body),
        ENCODING_JSON => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| invalid("binary frame: JSON payload is not UTF-8"))?;
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
                RealtimeError::new(
                    Code::InvalidJson,
                    format!("binary frame: payload is not JSON: {e}"),
                )
            })?;
            Payload::Json(text.into())
        }
        other => {
            return Err(invalid(format!(
                "binary frame: payload encoding {other} is neither 0 (binary) nor 1 (JSON)"
            )));
        }
    };
    let mut fields = fields.into_iter();
    let mut next = || fields.next().unwrap_or_default();
    let (join_ref, msg_ref, topic, event) = (next(), next(), next(), next());
    let opt = |s: String| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s)
        }
    };
    Ok(UserBroadcast {
        join_ref: opt(join_ref),
        msg_ref: opt(msg_ref),
        topic,
        event,
        payload,
    })
}

/// A server message as a frame of version `vsn`.
pub fn encode(
    vsn: Vsn,
    join_ref: &Value,
    msg_ref: &Value,
    topic: &str,
    event: &str,
    payload: &Value,
) -> Frame {
    let text = match vsn {
        Vsn::V1 => json!({
            "join_ref": join_ref, "ref": msg_ref, "topic": topic, "event": event,
            "payload": payload,
        })
        .to_string(),
        Vsn::V2 => json!([join_ref, msg_ref, topic, event, payload]).to_string(),
    };
    Frame::text(text)
}

/// What comes before a change's `data` in a `postgres_changes` frame of `topic`, for the
/// bindings `ids`; [`change_suffix`] closes it.
pub fn change_prefix(vsn: Vsn, join_ref: &Value, topic: &str, ids: &[&str]) -> String {
    let ids = json!(ids);
    let topic = Value::String(topic.to_string());
    match vsn {
        Vsn::V1 => format!(
            "{{\"join_ref\":{join_ref},\"ref\":null,\"topic\":{topic},\"event\":\"postgres_changes\",\"payload\":{{\"ids\":{ids},\"data\":"
        ),
        Vsn::V2 => {
            format!("[{join_ref},null,{topic},\"postgres_changes\",{{\"ids\":{ids},\"data\":")
        }
    }
}

/// What closes a `postgres_changes` frame after its `data`.
pub fn change_suffix(vsn: Vsn) -> &'static str {
    match vsn {
        Vsn::V1 => "}}",
        Vsn::V2 => "}]",
    }
}

/// A user broadcast from the server as a kind-4 binary frame, or `None` when the topic or
/// event is too long for the one-byte lengths.
pub fn user_broadcast(topic: &str, event: &str, payload: &Payload) -> Option<Frame> {
    let topic_len = u8::try_from(topic.len()).ok()?;
    let event_len = u8::try_from(event.len()).ok()?;
    let (encoding, body): (u8, &[u8]) = match payload {
        Payload::Json(text) => (ENCODING_JSON, text.as_bytes()),
        Payload::Binary(bytes) => (ENCODING_BINARY, bytes),
    };
    let mut out = BytesMut::with_capacity(5 + topic.len() + event.len() + body.len());
    out.put_slice(&[KIND_USER_BROADCAST, topic_len, event_len, 0, encoding]);
    out.put_slice(topic.as_bytes());
    out.put_slice(event.as_bytes());
    out.put_slice(body);
    Some(Frame::Binary(out.freeze()))
}

/// A client's kind-3 frame, as realtime-js writes it (for tests and test clients).
pub fn user_broadcast_push(
    join_ref: &str,
    msg_ref: &str,
    topic: &str,
    event: &str,
    payload: &Payload,
) -> Bytes {
    let (encoding, body): (u8, &[u8]) = match payload {
        Payload::Json(text) => (ENCODING_JSON, text.as_bytes()),
        Payload::Binary(bytes) => (ENCODING_BINARY, bytes),
    };
    let len = |s: &str| u8::try_from(s.len()).unwrap_or(u8::MAX);
    let mut out = BytesMut::new();
    out.put_slice(&[
        KIND_USER_BROADCAST_PUSH,
        len(join_ref),
        len(msg_ref),
        len(topic),
        len(event),
        0,
        encoding,
    ]);
    for part in [join_ref, msg_ref, topic, event] {
        out.put_slice(&part.as_bytes()[..usize::from(len(part))]);
    }
    out.put_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_shapes_decode_to_one_message() {
        let v1 = Frame::text(
            r#"{"topic":"realtime:r","event":"phx_join","payload":{"a":1},"ref":"2","join_ref":"2"}"#,
        );
        let v2 = Frame::text(r#"["2","2","realtime:r","phx_join",{"a":1}]"#);
        let a = decode(Vsn::V1, &v1).unwrap();
        let b = decode(Vsn::V2, &v2).unwrap();
        assert_eq!(a, b);
        let Incoming::Message(m) = a else { panic!() };
        assert_eq!(m.topic, "realtime:r");
        assert_eq!(m.msg_ref, json!("2"));
        // Each version refuses the other's shape, naming it.
        assert!(
            decode(Vsn::V1, &v2)
                .unwrap_err()
                .to_string()
                .contains("1.0.0")
        );
        assert!(
            decode(Vsn::V2, &v1)
                .unwrap_err()
                .to_string()
                .contains("2.0.0")
        );
        assert_eq!(
            decode(Vsn::V2, &Frame::text(r#"[null,null,5,"x",{}]"#))
                .unwrap_err()
                .to_string(),
            "topic must be a string"
        );
        assert!(decode(Vsn::V1, &Frame::Binary(Bytes::from_static(b"\x03"))).is_err());
    }

    #[test]
    fn binary_broadcasts_round_trip() {
        let json = Payload::Json("{\"x\":\"é\"}".into());
        let push = user_broadcast_push("1", "7", "realtime:rôom", "cursor", &json);
        let Incoming::UserBroadcast(b) = decode(Vsn::V2, &Frame::Binary(push)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (b.join_ref, b.msg_ref, b.topic.as_str(), b.event.as_str()),
            (json!("1"), json!("7"), "realtime:rôom", "cursor")
        );
        assert_eq!(b.payload, json);
        let raw = Payload::Binary(Bytes::from_static(&[0, 159, 146, 150]));
        let push = user_broadcast_push("", "", "realtime:r", "e", &raw);
        let Incoming::UserBroadcast(b) = decode(Vsn::V2, &Frame::Binary(push)).unwrap() else {
            panic!()
        };
        assert_eq!((b.join_ref, b.payload), (Value::Null, raw));

        let Some(Frame::Binary(out)) = user_broadcast("realtime:r", "e", &json) else {
            panic!()
        };
        assert_eq!(&out[..5], &[4, 10, 1, 0, 1]);
        assert_eq!(&out[5..15], b"realtime:r");
        assert_eq!(&out[16..], "{\"x\":\"é\"}".as_bytes());
        assert!(user_broadcast(&"t".repeat(256), "e", &json).is_none());
    }

    #[test]
    fn bad_binary_frames_name_the_problem() {
        let err = |b: &[u8]| {
            decode(Vsn::V2, &Frame::Binary(Bytes::copy_from_slice(b)))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[3, 0]).contains("shorter"));
        assert!(err(&[9, 0, 0, 0, 0, 0, 1]).contains("kind 9"));
        assert!(err(&[3, 0, 0, 5, 0, 0, 1, b'a']).contains("shorter"));
        assert!(err(&[3, 0, 0, 0, 0, 0, 7]).contains("encoding 7"));
        assert!(err(&[3, 0, 0, 0, 0, 0, 1, b'{']).contains("not JSON"));
    }

    #[test]
    fn change_frames_are_valid_json_in_both_versions() {
        for vsn in [Vsn::V1, Vsn::V2] {
            let text = format!(
                "{}{}{}",
                change_prefix(vsn, &json!("3"), "realtime:r\"", &["a", "b"]),
                r#"{"type":"INSERT"}"#,
                change_suffix(vsn)
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            let payload = match vsn {
                Vsn::V1 => {
                    assert_eq!(v["topic"], "realtime:r\"");
                    assert_eq!(v["join_ref"], "3");
                    &v["payload"]
                }
                Vsn::V2 => {
                    assert_eq!(v[2], "realtime:r\"");
                    assert_eq!(v[3], "postgres_changes");
                    &v[4]
                }
            };
            assert_eq!(payload["ids"], json!(["a", "b"]));
            assert_eq!(payload["data"]["type"], "INSERT");
        }
    }
}
