//! What every Phoenix socket of one version receives alike, encoded once per event: the
//! `data` of a `postgres_changes` message, broadcasts and presence diffs.
//!
//! Presence keys: the hub keeps one presence per connection and channel, under a key that
//! is unique across connections. A Phoenix client chooses its own key (`config.presence.key`,
//! shared by a user's tabs), so its hub key is `<key>` [`KEY_SEPARATOR`] `<connection id>`,
//! and the presence maps group hub entries by the client's key into Phoenix's
//! `{key: {metas: [{phx_ref, …}]}}`. A connection without a key (and every native client)
//! is keyed by its connection id.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::super::{
    ChangeView, ChannelEvent, ChannelEventKind, EventFormat, Frame, OldJson, OldRecord, Payload,
    Presence, no_columns,
};
use super::wire::{self, Vsn};

/// Separates a client's presence key from the connection id in a hub presence key.
pub const KEY_SEPARATOR: char = '\u{1f}';

/// The topic of a hub channel.
pub fn topic_of(channel: &str) -> String {
    format!("realtime:{channel}")
}

/// The shared bodies of one protocol version.
#[derive(Debug)]
pub struct PhoenixFormat {
    vsn: Vsn,
}

/// vsn 1.0.0 (a static: formats are compared by address).
pub static PHOENIX_V1: PhoenixFormat = PhoenixFormat { vsn: Vsn::V1 };
/// vsn 2.0.0.
pub static PHOENIX_V2: PhoenixFormat = PhoenixFormat { vsn: Vsn::V2 };

impl PhoenixFormat {
    /// The format of `vsn`.
    pub fn of(vsn: Vsn) -> &'static PhoenixFormat {
        match vsn {
            Vsn::V1 => &PHOENIX_V1,
            Vsn::V2 => &PHOENIX_V2,
        }
    }
}

/// The client's presence key of a hub presence key.
pub fn client_key(hub_key: &str) -> &str {
    hub_key
        .rsplit_once(KEY_SEPARATOR)
        .map_or(hub_key, |(key, _)| key)
}

/// Presences as Phoenix's map `{key: {metas: [meta…]}}`; a meta without `phx_ref` (a native
/// client's) gets its hub key as ref.
pub fn presence_map(presences: &[Presence]) -> Value {
    let mut map = Map::new();
    for presence in presences {
        let mut meta = match &presence.state {
            Value::Object(state) => state.clone(),
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other.clone())]),
        };
        meta.entry("phx_ref")
            .or_insert_with(|| Value::String(presence.key.clone()));
        let entry = map
            .entry(client_key(&presence.key).to_string())
            .or_insert_with(|| json!({"metas": []}));
        if let Some(metas) = entry["metas"].as_array_mut() {
            metas.push(Value::Object(meta));
        }
    }
    Value::Object(map)
}

/// The `data` of a Phoenix `postgres_changes` message, borrowed from the change: no row is
/// cloned per change. Fields in alphabetical order, as the `serde_json::Map` this replaced
/// wrote them, so the text is unchanged. `json_nulls`, `old_json_nulls` and
/// `unchanged_toast` are Fluxbase's additions (realtime-js ignores them): json/jsonb
/// columns holding the JSON `null` literal rather than SQL NULL, and columns left out of
/// `record` because their TOASTed value did not change.
#[derive(serde::Serialize)]
struct PhoenixBody<'a> {
    columns: &'a [fluxbase_replication::Column],
    commit_timestamp: String,
    errors: (),
    #[serde(rename = "eventType")]
    event_type: &'static str,
    #[serde(skip_serializing_if = "no_columns")]
    json_nulls: &'a [String],
    #[serde(skip_serializing_if = "no_columns")]
    old_json_nulls: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    old_record: Option<OldJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a Map<String, Value>>,
    schema: &'a str,
    table: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "no_columns")]
    unchanged_toast: &'a [String],
}

