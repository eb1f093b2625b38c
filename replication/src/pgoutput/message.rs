//! pgoutput protocol-1 messages, parsed from bytes without interpretation.

use bytes::Bytes;

use crate::cursor::Cursor;
use crate::error::DecodeError;

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value the server did not send.
    UnchangedToast,
    /// Text output of the value.
    Text(Bytes),
}

/// A column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub is_key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (e.g. varchar length), -1 when none.
    pub type_modifier: i32,
}

/// A Relation message: the shape of a table, sent before its first change in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationBody {
    /// Table OID.
    pub id: u32,
    /// Schema name (`pg_catalog` when the server sends an empty one).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOutputMessage {
    /// Start of a transaction.
    Begin {
        /// LSN of the commit record.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        timestamp: i64,
        /// Transaction id.
        xid: u32,
    },
    /// End of a transaction.
    Commit {
        /// LSN of the commit record.
        commit_lsn: u64,
        /// LSN just after the commit record: where to resume.
        end_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        timestamp: i64,
    },
    /// Replication origin of the transaction.
    Origin {
        /// Commit LSN on the origin server.
        lsn: u64,
        /// Origin name.
        name: String,
    },
    /// Table description.
    Relation(RelationBody),
    /// Name of a non-built-in type used by a following Relation.
    Type {
        /// Type OID.
        id: u32,
        /// Schema.
        schema: String,
        /// Type name.
        name: String,
    },
    /// A new row.
    Insert {
        /// Table OID.
        relation_id: u32,
        /// The row.
        new: Vec<TupleValue>,
    },
    /// A changed row.
    Update {
        /// Table OID.
        relation_id: u32,
        /// Old key (`K`) or old row (`O`, REPLICA IDENTITY FULL), when sent.
        old: Option<(u8, Vec<TupleValue>)>,
        /// The new row.
        new: Vec<TupleValue>,
    },
    /// A removed row.
    Delete {
        /// Table OID.
        relation_id: u32,
        /// Old key (`K`) or old row (`O`).
        old: (u8, Vec<TupleValue>),
    },
    /// TRUNCATE of one or more tables.
    Truncate {
        /// 1 = CASCADE, 2 = RESTART IDENTITY.
        options: u8,
        /// Table OIDs.
        relation_ids: Vec<u32>,
    },
    /// `pg_logical_emit_message` output.
    Message {
        /// Emitted inside a transaction.
        transactional: bool,
        /// LSN of the message.
        lsn: u64,
        /// Prefix given by the emitter.
        prefix: String,
        /// Payload.
        content: Bytes,
    },
}

