//! Job throughput through the server (issue 14): jobs/s from `POST /api/v1/jobs` to
//! `completed`, with a handler that does nothing, so what is measured is the server's own
//! path — the HTTP app the binary builds (`build_app`, auth guard, JSON body, the job
//! service's checks and insert) on actix's HTTP server over real sockets, then the queue
//! (NOTIFY, claim, run, complete) — against the embedded PostgreSQL.
//!
//! Each iteration submits `BATCH` jobs over `CONNECTIONS` keep-alive connections as
//! `service_role`, then waits until all are completed; time runs from the first submit to
//! the last completion. `jobs.max_concurrent_per_worker` is `CONCURRENCY`.
//!
//! ```text
//! cargo bench -p fluxbase-api --bench jobs
//! ```
//! Compare with `cargo bench -p fluxbase-engine --bench jobs` (`jobs/noop`: the same queue,
//! jobs inserted by one statement, no HTTP) in the same session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fluxbase_api::config::Config;
use fluxbase_api::http::{AppState, build_app};
use fluxbase_engine::jobs::{JobHandler, JobRun, RunResult};
use fluxbase_loadtest::http::HttpConnection;
use fluxbase_loadtest::target::Target;
use fluxbase_migrations::Db;
use fluxbase_migrations::test_utils::TestDb;
use futures_util::future::{BoxFuture, join_all};
use serde_json::json;

/// Jobs per iteration.
const BATCH: usize = 2_000;
/// Client connections submitting at once.
const CONNECTIONS: usize = 16;
/// `jobs.max_concurrent_per_worker` of the measured server.
const CONCURRENCY: u32 = 50;
/// The JWT secret of the measured server.
const SECRET: &str = "a-bench-secret-that-is-long-enough-for-hs256-0123456789";

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

/// Submits `BATCH` jobs named `name` over [`CONNECTIONS`] connections.
async fn submit_all(target: &Target, token: &str, name: &str) {
    let body = serde_json::to_vec(&json!({"name": name, "kind": "bench.noop"})).unwrap();
    let per_connection = BATCH / CONNECTIONS;
    join_all((0..CONNECTIONS).map(|_| {
        let (target, body) = (target.clone(), body.clone());
        async move {
            let mut conn = HttpConnection::new(target);
            for _ in 0..per_connection {
                let res = conn
                    .request("POST", "/api/v1/jobs", Some(token), Some(&body))
                    .await
                    .expect("submit");
                assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
            }
        }
    }))
    .await;
}

/// Submits a batch and waits until all its jobs are completed.
async fn run_batch(target: &Target, token: &str, client: &tokio_postgres::Client) -> Duration {
    let name = format!("bench-{}", uuid::Uuid::new_v4());
    let started = Instant::now();
    submit_all(target, token, &name).await;
    let want = (BATCH / CONNECTIONS * CONNECTIONS) as i64;
    loop {
        let done: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs.jobs WHERE name = $1 AND status = 'completed'",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if done == want {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn through_the_server(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let (db, jobs, client, target, server) = system.block_on(async {
        let db = TestDb::new().await;
        let mut config = Config::default();
        config.database.url = Some(db.url());
        config.auth.jwt_secret = Some(SECRET.into());
        config.security.rate_limit.enabled = false;
        config.jobs.max_concurrent_per_worker = CONCURRENCY;
        let pool = Db::new(db.config(), config.database.pool_settings());
        let jobs = fluxbase_api::jobs::build(
            &config,
            db.config(),
            pool.clone(),
            "bench-signing-secret-0123456789".into(),
        )
        .unwrap();
        jobs.register(Arc::new(Noop));
        fluxbase_api::jobs::start(&jobs, &config).await.unwrap();
        let state = AppState::new(config, pool).with_jobs(jobs.clone());
        let server = actix_web::HttpServer::new(move || build_app(state.clone()))
            .workers(2)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let target = Target::parse(&format!("http://{addr}")).unwrap();
        let client = db.client().await;
        (db, jobs, client, target, handle)
    });
    let mut claims = serde_json::Map::new();
    claims.insert("role".into(), json!("service_role"));
    claims.insert(
        "exp".into(),
        json!(fluxbase_auth::tokens::now_secs() + 24 * 3600),
    );
    let token = fluxbase_auth::JwtKeys::hs256(SECRET.as_bytes()).sign(&claims);

    let mut group = c.benchmark_group("jobs_http");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(
        (BATCH / CONNECTIONS * CONNECTIONS) as u64,
    ));
    group.bench_function("noop_submit_to_completed", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_batch(&target, &token, &client).await;
                }
                total
            })
        })
    });
    group.finish();
    system.block_on(async {
        server.stop(true).await;
        jobs.shutdown().await;
        drop(client);
    });
    drop(db);
}

criterion_group!(benches, through_the_server);
criterion_main!(benches);
