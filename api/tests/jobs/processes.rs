//! The job system in real `fluxbase` server processes sharing one database: a worker killed
//! with SIGKILL mid-job has its job finished by the other process; a schedule fires each
//! tick once with two processes; `.jobs.workers` shows both; the metrics exist from the
//! first scrape; SIGTERM lets a running job finish before the pool closes.

use std::collections::BTreeSet;

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};
use std::time::Duration;

use super::app::{eventually, service_token};
use super::receiver::{Answer, Receiver};
use crate::support::http::request;
use crate::support::{Server, TempDir, plain_server};

/// `jobs.*` of these servers: local receivers, a 2 s lease with fast beats, a safety-net
/// poll longer than any wait, a long request timeout (a held request is "a slow job").
const JOBS_ENV: &[(&str, &str)] = &[
    ("FLUXBASE_JOBS_ALLOW_PRIVATE_URLS", "true"),
    ("FLUXBASE_JOBS_LEASE", "2s"),
    ("FLUXBASE_JOBS_HEARTBEAT_INTERVAL", "250ms"),
    ("FLUXBASE_JOBS_POLL_INTERVAL", "120s"),
    ("FLUXBASE_JOBS_HTTP_TIMEOUT", "60s"),
    ("FLUXBASE_JOBS_BACKOFF_BASE", "100ms"),
    ("FLUXBASE_JOBS_BACKOFF_MAX", "1s"),
    ("FLUXBASE_JOBS_SHUTDOWN_TIMEOUT", "20s"),
];

/// A server with [`JOBS_ENV`] and `extra`.
async fn jobs_server(db: &TestDb, extra: &[(&str, &str)]) -> (Server, TempDir) {
    let env: Vec<(&str, &str)> = JOBS_ENV.iter().chain(extra).copied().collect();
    plain_server(db, &env).await
}

/// `method path` on `server` as `service_role` → (status, JSON body).
async fn call(server: &Server, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {}", service_token());
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let res = request(
        &server.addr,
        method,
        path,
        &[("Authorization", auth.as_str())],
        &text,
    )
    .await;
    let json = if res.body.is_empty() {
        Value::Null
    } else {
        res.json()
    };
    (res.status, json)
}

/// `.jobs` of a server's metrics JSON.
async fn jobs_metrics(server: &Server) -> Value {
    let (status, body) = call(server, "GET", "/api/v1/monitoring/metrics", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    body["jobs"].clone()
}

/// The session purge among the schedules.
fn purge_schedule(schedules: &Value) -> &Value {
    schedules
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "auth.purge_sessions")
        .unwrap_or_else(|| panic!("no purge schedule in {schedules}"))
}

