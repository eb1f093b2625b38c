//! Metric names and their recording, in one place so names cannot drift.

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

use crate::transaction::{Op, Transaction};

/// Row changes delivered, labelled by `op`.
pub const EVENTS_TOTAL: &str = "fluxbase_replication_events_total";
/// Transactions delivered.
pub const TRANSACTIONS_TOTAL: &str = "fluxbase_replication_transactions_total";
/// WAL bytes the server keeps for the slot beyond its confirmed flush LSN (sampled).
pub const LAG_BYTES: &str = "fluxbase_replication_lag_bytes";
/// Reconnects of the replication stream (errors and requested restarts).
pub const RECONNECTS_TOTAL: &str = "fluxbase_replication_reconnects_total";
/// WAL messages that could not be decoded.
pub const DECODE_ERRORS_TOTAL: &str = "fluxbase_replication_decode_errors_total";
/// 1 while streaming, 0 otherwise.
pub const CONNECTED: &str = "fluxbase_replication_connected";

/// Registers descriptions with the installed recorder; call once after installing it.
pub fn describe() {
    describe_counter!(
        EVENTS_TOTAL,
        "Row changes delivered by the replication stream"
    );
    describe_counter!(
        TRANSACTIONS_TOTAL,
        "Transactions delivered by the replication stream"
    );
    describe_gauge!(
        LAG_BYTES,
        Unit::Bytes,
        "WAL retained for the slot beyond its confirmed flush LSN"
    );
    describe_counter!(RECONNECTS_TOTAL, "Reconnects of the replication stream");
    describe_counter!(DECODE_ERRORS_TOTAL, "WAL messages that failed to decode");
    describe_gauge!(CONNECTED, "1 while the replication stream is connected");
}

/// Counts a delivered transaction and its changes by operation (one increment per op and
/// transaction, not per row, to keep the hot path cheap).
pub(crate) fn record_transaction(tx: &Transaction) {
    counter!(TRANSACTIONS_TOTAL).increment(1);
    let mut counts = [0u64; 5];
    for change in &tx.changes {
        counts[op_index(change.op)] += 1;
    }
    for op in [
        Op::Insert,
        Op::Update,
        Op::Delete,
        Op::Truncate,
        Op::Message,
    ] {
        let n = counts[op_index(op)];
        if n > 0 {
            counter!(EVENTS_TOTAL, "op" => op.as_str()).increment(n);
        }
    }
}

/// Slot of `op` in the per-transaction count array.
fn op_index(op: Op) -> usize {
    match op {
        Op::Insert => 0,
        Op::Update => 1,
        Op::Delete => 2,
        Op::Truncate => 3,
        Op::Message => 4,
    }
}

/// Records a reconnect.
pub(crate) fn record_reconnect() {
    counter!(RECONNECTS_TOTAL).increment(1);
}

/// Records a decode failure.
pub(crate) fn record_decode_error() {
    counter!(DECODE_ERRORS_TOTAL).increment(1);
}

/// Records a lag sample.
pub(crate) fn record_lag(bytes: u64) {
    gauge!(LAG_BYTES).set(bytes as f64);
}

/// Records the connection state.
pub(crate) fn record_connected(connected: bool) {
    gauge!(CONNECTED).set(if connected { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString,
    };

    use super::*;
    use crate::lsn::Lsn;
    use crate::transaction::{Change, Timestamp};

    /// Values by `name{label=value}`.
    type Values = Arc<Mutex<HashMap<String, f64>>>;

    /// A recorder keeping the last value of every metric.
    struct Capture(Values);

    /// One metric's handle.
    struct Cell(String, Values);

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value as f64;
        }
        fn absolute(&self, value: u64) {
            self.1.lock().unwrap().insert(self.0.clone(), value as f64);
        }
    }

    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }
        fn decrement(&self, value: f64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() -= value;
        }
        fn set(&self, value: f64) {
            self.1.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    impl Capture {
        fn cell(&self, key: &Key) -> Arc<Cell> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            Arc::new(Cell(name, self.0.clone()))
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.cell(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn change(op: Op) -> Change {
        Change {
            op,
            schema: "public".into(),
            table: "t".into(),
            relation_id: 1,
            columns: Arc::from(Vec::new()),
            record: None,
            old_record: None,
            primary_key: None,
            unchanged_toast: Vec::new(),
            json_nulls: Vec::new(),
            old_json_nulls: Vec::new(),
            message: None,
        }
    }

    #[test]
    fn records_names_and_labels() {
        let values = Values::default();
        let recorder = Capture(values.clone());
        let tx = Transaction {
            xid: 1,
            begin_lsn: Lsn(1),
            commit_lsn: Lsn(2),
            end_lsn: Lsn(3),
            commit_timestamp: Timestamp(0),
            changes: vec![change(Op::Insert), change(Op::Insert), change(Op::Delete)],
        };
        metrics::with_local_recorder(&recorder, || {
            describe();
            record_transaction(&tx);
            record_reconnect();
            record_decode_error();
            record_lag(4096);
            record_connected(true);
        });
        let values = values.lock().unwrap();
        assert_eq!(values["fluxbase_replication_transactions_total"], 1.0);
        assert_eq!(values["fluxbase_replication_events_total{op=insert}"], 2.0);
        assert_eq!(values["fluxbase_replication_events_total{op=delete}"], 1.0);
        assert!(!values.contains_key("fluxbase_replication_events_total{op=update}"));
        assert_eq!(values["fluxbase_replication_reconnects_total"], 1.0);
        assert_eq!(values["fluxbase_replication_decode_errors_total"], 1.0);
        assert_eq!(values["fluxbase_replication_lag_bytes"], 4096.0);
        assert_eq!(values["fluxbase_replication_connected"], 1.0);
    }
}
