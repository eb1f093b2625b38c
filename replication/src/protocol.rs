//! Frames of the streaming replication sub-protocol carried in CopyData: XLogData (`w`),
//! primary keepalive (`k`) and our standby status update (`r`).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::Cursor;
use crate::error::DecodeError;
use crate::lsn::Lsn;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A frame sent by the walsender.
#[derive(Debug)]
pub(crate) enum ServerFrame {
    /// WAL data: one pgoutput message.
    XLogData {
        /// WAL position of the start of this data (the server's current end is not kept:
        /// keepalives carry it too).
        wal_start: Lsn,
        /// The pgoutput message.
        data: Bytes,
    },
    /// Keepalive; `reply` asks for an immediate status update.
    Keepalive {
        /// Current end of WAL on the server.
        wal_end: Lsn,
        /// Whether the server waits for a reply (it will time us out otherwise).
        reply: bool,
    },
}

impl ServerFrame {
    /// Parses one CopyData payload.
    pub(crate) fn parse(payload: Bytes) -> Result<ServerFrame, DecodeError> {
        let mut c = Cursor::new(payload);
        match c.u8("frame tag")? {
            b'w' => {
                let wal_start = Lsn(c.u64("xlogdata start")?);
                let _wal_end = c.u64("xlogdata end")?;
                let _send_time = c.i64("xlogdata time")?;
                Ok(ServerFrame::XLogData {
                    wal_start,
                    data: c.rest(),
                })
            }
            b'k' => {
                let wal_end = Lsn(c.u64("keepalive end")?);
                let _send_time = c.i64("keepalive time")?;
                let reply = c.u8("keepalive reply")? == 1;
                c.finish()?;
                Ok(ServerFrame::Keepalive { wal_end, reply })
            }
            tag => Err(DecodeError::Frame(tag)),
        }
    }
}

/// Encodes a standby status update: write, flush and apply positions and our clock.
pub(crate) fn standby_status_update(write: Lsn, flush: Lsn, apply: Lsn) -> Bytes {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut buf = BytesMut::with_capacity(34);
    buf.put_u8(b'r');
    buf.put_u64(write.0);
    buf.put_u64(flush.0);
    buf.put_u64(apply.0);
    buf.put_i64(now - PG_EPOCH_OFFSET_MICROS);
    buf.put_u8(0);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keepalive_and_xlogdata() {
        let mut b = BytesMut::new();
        b.put_u8(b'k');
        b.put_u64(42);
        b.put_i64(0);
        b.put_u8(1);
        assert!(matches!(
            ServerFrame::parse(b.freeze()),
            Ok(ServerFrame::Keepalive {
                wal_end: Lsn(42),
                reply: true
            })
        ));

        let mut b = BytesMut::new();
        b.put_u8(b'w');
        b.put_u64(1);
        b.put_u64(2);
        b.put_i64(0);
        b.put_slice(b"B");
        match ServerFrame::parse(b.freeze()) {
            Ok(ServerFrame::XLogData {
                wal_start, data, ..
            }) => {
                assert_eq!(wal_start, Lsn(1));
                assert_eq!(&data[..], b"B");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(ServerFrame::parse(Bytes::from_static(b"k\0")).is_err());
        assert!(ServerFrame::parse(Bytes::from_static(b"z")).is_err());
    }

    #[test]
    fn encodes_status_update() {
        let b = standby_status_update(Lsn(1), Lsn(2), Lsn(3));
        assert_eq!(b.len(), 34);
        assert_eq!(b[0], b'r');
        assert_eq!(&b[9..17], &2u64.to_be_bytes());
    }
}
