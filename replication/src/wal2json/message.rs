//! wal2json format-version 2 messages (one JSON object per action), parsed without
//! interpretation. Column values stay raw JSON, so numbers keep the digits the server wrote
//! (a `numeric` may not fit an f64).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::DecodeError;
use crate::lsn::Lsn;
use crate::transaction::{Op, Timestamp};

/// Longest unknown action kept in [`DecodeError::UnknownAction`].
const MAX_ACTION_LEN: usize = 16;

/// A column of a row (`columns`, `identity`) or of the primary key (`pk`, without value).
#[derive(Debug, Clone, Deserialize)]
pub struct Wal2JsonColumn<'a> {
    /// Column name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Type OID (`include-type-oids`).
    pub typeoid: u32,
    /// The value as wal2json wrote it; `None` for SQL NULL (and for `pk` entries).
    #[serde(borrow, default)]
    pub value: Option<&'a RawValue>,
}

impl Wal2JsonColumn<'_> {
    /// The value as PostgreSQL's text output, `None` for NULL. wal2json writes numbers
    /// (integers, floats, numeric) unquoted with the server's digits, booleans as `true` /
    /// `false`, everything else as a JSON string of the text output.
    pub fn text(&self) -> Result<Option<Cow<'_, str>>, DecodeError> {
        let Some(raw) = self.value else {
            return Ok(None);
        };
        let raw = raw.get();
        Ok(Some(match raw.as_bytes().first() {
            Some(b'"') => match raw
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .filter(|inner| !inner.contains('\\'))
            {
                // Nothing escaped: the text is the raw string itself, no copy.
                Some(inner) => Cow::Borrowed(inner),
                None => Cow::Owned(
                    serde_json::from_str::<String>(raw).map_err(|e| DecodeError::Json(e.into()))?,
                ),
            },
            Some(b'-' | b'0'..=b'9') => Cow::Borrowed(raw),
            _ if raw == "true" => Cow::Borrowed("t"),
            _ if raw == "false" => Cow::Borrowed("f"),
            _ if raw == "null" => return Ok(None),
            _ => return Err(DecodeError::InvalidField("column value")),
        }))
    }
}

/// An I, U or D action.
#[derive(Debug, Clone)]
pub struct RowChange<'a> {
    /// Insert, Update or Delete.
    pub op: Op,
    /// Schema of the table.
    pub schema: Cow<'a, str>,
    /// Table name.
    pub table: Cow<'a, str>,
    /// New row (insert, update); unchanged TOAST columns are left out by wal2json.
    pub columns: Vec<Wal2JsonColumn<'a>>,
    /// Old key, or the whole old row under REPLICA IDENTITY FULL (update, delete).
    pub identity: Vec<Wal2JsonColumn<'a>>,
    /// Primary-key column names (`include-pk`), in column order.
    pub pk: Vec<Cow<'a, str>>,
}

impl RowChange<'_> {
    /// The columns that name the row's types: the new row, or the old one for deletes.
    pub fn described_columns(&self) -> &[Wal2JsonColumn<'_>] {
        if self.columns.is_empty() {
            &self.identity
        } else {
            &self.columns
        }
    }
}

/// A decoded wal2json message.
#[derive(Debug, Clone)]
pub enum Wal2JsonMessage<'a> {
    /// `B`: start of a transaction.
    Begin {
        /// Transaction id.
        xid: u32,
    },
    /// `C`: end of a transaction.
    Commit {
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// LSN just after the commit record: where to resume.
        end_lsn: Lsn,
        /// Commit time.
        timestamp: Timestamp,
    },
    /// `I`, `U`, `D`.
    Change(RowChange<'a>),
    /// `T`: one truncated table (a TRUNCATE of several tables sends one message each).
    Truncate {
        /// Schema of the table.
        schema: Cow<'a, str>,
        /// Table name.
        table: Cow<'a, str>,
    },
    /// `M`: a `pg_logical_emit_message` payload.
    Message {
        /// Emitted inside a transaction.
        transactional: bool,
        /// LSN of the message.
        lsn: Lsn,
        /// Prefix given by the emitter.
        prefix: Cow<'a, str>,
        /// Content as wal2json wrote it (text).
        content: Cow<'a, str>,
    },
}

