//! Codecs: the wire protocols over the hub. The hub speaks only types ([`Session`] calls,
//! [`ChangeView`]s, [`ChannelEvent`]s, [`RealtimeError`]s); a codec reads a protocol's client
//! frames into those calls and writes the hub's answers and events as that protocol's
//! frames. Every native frame lives in [`native`], every Phoenix frame in [`phoenix`];
//! neither touches the hub.
//!
//! Two traits, because two things differ in how often they run:
//! - [`EventFormat`]: stateless, shared. It encodes what many sockets receive alike — a
//!   change's body, a channel event — **once per event** (the dispatcher asks each format
//!   in use for one body per change; a channel event caches one frame per format).
//! - [`Codec`]: one per socket, with that socket's protocol state (joined topics, refs). It
//!   handles client frames by calling the hub through [`Session`], wraps shared bodies in
//!   the socket's own envelope (built once per subscription, see
//!   [`SubscribeRequest::envelope`]), and writes the notices of the socket loop.
//!
//! The Phoenix channel protocol of `@supabase/realtime-js` ([`phoenix`], vsn 1.0.0 and
//! 2.0.0) is the second codec: the route `/realtime/v1/websocket` upgrades and calls
//! `engine.serve(session, stream, ip, auth, Phoenix::new(vsn))` — the same socket loop,
//! limits, backpressure and RLS as the native protocol.

pub mod native;
pub mod phoenix;

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use fluxbase_replication::{Change, Op, Transaction};
use serde_json::{Map, Value};

pub use super::channels::{ChannelEvent, ChannelEventKind, Payload, Presence};
use super::error::RealtimeError;
pub use super::hub::{Session, SubscribeRequest, Subscribed};
use super::index::Subscription;

/// A WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (UTF-8).
    Text(ByteString),
    /// A binary frame.
    Binary(Bytes),
}

impl Frame {
    /// A text frame.
    pub fn text(text: impl Into<ByteString>) -> Frame {
        Frame::Text(text.into())
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many of the row's values a change event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// New and old rows as decoded.
    Full,
    /// A DELETE whose old row's visibility is not established: its primary key only.
    KeyOnly,
}

/// The kind of a change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
    /// The table was emptied (no rows).
    Truncate,
}

impl ChangeKind {
    /// `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "INSERT",
            ChangeKind::Update => "UPDATE",
            ChangeKind::Delete => "DELETE",
            ChangeKind::Truncate => "TRUNCATE",
        }
    }
}

/// The old row of a change event, as much of it as the recipient may see.
#[derive(Debug, Clone, Copy)]
pub enum OldRecord<'a> {
    /// None (INSERT, TRUNCATE).
    None,
    /// The primary key only (UPDATE, and a DELETE whose old row was not judged).
    Key(Option<&'a Map<String, Value>>),
    /// Every column the server sent (a DELETE whose visibility was established).
    Full(&'a Map<String, Value>),
}

/// An old record as a format writes it: `null` when the event has none (INSERT), `{}` for
/// a key the change lacks, else the key or row. Serialized straight from the change, never
/// cloned into a `Value` first.
#[derive(Debug, Clone, Copy)]
pub struct OldJson<'a>(pub OldRecord<'a>);

impl serde::Serialize for OldJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            OldRecord::None => serializer.serialize_none(),
            OldRecord::Key(None) => serializer.serialize_map(Some(0))?.end(),
            OldRecord::Key(Some(row)) | OldRecord::Full(row) => row.serialize(serializer),
        }
    }
}

/// Whether a list of column names is empty (the formats leave such lists out).
pub(crate) fn no_columns(columns: &&[String]) -> bool {
    columns.is_empty()
}

/// One change as the hub hands it to formats: what the event may show is decided here
/// (which rows, which parts), so no codec re-implements visibility.
#[derive(Debug, Clone, Copy)]
pub struct ChangeView<'a> {
    tx: &'a Transaction,
    change: &'a Change,
    kind: ChangeKind,
    detail: Detail,
}

impl<'a> ChangeView<'a> {
    /// A view of `change` (not a logical message) at `detail`.
    pub fn new(tx: &'a Transaction, change: &'a Change, detail: Detail) -> Option<Self> {
        let kind = match change.op {
            Op::Insert => ChangeKind::Insert,
            Op::Update => ChangeKind::Update,
            Op::Delete => ChangeKind::Delete,
            Op::Truncate => ChangeKind::Truncate,
            Op::Message => return None,
        };
        Some(ChangeView {
            tx,
            change,
            kind,
            detail,
        })
    }

    /// What happened.
    pub fn kind(&self) -> ChangeKind {
        self.kind
    }

