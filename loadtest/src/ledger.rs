//! Sequence accounting: which of the rows a subscriber was entitled to did it receive,
//! how many twice, which never, and which it should not have seen at all.
//!
//! Every write carries a run-unique sequence number. A subscriber's [`Ledger`] only
//! appends what arrives (cheap on the hot path); [`Ledger::settle`] compares it with the
//! sorted list of sequences that subscriber was entitled to once the run is over.

use serde::Serialize;

/// What one subscriber received, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Sequence numbers as they arrived, duplicates included.
    seen: Vec<u64>,
    /// The highest LSN seen so far, to detect events delivered out of commit order.
    last_lsn: u64,
    /// The sequence number of the last event at `last_lsn`: rows of one transaction share
    /// its commit LSN and must arrive in the order they were written (ascending sequence).
    last_seq: u64,
    /// Events that arrived before one they follow: a lower LSN, or at the same LSN a
    /// lower sequence number (commit order violated).
    reordered: u64,
    /// Bytes of the event frames, to compare frame sizes between scenarios.
    bytes: u64,
}

impl Ledger {
    /// Records one delivered event; `lsn` is 0 when the payload had none.
    ///
    /// Within one transaction (one LSN) a writer assigns ascending sequence numbers in the
    /// order it writes the rows, so `(lsn, seq)` must only grow; an equal pair is a
    /// duplicate, counted by [`Ledger::settle`].
    pub fn record(&mut self, seq: u64, lsn: u64) {
        self.seen.push(seq);
        if lsn != 0 {
            if lsn < self.last_lsn || (lsn == self.last_lsn && seq < self.last_seq) {
                self.reordered += 1;
            } else {
                self.last_lsn = lsn;
                self.last_seq = seq;
            }
        }
    }

    /// Adds the size of one event frame.
    pub fn add_bytes(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// Bytes of the event frames received.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many events arrived, duplicates included.
    pub fn received(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Compares what arrived with `expected` (sorted ascending, no duplicates).
    pub fn settle(mut self, expected: &[u64]) -> SequenceCounts {
        debug_assert!(expected.windows(2).all(|w| w[0] < w[1]));
        self.seen.sort_unstable();
        let mut counts = SequenceCounts {
            expected: expected.len() as u64,
            reordered: self.reordered,
            ..SequenceCounts::default()
        };
        let mut want = expected.iter().peekable();
        let mut previous = None;
        for &seq in &self.seen {
            if previous == Some(seq) {
                counts.duplicated += 1;
                continue;
            }
            previous = Some(seq);
            while want.next_if(|&&w| w < seq).is_some() {
                counts.lost += 1;
            }
            if want.next_if(|&&w| w == seq).is_some() {
                counts.delivered += 1;
            } else {
                counts.unexpected += 1;
            }
        }
        counts.lost += want.count() as u64;
        counts
    }
}

/// Totals of a sequence comparison, for one subscriber or summed over many.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SequenceCounts {
    /// Events the subscriber was entitled to.
    pub expected: u64,
    /// Distinct expected events that arrived.
    pub delivered: u64,
    /// Expected events that never arrived.
    pub lost: u64,
    /// Extra copies of events that had already arrived.
    pub duplicated: u64,
    /// Distinct events that arrived although the subscriber was not entitled to them:
    /// for the owner scenario, another user's row (a leak).
    pub unexpected: u64,
    /// Events that arrived with a lower LSN than an earlier one (commit order violated).
    pub reordered: u64,
}

impl SequenceCounts {
    /// Adds another subscriber's counts.
    pub fn add(&mut self, other: &SequenceCounts) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
        self.reordered += other.reordered;
    }
}

/// Parses a PostgreSQL LSN (`16/B374D848`) into its 64-bit position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some((hi << 32) | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(seqs: &[u64]) -> Ledger {
        let mut ledger = Ledger::default();
        for &s in seqs {
            ledger.record(s, 0);
        }
        ledger
    }

    #[test]
    fn all_delivered_once() {
        let counts = ledger(&[3, 1, 2]).settle(&[1, 2, 3]);
        assert_eq!(
            counts,
            SequenceCounts {
                expected: 3,
                delivered: 3,
                ..SequenceCounts::default()
            }
        );
    }

    #[test]
    fn detects_lost_at_start_middle_and_end() {
        let counts = ledger(&[2, 4]).settle(&[1, 2, 3, 4, 5]);
        assert_eq!((counts.delivered, counts.lost), (2, 3));
        let counts = ledger(&[]).settle(&[7, 8]);
        assert_eq!((counts.delivered, counts.lost), (0, 2));
    }

    #[test]
    fn detects_duplicates() {
        let counts = ledger(&[1, 2, 2, 2, 3, 1]).settle(&[1, 2, 3]);
        assert_eq!(
            (counts.delivered, counts.duplicated, counts.lost),
            (3, 3, 0)
        );
        assert_eq!(ledger(&[1, 2, 2, 2, 3, 1]).received(), 6);
    }

    #[test]
    fn detects_unexpected_rows() {
        // 10 and 11 belong to someone else; 11 even arrives twice.
        let counts = ledger(&[10, 1, 11, 11]).settle(&[1, 2]);
        assert_eq!(counts.delivered, 1);
        assert_eq!(counts.lost, 1);
        assert_eq!(counts.unexpected, 2);
        assert_eq!(counts.duplicated, 1);
    }

    #[test]
    fn detects_commit_order_violations() {
        let mut ledger = Ledger::default();
        ledger.record(1, 100);
        ledger.record(2, 300);
        ledger.record(3, 200);
        ledger.record(4, 400);
        assert_eq!(ledger.settle(&[1, 2, 3, 4]).reordered, 1);
    }

    #[test]
    fn rows_of_one_transaction_must_arrive_in_write_order() {
        // Two transactions of three rows: 1-3 at LSN 100, 4-6 at LSN 200.
        let mut in_order = Ledger::default();
        for (seq, lsn) in [(1, 100), (2, 100), (3, 100), (4, 200), (5, 200), (6, 200)] {
            in_order.record(seq, lsn);
        }
        assert_eq!(in_order.settle(&[1, 2, 3, 4, 5, 6]).reordered, 0);
        let mut swapped = Ledger::default();
        for (seq, lsn) in [(1, 100), (3, 100), (2, 100), (4, 200)] {
            swapped.record(seq, lsn);
        }
        assert_eq!(swapped.settle(&[1, 2, 3, 4]).reordered, 1);
        // A duplicate is a duplicate, not a reordering.
        let mut twice = Ledger::default();
        for (seq, lsn) in [(1, 100), (2, 100), (2, 100), (3, 100)] {
            twice.record(seq, lsn);
        }
        let counts = twice.settle(&[1, 2, 3]);
        assert_eq!((counts.reordered, counts.duplicated), (0, 1));
    }

    #[test]
    fn counts_add_up() {
        let mut total = SequenceCounts::default();
        total.add(&ledger(&[1]).settle(&[1, 2]));
        total.add(&ledger(&[5, 5]).settle(&[5]));
        assert_eq!(
            total,
            SequenceCounts {
                expected: 3,
                delivered: 2,
                lost: 1,
                duplicated: 1,
                ..SequenceCounts::default()
            }
        );
    }

    #[test]
    fn parses_lsns() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B3748));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(parse_lsn("1"), None);
    }
}
