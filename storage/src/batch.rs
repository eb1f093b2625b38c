//! [`Batch`]: chunks of a body gathered until they are worth waking a thread for. A socket
//! delivers a body in pieces of a few KiB to 64 KiB; handing each one to the hashing or
//! writing thread would cost a wake-up (a futex round trip) per piece, thousands per
//! 100 MB. Gathered to [`BATCH_BYTES`], the hand-offs drop to a few hundred; the pieces are
//! shared `Bytes`, never copied.

use bytes::Bytes;

/// Bytes gathered before a hand-off.
pub(crate) const BATCH_BYTES: usize = 256 * 1024;

/// Chunks waiting to be handed off together.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Batch {
    /// Adds `chunk`; returns the batch when it has reached [`BATCH_BYTES`].
    pub(crate) fn push(&mut self, chunk: Bytes) -> Option<Vec<Bytes>> {
        self.len += chunk.len();
        self.chunks.push(chunk);
        if self.len >= BATCH_BYTES {
            self.take()
        } else {
            None
        }
    }

    /// What is gathered, if anything.
    pub(crate) fn take(&mut self) -> Option<Vec<Bytes>> {
        self.len = 0;
        let chunks = std::mem::take(&mut self.chunks);
        (!chunks.is_empty()).then_some(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_off_at_the_threshold_and_keeps_order() {
        let mut batch = Batch::default();
        let piece = Bytes::from(vec![1u8; BATCH_BYTES / 4]);
        for _ in 0..3 {
            assert!(batch.push(piece.clone()).is_none());
        }
        let full = batch.push(Bytes::from_static(b"last")).map(|b| b.len());
        assert_eq!(full, None, "3/4 + 4 bytes is not a batch yet");
        let full = batch.push(piece.clone()).unwrap();
        assert_eq!(full.len(), 5);
        assert_eq!(full[3], Bytes::from_static(b"last"));
        assert!(batch.take().is_none());
        batch.push(Bytes::from_static(b"x"));
        assert_eq!(batch.take().unwrap(), vec![Bytes::from_static(b"x")]);
    }
}