/// The JSON object as sent; which fields are required depends on the action.
#[derive(Deserialize)]
struct Raw<'a> {
    /// One letter.
    #[serde(borrow)]
    action: Cow<'a, str>,
    /// `include-xids`; null for non-transactional messages.
    #[serde(default)]
    xid: Option<u32>,
    /// `include-timestamp`: the commit time as timestamptz text.
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    /// `include-lsn`: the commit LSN (B, C), the change's or message's LSN otherwise.
    #[serde(borrow, default)]
    lsn: Option<Cow<'a, str>>,
    /// `include-lsn`: the end of the commit record (B, C).
    #[serde(borrow, default)]
    nextlsn: Option<Cow<'a, str>>,
    /// Schema of the table.
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    /// Table name.
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    /// New row.
    #[serde(borrow, default)]
    columns: Option<Vec<Wal2JsonColumn<'a>>>,
    /// Old key or row.
    #[serde(borrow, default)]
    identity: Option<Vec<Wal2JsonColumn<'a>>>,
    /// Primary-key columns.
    #[serde(borrow, default)]
    pk: Option<Vec<Wal2JsonColumn<'a>>>,
    /// Whether a message is transactional.
    #[serde(default)]
    transactional: Option<bool>,
    /// Message prefix.
    #[serde(borrow, default)]
    prefix: Option<Cow<'a, str>>,
    /// Message content.
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

impl<'a> Wal2JsonMessage<'a> {
    /// Parses one message (the payload of an XLogData frame).
    pub fn parse(data: &'a [u8]) -> Result<Self, DecodeError> {
        let raw: Raw<'a> = serde_json::from_slice(data).map_err(|e| DecodeError::Json(e.into()))?;
        let need = |value: Option<Cow<'a, str>>, what| value.ok_or(DecodeError::MissingField(what));
        let lsn = |value: Option<Cow<'a, str>>, what| -> Result<Lsn, DecodeError> {
            need(value, what)?
                .parse()
                .map_err(|_| DecodeError::InvalidField(what))
        };
        Ok(match &*raw.action {
            "B" => Wal2JsonMessage::Begin {
                xid: raw.xid.ok_or(DecodeError::MissingField("xid"))?,
            },
            "C" => Wal2JsonMessage::Commit {
                commit_lsn: lsn(raw.lsn, "lsn")?,
                end_lsn: lsn(raw.nextlsn, "nextlsn")?,
                timestamp: Timestamp::from_pg_text(&need(raw.timestamp, "timestamp")?)
                    .ok_or(DecodeError::InvalidField("timestamp"))?,
            },
            action @ ("I" | "U" | "D") => {
                let op = match action {
                    "I" => Op::Insert,
                    "U" => Op::Update,
                    _ => Op::Delete,
                };
                let columns = match (op, raw.columns) {
                    (Op::Delete, _) => Vec::new(),
                    (_, columns) => columns.ok_or(DecodeError::MissingField("columns"))?,
                };
                let identity = match (op, raw.identity) {
                    (Op::Delete, identity) => {
                        identity.ok_or(DecodeError::MissingField("identity"))?
                    }
                    (Op::Insert, _) => Vec::new(),
                    (_, identity) => identity.unwrap_or_default(),
                };
                Wal2JsonMessage::Change(RowChange {
                    op,
                    schema: need(raw.schema, "schema")?,
                    table: need(raw.table, "table")?,
                    columns,
                    identity,
                    pk: raw
                        .pk
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| c.name)
                        .collect(),
                })
            }
            "T" => Wal2JsonMessage::Truncate {
                schema: need(raw.schema, "schema")?,
                table: need(raw.table, "table")?,
            },
            "M" => Wal2JsonMessage::Message {
                transactional: raw
                    .transactional
                    .ok_or(DecodeError::MissingField("transactional"))?,
                lsn: lsn(raw.lsn, "lsn")?,
                prefix: need(raw.prefix, "prefix")?,
                content: need(raw.content, "content")?,
            },
            other => {
                let mut action = other.to_owned();
                if let Some((cut, _)) = action.char_indices().nth(MAX_ACTION_LEN) {
                    action.truncate(cut);
                }
                return Err(DecodeError::UnknownAction(action));
            }
        })
    }
}
