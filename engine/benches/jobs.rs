//! Job throughput of one instance against the embedded PostgreSQL (issue 14):
//! - **noop**: jobs/s through claim → run → complete with a handler that does nothing
//!   (the queue's own cost: one claim per batch, one `UPDATE` per job);
//! - **http**: `http` jobs/s delivered (signed POST) to a local receiver answering 200 at
//!   once — what webhook deliveries cost end to end.
//!
//! Each iteration inserts a batch of pending jobs in one statement (one NOTIFY), then waits
//! until all are completed; time runs from the insert to the last completion.
//!
//! ```text
//! cargo bench -p fluxbase-engine --bench jobs
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fluxbase_engine::jobs::{JobHandler, JobRun, Jobs, JobsSettings, RunResult};
use fluxbase_engine::supervise::Supervision;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Jobs per iteration.
const BATCH: i64 = 2_000;
/// `jobs.max_concurrent_per_worker` of the measured instance.
const CONCURRENCY: usize = 50;

/// A handler that does nothing.
struct Noop;

impl JobHandler for Noop {
    fn kind(&self) -> &str {
        "bench.noop"
    }

    fn run<'a>(&'a self, _: &'a JobRun) -> BoxFuture<'a, RunResult> {
        Box::pin(async { Ok(None) })
    }
}

/// A keep-alive HTTP/1.1 receiver answering every request `200 {}` at once.
async fn receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + length);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// Inserts `BATCH` jobs of `kind` with `payload` and waits until all are completed.
async fn run_batch(
    client: &tokio_postgres::Client,
    kind: &str,
    payload: &serde_json::Value,
) -> Duration {
    let name = format!("bench-{}", uuid::Uuid::new_v4());
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO jobs.jobs (name, kind, payload, payload_sha256) \
             SELECT $1, $2, $3::jsonb, encode(sha256(convert_to($3::jsonb::text, 'UTF8')), 'hex') \
             FROM generate_series(1, $4::int8)",
            &[&name, &kind, payload, &BATCH],
        )
        .await
        .unwrap();
    loop {
        let done: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs.jobs WHERE name = $1 AND status = 'completed'",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if done == BATCH {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn throughput(c: &mut Criterion) {
    let system = actix::System::new();
    let (db, jobs, client, url) = system.block_on(async {
        let db = TestDb::new().await;
        let pool = Db::new(
            db.config(),
            PoolSettings {
                max_connections: 20,
                ..PoolSettings::default()
            },
        );
        let settings = JobsSettings {
            signing_secret: "bench-signing-secret-0123456789".into(),
            allow_private_urls: true,
            max_concurrent_per_worker: CONCURRENCY,
            ..JobsSettings::default()
        };
        let jobs = Jobs::new(pool, db.config(), settings, Supervision::default()).unwrap();
        jobs.register(Arc::new(Noop));
        jobs.start().await.unwrap();
        let client = db.client().await;
        let url = receiver().await;
        (db, jobs, client, url)
    });
    let mut group = c.benchmark_group("jobs");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("noop", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_batch(&client, "bench.noop", &json!({})).await;
                }
                total
            })
        })
    });
    let payload = json!({"url": url, "body": {"type": "INSERT", "record": {"id": 1}}});
    group.bench_function("http", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_batch(&client, "http", &payload).await;
                }
                total
            })
        })
    });
    group.finish();
    system.block_on(async {
        jobs.shutdown().await;
        drop(client);
    });
    drop(db);
}

criterion_group!(benches, throughput);
criterion_main!(benches);