    /// Schema of the table.
    pub fn schema(&self) -> &'a str {
        &self.change.schema
    }

    /// The table.
    pub fn table(&self) -> &'a str {
        &self.change.table
    }

    /// The table's columns (name and type).
    pub fn columns(&self) -> &'a [fluxbase_replication::Column] {
        &self.change.columns
    }

    /// The commit time, RFC 3339 UTC.
    pub fn commit_timestamp(&self) -> String {
        self.tx.commit_timestamp.to_string()
    }

    /// The commit LSN (`0/16B3748`).
    pub fn lsn(&self) -> String {
        self.tx.commit_lsn.to_string()
    }

    /// The new row (INSERT, UPDATE); unchanged TOAST values are absent (see
    /// [`ChangeView::unchanged_toast`]).
    pub fn record(&self) -> Option<&'a Map<String, Value>> {
        match self.kind {
            ChangeKind::Insert | ChangeKind::Update => self.change.record.as_ref(),
            ChangeKind::Delete | ChangeKind::Truncate => None,
        }
    }

    /// The old row, as far as it may be shown.
    pub fn old_record(&self) -> OldRecord<'a> {
        match (self.kind, self.detail) {
            (ChangeKind::Insert | ChangeKind::Truncate, _) => OldRecord::None,
            (ChangeKind::Delete, Detail::Full) => match &self.change.old_record {
                Some(old) => OldRecord::Full(old),
                None => OldRecord::Key(self.change.primary_key.as_ref()),
            },
            // UPDATE's old image and an unestablished DELETE carry the key only: the old
            // row's visibility is not what was decided.
            _ => OldRecord::Key(self.change.primary_key.as_ref()),
        }
    }

    /// Columns of the new row left out because their TOASTed value did not change.
    pub fn unchanged_toast(&self) -> &'a [String] {
        &self.change.unchanged_toast
    }

    /// json/jsonb columns of [`ChangeView::record`] holding the JSON `null` literal (which
    /// is a value, unlike SQL NULL; both are `null` in the record).
    pub fn json_nulls(&self) -> &'a [String] {
        match self.kind {
            ChangeKind::Insert | ChangeKind::Update => &self.change.json_nulls,
            _ => &[],
        }
    }

    /// The same for a full old row.
    pub fn old_json_nulls(&self) -> &'a [String] {
        match self.old_record() {
            OldRecord::Full(_) => &self.change.old_json_nulls,
            _ => &[],
        }
    }
}