impl EventFormat for PhoenixFormat {
    fn name(&self) -> &'static str {
        match self.vsn {
            Vsn::V1 => "phoenix-1.0.0",
            Vsn::V2 => "phoenix-2.0.0",
        }
    }

    /// The `data` object of a `postgres_changes` message, as realtime-js reads it,
    /// serialized straight from the change (see [`PhoenixBody`]).
    fn change_body(&self, change: &ChangeView<'_>) -> Arc<str> {
        let kind = change.kind().as_str();
        let old = change.old_record();
        let body = PhoenixBody {
            columns: change.columns(),
            commit_timestamp: change.commit_timestamp(),
            errors: (),
            event_type: kind,
            json_nulls: change.json_nulls(),
            old_json_nulls: change.old_json_nulls(),
            old_record: (!matches!(old, OldRecord::None)).then_some(OldJson(old)),
            record: change.record(),
            schema: change.schema(),
            table: change.table(),
            kind,
            unchanged_toast: change.unchanged_toast(),
        };
        Arc::from(serde_json::to_string(&body).expect("a change body serializes"))
    }

    fn change_suffix(&self) -> &'static str {
        wire::change_suffix(self.vsn)
    }

    /// Broadcasts and presence diffs carry no join ref (as Phoenix's fastlane broadcasts):
    /// one frame serves every socket of the version.
    fn channel_event(&self, event: &ChannelEvent) -> Frame {
        let topic = topic_of(&event.channel);
        let null = Value::Null;
        match &event.kind {
            ChannelEventKind::Broadcast {
                event: name,
                payload,
            } => {
                if self.vsn == Vsn::V2
                    && let Some(frame) = wire::user_broadcast(&topic, name, payload)
                {
                    return frame;
                }
                // The payload's JSON text goes in as it is: never parsed again.
                let inner = match payload {
                    Payload::Json(text) => text.to_string(),
                    Payload::Binary(bytes) => json!({
                        "binary": base64::engine::general_purpose::STANDARD.encode(bytes)
                    })
                    .to_string(),
                };
                let name = Value::String(name.to_string());
                let body =
                    format!("{{\"type\":\"broadcast\",\"event\":{name},\"payload\":{inner}}}");
                let topic = Value::String(topic);
                let text = match self.vsn {
                    Vsn::V1 => format!(
                        "{{\"join_ref\":null,\"ref\":null,\"topic\":{topic},\"event\":\"broadcast\",\"payload\":{body}}}"
                    ),
                    Vsn::V2 => format!("[null,null,{topic},\"broadcast\",{body}]"),
                };
                Frame::text(text)
            }
            ChannelEventKind::PresenceDiff { joins, leaves } => wire::encode(
                self.vsn,
                &null,
                &null,
                &topic,
                "presence_diff",
                &json!({"joins": presence_map(joins), "leaves": presence_map(leaves)}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presences_group_by_the_clients_key() {
        let sep = KEY_SEPARATOR;
        let map = presence_map(&[
            Presence {
                key: format!("alice{sep}i-1"),
                state: json!({"phx_ref": "i-1.1", "tab": 1}),
            },
            Presence {
                key: format!("alice{sep}i-2"),
                state: json!({"phx_ref": "i-2.1", "tab": 2}),
            },
            Presence {
                key: "i-3".into(),
                state: json!({"native": true}),
            },
        ]);
        assert_eq!(
            map,
            json!({
                "alice": {"metas": [{"phx_ref": "i-1.1", "tab": 1}, {"phx_ref": "i-2.1", "tab": 2}]},
                "i-3": {"metas": [{"phx_ref": "i-3", "native": true}]},
            })
        );
    }

    #[test]
    fn broadcasts_in_each_version() {
        let event = ChannelEvent::new(
            "room".into(),
            ChannelEventKind::Broadcast {
                event: "cursor".into(),
                payload: Payload::Json("{\"x\":1}".into()),
            },
            None,
        );
        let Frame::Text(v1) = event.encoded(&PHOENIX_V1) else {
            panic!("text")
        };
        let v1: Value = serde_json::from_str(&v1).unwrap();
        assert_eq!(
            v1,
            json!({"join_ref": null, "ref": null, "topic": "realtime:room", "event": "broadcast",
                   "payload": {"type": "broadcast", "event": "cursor", "payload": {"x": 1}}})
        );
        let Frame::Binary(v2) = event.encoded(&PHOENIX_V2) else {
            panic!("binary")
        };
        assert_eq!(v2[0], 4);
        assert!(v2.ends_with(b"{\"x\":1}"));
    }
}