/// A job as the server shows it.
async fn job(server: &Server, id: &str) -> Value {
    let (status, body) = call(server, "GET", &format!("/api/v1/jobs/{id}"), Value::Null).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_has_its_job_finished_by_the_other_server() {
    let db = TestDb::new().await;
    // The first delivery is held (the slow job); the retry is answered.
    let mut receiver = Receiver::start(|n| {
        if n == 0 {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (first, _d1) = jobs_server(&db, &[]).await;
    let (second, _d2) = jobs_server(&db, &[]).await;
    let id_of = |jobs: &Value| jobs["workers"]["local"]["id"].as_str().unwrap().to_string();
    let (first_id, second_id) = (
        id_of(&jobs_metrics(&first).await),
        id_of(&jobs_metrics(&second).await),
    );
    // `.jobs.workers` (the runbook's `jq '.jobs.workers'`) shows both processes.
    let both: BTreeSet<String> = [first_id.clone(), second_id.clone()].into();
    for server in [&first, &second] {
        let workers = &jobs_metrics(server).await["workers"];
        assert_eq!(workers["active"], 2, "{workers}");
        let listed: BTreeSet<String> = workers["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, both, "{workers}");
    }

    let (status, submitted) = call(
        &first,
        "POST",
        "/api/v1/jobs",
        json!({"name": "slow", "kind": "http", "payload": {"url": receiver.url, "body": {}}}),
    )
    .await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().unwrap().to_string();
    receiver.next().await;
    let running = eventually("the job to be running", || async {
        let job = job(&first, &id).await;
        (job["status"] == "running").then_some(job)
    })
    .await;
    let holder = running["worker_id"].as_str().unwrap().to_string();
    let (victim, survivor, survivor_id) = if holder == first_id {
        (first, second, second_id)
    } else {
        assert_eq!(holder, second_id, "a server holds the job");
        (second, first, first_id)
    };
    let (status, _) = victim.stop(libc::SIGKILL).await;
    assert!(!status.success(), "killed: {status:?}");

    // After the lease, the survivor re-queues the job and runs it to the end.
    let done = eventually("the survivor to finish the job", || async {
        let job = job(&survivor, &id).await;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert_eq!(done["worker_id"], survivor_id.as_str());
    assert_eq!(done["attempts"], 2, "the killed run counted: {done}");
    assert_eq!(receiver.received(), 2);
    // The killed process's worker is marked stopped once its beats are overdue.
    let workers = eventually("one active worker", || async {
        let workers = jobs_metrics(&survivor).await["workers"].clone();
        (workers["active"] == 1).then_some(workers)
    })
    .await;
    assert_eq!(workers["instances"][0]["id"], survivor_id.as_str());
    let client = db.client().await;
    let stopped: i64 = client
        .query_one(
            "SELECT count(*) FROM jobs.workers WHERE status = 'stopped' AND id = $1::text::uuid",
            &[&holder],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stopped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_each_tick_once_on_time_with_two_servers() {
    let db = TestDb::new().await;
    let (first, _d1) = jobs_server(&db, &[]).await;
    let (second, _d2) = jobs_server(&db, &[]).await;
    let client = db.client().await;
    // Both started at once: the housekeeping schedule exists once.
    let purge: i64 = client
        .query_one(
            "SELECT count(*) FROM jobs.schedules WHERE name = 'auth.purge_sessions'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(purge, 1);

    let (status, schedule) = call(
        &first,
        "POST",
        "/api/v1/admin/jobs/schedules",
        json!({"name": "every-second", "cron": "* * * * * *", "kind": "auth.purge_sessions"}),
    )
    .await;
    assert_eq!(status, 201, "{schedule}");
    let ticks = || async {
        client
            .query(
                "SELECT idempotency_key, created_at FROM jobs.jobs \
                 WHERE name = 'every-second' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let key: String = row.get(0);
                let tick: u128 = key.rsplit(':').next().unwrap().parse().unwrap();
                let created: std::time::SystemTime = row.get(1);
                (tick, created)
            })
            .collect::<Vec<_>>()
    };
    eventually("four ticks", || async {
        (ticks().await.len() >= 4).then_some(())
    })
    .await;
    let (status, body) = call(
        &second,
        "PATCH",
        &format!(
            "/api/v1/admin/jobs/schedules/{}",
            schedule["id"].as_str().unwrap()
        ),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Every fire the two processes counted is one job in the table: no tick was claimed
    // twice (a double claim would count a fire whose insert the idempotency key refused).
    let fired = eventually("the processes' fires and the jobs to agree", || async {
        let fires = jobs_metrics(&first).await["schedule_fires_total"]
            .as_u64()
            .unwrap()
            + jobs_metrics(&second).await["schedule_fires_total"]
                .as_u64()
                .unwrap();
        let scheduled: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs.jobs WHERE created_by LIKE 'schedule:%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let jobs = ticks().await;
        (fires == scheduled as u64).then_some(jobs)
    })
    .await;
    let seconds: Vec<u128> = fired.iter().map(|(t, _)| *t).collect();
    assert!(seconds.iter().all(|t| t % 1_000_000 == 0), "{seconds:?}");
    for pair in seconds.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1_000_000,
            "each tick once, none skipped: {seconds:?}"
        );
    }
    // On time: each job exists within a second of its tick, never before it.
    for (tick, created) in &fired {
        let created = created
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        assert!(created >= *tick, "early");
        assert!(created - tick < 1_000_000, "late by {} µs", created - tick);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exist_from_the_first_scrape_and_sigterm_lets_a_running_job_finish() {
    let db = TestDb::new().await;
    let (server, _dir) = jobs_server(&db, &[("FLUXBASE_AUTH_REFRESH_TOKEN_TTL", "7d")]).await;
    let scrape = request(&server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(scrape.status, 200);
    for series in [
        "fluxbase_jobs_pending 0",
        "fluxbase_jobs_running 0",
        "fluxbase_jobs_workers 1",
        "fluxbase_jobs_completed_total 0",
        "fluxbase_jobs_failed_total{reason=\"http_status\"} 0",
        "fluxbase_jobs_duration_seconds_bucket{kind=\"http\",le=\"0.005\"} 0",
        "fluxbase_jobs_duration_seconds_count{kind=\"auth.purge_sessions\"} 0",
    ] {
        assert!(
            scrape.body.lines().any(|l| l == series),
            "{series:?} not in the first scrape:\n{}",
            scrape.body
        );
    }
    let (status, health) = call(&server, "GET", "/api/v1/monitoring/health", Value::Null).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        health["components"]["jobs"]["status"], "healthy",
        "{health}"
    );
    // The housekeeping schedules: the purge (following auth.refresh_token_ttl) and the
    // storage sweep.
    let (_, schedules) = call(&server, "GET", "/api/v1/admin/jobs/schedules", Value::Null).await;
    let names: BTreeSet<&str> = schedules
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["auth.purge_sessions", "storage.sweep"]),
        "{schedules}"
    );
    assert_eq!(
        purge_schedule(&schedules)["payload"],
        json!({"refresh_token_ttl_seconds": 604800})
    );

    // A job still running at SIGTERM finishes before the server exits.
    let mut receiver = Receiver::start(|_| Answer::After(Duration::from_millis(1500), 200)).await;
    let (status, submitted) = call(
        &server,
        "POST",
        "/api/v1/jobs",
        json!({"name": "in-flight", "kind": "http", "payload": {"url": receiver.url}}),
    )
    .await;
    assert_eq!(status, 201, "{submitted}");
    receiver.next().await;
    let (status, lines) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "exit {status:?}\n{}", lines.join("\n"));
    let at = |message: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("\"message\":\"{message}\"")))
            .unwrap_or_else(|| panic!("no {message:?} in\n{}", lines.join("\n")))
    };
    assert!(at("job workers stopped") < at("shutdown complete"));
    assert!(
        !lines.iter().any(|l| l.contains("were put back")),
        "the job finished in time"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT j.status, w.status FROM jobs.jobs j JOIN jobs.workers w ON w.id = j.worker_id \
             WHERE j.name = 'in-flight'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completed");
    assert_eq!(row.get::<_, String>(1), "stopped");

    // Started again: the housekeeping schedule is not made twice.
    let (again, _dir2) = jobs_server(&db, &[]).await;
    let (_, schedules) = call(&again, "GET", "/api/v1/admin/jobs/schedules", Value::Null).await;
    assert_eq!(schedules.as_array().unwrap().len(), 2, "{schedules}");
    assert_eq!(
        purge_schedule(&schedules)["payload"],
        json!({"refresh_token_ttl_seconds": 2592000}),
        "and follows the new configuration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_sweep_job_frees_the_bytes_of_deleted_rows() {
    let db = TestDb::new().await;
    let (server, dir) = jobs_server(&db, &[]).await;
    // Bytes whose row an operator deleted (`DELETE FROM storage.objects …`), older than the
    // sweep's grace: a version no row names.
    let version = uuid::Uuid::new_v4().to_string();
    let orphan = dir
        .0
        .join(".fluxbase/storage/temp-uploads")
        .join(&version[..2])
        .join(&version);
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"deleted by SQL").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3 * 3600))
        .unwrap();
    // What the hourly schedule runs, run now.
    let (status, submitted) = call(
        &server,
        "POST",
        "/api/v1/jobs",
        json!({"name": "sweep-now", "kind": "storage.sweep"}),
    )
    .await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().unwrap().to_owned();
    let done = eventually("the sweep to complete", || async {
        let j = job(&server, &id).await;
        (j["status"] == "completed").then_some(j)
    })
    .await;
    assert_eq!(done["result"]["orphan_objects"], 1, "{done}");
    assert_eq!(done["result"]["orphan_bytes"], 14, "{done}");
    assert!(!orphan.exists());
}