/// What the socket loop itself tells a client (not an answer to a frame).
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// The token expired: these subscriptions were dropped and these channels left.
    Expired {
        /// Subscriptions dropped.
        subscriptions: usize,
        /// Channels left.
        channels: usize,
    },
    /// The connection is refused or ends (limit, bad token) — sent before the close.
    Refused(&'a RealtimeError),
    /// A frame the protocol cannot carry (e.g. binary where only text is spoken).
    Unsupported(&'a RealtimeError),
}

/// How one protocol writes the events many sockets receive alike: once per event, shared
/// by every socket of that protocol. Implementations are statics (`&'static dyn`), so the
/// dispatcher keys its per-change cache by address.
pub trait EventFormat: Send + Sync + 'static {
    /// The format's name (logs).
    fn name(&self) -> &'static str;

    /// The body of a change frame; the recipient's codec writes its envelope before it
    /// and [`EventFormat::change_suffix`] after it.
    fn change_body(&self, change: &ChangeView<'_>) -> Arc<str>;

    /// What closes a change frame after its body.
    fn change_suffix(&self) -> &'static str;

    /// A channel event (broadcast, presence diff) as a complete frame.
    fn channel_event(&self, event: &ChannelEvent) -> Frame;
}

/// One socket's protocol: client frames into hub calls, hub answers and events into frames.
/// The socket loop owns it; its futures run on the socket's worker thread (not `Send`).
#[allow(async_fn_in_trait)]
pub trait Codec: 'static {
    /// The shared format of this socket's events.
    fn format(&self) -> &'static dyn EventFormat;

    /// Handles one client frame: decodes it, calls the hub, returns the replies to send
    /// now (after anything already queued for the socket).
    async fn handle(&mut self, frame: Frame, session: &Session<'_>) -> Vec<Frame>;

    /// A change for `subs` (this socket's matching subscriptions of one channel): their
    /// envelope, the shared `body`, the format's suffix.
    fn change(&mut self, subs: &[Arc<Subscription>], body: &str) -> Frame {
        let suffix = self.format().change_suffix();
        let envelope = match subs {
            [one] => one.envelope.clone(),
            several => {
                let ids: Vec<&str> = several.iter().map(|s| s.id.as_ref()).collect();
                self.envelope(&several[0].channel, &ids)
            }
        };
        let mut out = String::with_capacity(envelope.len() + body.len() + suffix.len());
        out.push_str(&envelope);
        out.push_str(body);
        out.push_str(suffix);
        Frame::text(out)
    }

    /// The envelope of a change frame for subscriptions `ids` of `channel`: what comes
    /// before the body.
    fn envelope(&self, channel: &str, ids: &[&str]) -> Arc<str>;

    /// A channel event for this socket (by default the format's frame, encoded once per
    /// event and format).
    fn channel_event(&mut self, event: &ChannelEvent) -> Option<Frame> {
        Some(event.encoded(self.format()))
    }

    /// A notice of the socket loop.
    fn notice(&mut self, notice: &Notice<'_>) -> Frame;

    /// The frames of a notice, for protocols that tell it per channel (Phoenix closes each
    /// joined topic when the token expires); by default the one [`Codec::notice`] frame.
    fn notices(&mut self, notice: &Notice<'_>) -> Vec<Frame> {
        vec![self.notice(notice)]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fluxbase_replication::{Change, Column, Lsn, Op, Timestamp, Transaction};
    use serde_json::{Map, Value, json};

    use super::phoenix::format::PHOENIX_V2;
    use super::{ChangeView, Detail, EventFormat, native::NATIVE};

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    fn change(op: Op) -> (Transaction, Change) {
        let change = Change {
            op,
            schema: Arc::from("public"),
            table: Arc::from("t"),
            relation_id: 1,
            columns: Arc::from(vec![Column {
                name: "id".into(),
                type_name: "int8".into(),
            }]),
            record: Some(object(json!({"id": 1, "meta": null, "z": "\"quoted\""}))),
            old_record: Some(object(json!({"id": 1, "meta": {"a": [1, 2]}}))),
            primary_key: Some(object(json!({"id": 1}))),
            unchanged_toast: vec!["big".into()],
            json_nulls: vec!["meta".into()],
            old_json_nulls: vec!["other".into()],
            message: None,
        };
        let tx = Transaction {
            xid: 1,
            begin_lsn: Lsn(0x100),
            commit_lsn: Lsn(0x200),
            end_lsn: Lsn(0x208),
            commit_timestamp: Timestamp::from_pg_micros(817_000_000_000_000),
            changes: Vec::new(),
        };
        (tx, change)
    }

    /// The bodies are serialized from borrowed structs; their text must be exactly what the
    /// `json!` values they replaced wrote (keys sorted, same nulls and omissions).
    #[test]
    fn bodies_are_the_text_the_json_values_wrote() {
        for (op, detail) in [
            (Op::Insert, Detail::Full),
            (Op::Update, Detail::Full),
            (Op::Delete, Detail::Full),
            (Op::Delete, Detail::KeyOnly),
            (Op::Truncate, Detail::Full),
        ] {
            let (tx, change) = change(op);
            let view = ChangeView::new(&tx, &change, detail).unwrap();
            let mut native = json!({
                "type": view.kind().as_str(),
                "schema": view.schema(),
                "table": view.table(),
                "commit_timestamp": view.commit_timestamp(),
                "lsn": view.lsn(),
                "columns": view.columns(),
                "record": view.record().map_or(Value::Null, |r| Value::Object(r.clone())),
                "old_record": match view.old_record() {
                    super::OldRecord::None => Value::Null,
                    super::OldRecord::Key(k) => Value::Object(k.cloned().unwrap_or_default()),
                    super::OldRecord::Full(o) => Value::Object(o.clone()),
                },
            });
            let mut phoenix = json!({
                "schema": view.schema(),
                "table": view.table(),
                "commit_timestamp": view.commit_timestamp(),
                "eventType": view.kind().as_str(),
                "type": view.kind().as_str(),
                "columns": view.columns(),
                "errors": null,
            });
            if let Some(r) = view.record() {
                phoenix["record"] = Value::Object(r.clone());
            }
            if !matches!(view.old_record(), super::OldRecord::None) {
                phoenix["old_record"] = native["old_record"].clone();
            }
            for body in [&mut native, &mut phoenix] {
                if !view.unchanged_toast().is_empty() {
                    body["unchanged_toast"] = json!(view.unchanged_toast());
                }
                if !view.json_nulls().is_empty() {
                    body["json_nulls"] = json!(view.json_nulls());
                }
                if !view.old_json_nulls().is_empty() {
                    body["old_json_nulls"] = json!(view.old_json_nulls());
                }
            }
            assert_eq!(
                &*NATIVE.change_body(&view),
                native.to_string(),
                "{op:?} {detail:?}"
            );
            assert_eq!(
                &*PHOENIX_V2.change_body(&view),
                phoenix.to_string(),
                "{op:?} {detail:?}"
            );
        }
    }
}
