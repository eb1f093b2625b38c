//! A bounds-checked big-endian reader over one message: every read can fail, none can panic.

use bytes::Bytes;

use crate::error::DecodeError;

/// Reads fields from the front of a message.
pub(crate) struct Cursor {
    /// The unread rest of the message.
    buf: Bytes,
}

impl Cursor {
    /// A cursor over `buf`.
    pub(crate) fn new(buf: Bytes) -> Self {
        Cursor { buf }
    }

    /// Bytes left unread.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails unless the message was read to its end.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// `n` raw bytes, shared with the message buffer (no copy).
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        Ok(self.buf.split_to(n))
    }

    /// Fixed-size array.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Big-endian i16.
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    /// Big-endian i32.
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian u32 (OIDs, xids).
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Big-endian i64 (timestamps).
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Big-endian u64 (LSNs).
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Truncated(what))?;
        let raw = self.buf.split_to(end + 1);
        std::str::from_utf8(&raw[..end])
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8(what))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }
}
