//! End-to-end slot → channel throughput against the embedded test PostgreSQL: rows are
//! committed while the consumer is not reading, then the clock runs from the last commit
//! until every change has arrived on the channel (walsender decoding, the wire, our client
//! and decoder, the channel). Issue 3 targets ≥ 20,000 changes/s.
//!
//! Two workloads of 100,000 rows of the same shape as the `decode` bench: one transaction,
//! and 1,000 transactions of 100 rows.
//!
//! ```text
//! cargo bench -p fluxbase-replication --bench stream
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_replication::{ReplicationConfig, ReplicationHandle, Transaction, start};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Rows per measured iteration.
const ROWS: usize = 100_000;

/// Upper bound for one awaited event.
const WAIT: Duration = Duration::from_secs(120);

const SLOT: &str = "bench_stream";

/// `n` rows of the benchmark shape in one statement.
fn insert(n: usize) -> String {
    format!(
        "INSERT INTO items (uid, body, created_at, done, amount, meta)
         SELECT gen_random_uuid(), rpad('row ' || g, 64, ' lorem ipsum'), now(), g % 2 = 0,
                12345.1234 + g, jsonb_build_object('tags', jsonb_build_array('a', 'b'), 'n', g, 'ok', true)
         FROM generate_series(1, {n}) g"
    )
}

/// The next transaction, acknowledged.
async fn next(handle: &ReplicationHandle, rx: &mut mpsc::Receiver<Transaction>) -> Transaction {
    let tx = timeout(WAIT, rx.recv())
        .await
        .expect("transaction in time")
        .expect("stream open");
    handle.ack(tx.end_lsn);
    tx
}

/// Commits `transactions` × `rows` (without reading the channel), then times how long the
/// changes take to arrive.
async fn round(
    client: &tokio_postgres::Client,
    handle: &ReplicationHandle,
    rx: &mut mpsc::Receiver<Transaction>,
    transactions: usize,
    rows: usize,
) -> Duration {
    let script = if transactions == 1 {
        insert(rows)
    } else {
        let one = format!("BEGIN; {}; COMMIT;", insert(rows));
        one.repeat(transactions)
    };
    client.batch_execute(&script).await.expect("insert");
    let committed = Instant::now();
    let mut changes = 0;
    while changes < transactions * rows {
        changes += next(handle, rx).await.changes.len();
    }
    assert_eq!(changes, transactions * rows);
    committed.elapsed()
}

fn stream(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let (db, client, handle, mut rx) = rt.block_on(async {
        let db = TestDb::new().await;
        let client = db.client().await;
        client
            .batch_execute(
                "CREATE TABLE items (
                   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, uid uuid, body text,
                   created_at timestamptz, done boolean, amount numeric, meta jsonb)",
            )
            .await
            .expect("create table");
        let mut config = ReplicationConfig::new(db.config());
        config.slot_name = SLOT.to_owned();
        config.publication_name = format!("pub_{SLOT}");
        let (handle, rx) = start(config).expect("valid config");
        let mut status = handle.watch_status();
        timeout(WAIT, status.wait_for(|s| s.connected))
            .await
            .expect("stream connects in time")
            .expect("stream alive");
        (db, client, handle, rx)
    });

    let mut group = c.benchmark_group("slot_to_channel");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, transactions) in [("1x100000_rows", 1), ("1000x100_rows", 1_000)] {
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total +=
                            round(&client, &handle, &mut rx, transactions, ROWS / transactions)
                                .await;
                    }
                    total
                })
            })
        });
    }
    group.finish();

    rt.block_on(handle.shutdown());
    drop(client);
    drop(db);
}

criterion_group! {
    name = benches;
    // One iteration per sample: each one commits 100,000 rows first.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    targets = stream
}
criterion_main!(benches);