impl PgOutputMessage {
    /// Parses one message; every malformed input is an error, never a panic.
    pub fn parse(data: Bytes) -> Result<PgOutputMessage, DecodeError> {
        let mut c = Cursor::new(data);
        let message = match c.u8("message tag")? {
            b'B' => PgOutputMessage::Begin {
                final_lsn: c.u64("begin lsn")?,
                timestamp: c.i64("begin timestamp")?,
                xid: c.u32("begin xid")?,
            },
            b'C' => {
                let _flags = c.u8("commit flags")?;
                PgOutputMessage::Commit {
                    commit_lsn: c.u64("commit lsn")?,
                    end_lsn: c.u64("commit end lsn")?,
                    timestamp: c.i64("commit timestamp")?,
                }
            }
            b'O' => PgOutputMessage::Origin {
                lsn: c.u64("origin lsn")?,
                name: c.cstr("origin name")?,
            },
            b'R' => PgOutputMessage::Relation(relation(&mut c)?),
            b'Y' => PgOutputMessage::Type {
                id: c.u32("type oid")?,
                schema: c.cstr("type schema")?,
                name: c.cstr("type name")?,
            },
            b'I' => {
                let relation_id = c.u32("insert relation")?;
                expect(&mut c, b'N', "insert")?;
                PgOutputMessage::Insert {
                    relation_id,
                    new: tuple(&mut c)?,
                }
            }
            b'U' => {
                let relation_id = c.u32("update relation")?;
                let old = match c.u8("update tuple tag")? {
                    tag @ (b'K' | b'O') => {
                        let old = tuple(&mut c)?;
                        expect(&mut c, b'N', "update")?;
                        Some((tag, old))
                    }
                    b'N' => None,
                    tag => {
                        return Err(DecodeError::UnexpectedTag {
                            tag,
                            context: "update",
                        });
                    }
                };
                PgOutputMessage::Update {
                    relation_id,
                    old,
                    new: tuple(&mut c)?,
                }
            }
            b'D' => {
                let relation_id = c.u32("delete relation")?;
                match c.u8("delete tuple tag")? {
                    tag @ (b'K' | b'O') => PgOutputMessage::Delete {
                        relation_id,
                        old: (tag, tuple(&mut c)?),
                    },
                    tag => {
                        return Err(DecodeError::UnexpectedTag {
                            tag,
                            context: "delete",
                        });
                    }
                }
            }
            b'T' => {
                let count = c.i32("truncate count")?;
                let count = usize::try_from(count)
                    .map_err(|_| DecodeError::InvalidLength("truncate count"))?;
                let options = c.u8("truncate options")?;
                // Bound the allocation by what the message can actually hold.
                if count > c.remaining() / 4 {
                    return Err(DecodeError::Truncated("truncate relations"));
                }
                let relation_ids = (0..count)
                    .map(|_| c.u32("truncate relation"))
                    .collect::<Result<_, _>>()?;
                PgOutputMessage::Truncate {
                    options,
                    relation_ids,
                }
            }
            b'M' => {
                let transactional = c.u8("message flags")? & 1 == 1;
                let lsn = c.u64("message lsn")?;
                let prefix = c.cstr("message prefix")?;
                let len = c.i32("message length")?;
                let len = usize::try_from(len)
                    .map_err(|_| DecodeError::InvalidLength("message content"))?;
                PgOutputMessage::Message {
                    transactional,
                    lsn,
                    prefix,
                    content: c.bytes(len, "message content")?,
                }
            }
            tag => return Err(DecodeError::UnknownMessage(tag)),
        };
        c.finish()?;
        Ok(message)
    }
}

/// Reads the one-byte submessage tag that must come next.
fn expect(c: &mut Cursor, want: u8, context: &'static str) -> Result<(), DecodeError> {
    match c.u8(context)? {
        tag if tag == want => Ok(()),
        tag => Err(DecodeError::UnexpectedTag { tag, context }),
    }
}

/// Relation message body after its tag.
fn relation(c: &mut Cursor) -> Result<RelationBody, DecodeError> {
    let id = c.u32("relation oid")?;
    let mut schema = c.cstr("relation schema")?;
    if schema.is_empty() {
        schema = "pg_catalog".to_owned();
    }
    let table = c.cstr("relation name")?;
    let replica_identity = c.u8("replica identity")?;
    let count = c.i16("relation column count")?;
    let count =
        usize::try_from(count).map_err(|_| DecodeError::InvalidLength("relation columns"))?;
    let mut columns = Vec::with_capacity(count.min(c.remaining()));
    for _ in 0..count {
        columns.push(RelationColumn {
            is_key: c.u8("column flags")? & 1 == 1,
            name: c.cstr("column name")?,
            type_oid: c.u32("column type")?,
            type_modifier: c.i32("column typmod")?,
        });
    }
    Ok(RelationBody {
        id,
        schema,
        table,
        replica_identity,
        columns,
    })
}

/// TupleData: a count, then per column `n`, `u` or `t` + length + bytes.
fn tuple(c: &mut Cursor) -> Result<Vec<TupleValue>, DecodeError> {
    let count = c.i16("tuple column count")?;
    let count = usize::try_from(count).map_err(|_| DecodeError::InvalidLength("tuple columns"))?;
    let mut values = Vec::with_capacity(count.min(c.remaining()));
    for _ in 0..count {
        values.push(match c.u8("tuple value tag")? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::UnchangedToast,
            b't' => {
                let len = c.i32("tuple value length")?;
                let len =
                    usize::try_from(len).map_err(|_| DecodeError::InvalidLength("tuple value"))?;
                TupleValue::Text(c.bytes(len, "tuple value")?)
            }
            tag => {
                return Err(DecodeError::UnexpectedTag {
                    tag,
                    context: "tuple value",
                });
            }
        });
    }
    Ok(values)
}
