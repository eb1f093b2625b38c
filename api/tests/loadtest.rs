//! Every load-test scenario at a small scale against a real server: correctness only
//! (nothing lost, duplicated, reordered or leaked), never timing.

use std::time::Duration;

use fluxbase_loadtest::config::{Baseline, RestCase};
use fluxbase_loadtest::{Report, Scenario, ScenarioConfig, run};
use fluxbase_migrations::test_utils::TestDb;

use crate::support::{TEST_SECRET, realtime_server};

fn config(scenario: Scenario, addr: &str, db: &TestDb, pid: u32) -> ScenarioConfig {
    let mut c = ScenarioConfig::new(scenario);
    c.server_url = format!("http://{addr}");
    c.database_url = Some(db.url());
    c.jwt_secret = Some(TEST_SECRET.to_string());
    c.server_pid = Some(pid);
    c.sockets = 50;
    c.duration = Duration::from_secs(3);
    c.drain = Duration::from_secs(10);
    c.progress = false;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_scale_scenarios_are_clean() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(
        &db,
        &[
            // Slow readers are cut loose quickly so the scenario finishes in seconds.
            ("FLUXBASE_REALTIME_SLOW_CLIENT_TIMEOUT", "1s"),
            ("FLUXBASE_REALTIME_SLOW_CLIENT_THRESHOLD", "20"),
            ("FLUXBASE_REALTIME_CLIENT_MESSAGE_QUEUE_SIZE", "64"),
        ],
    )
    .await;
    let pid = server.child.id().unwrap();

    for scenario in [
        Scenario::RealtimePublic,
        Scenario::RealtimeOwner,
        Scenario::ConnectStorm,
    ] {
        let c = config(scenario, &server.addr, &db, pid);
        let report = run(&c)
            .await
            .unwrap_or_else(|e| panic!("{scenario:?}: {e}"));
        assert!(
            report.is_clean(),
            "{scenario:?} not clean:\n{}",
            report.render()
        );
        if let Some(events) = &report.events {
            assert!(
                events.counts.expected > 0,
                "{scenario:?} expected no events:\n{}",
                report.render()
            );
            assert_eq!(
                events.counts.delivered,
                events.counts.expected,
                "{}",
                report.render()
            );
        }
    }

    // Few, large messages: the never-reading sockets fill their TCP buffers quickly while
    // the fast ones (a debug-built harness on a busy 2-core CI box) keep up easily.
    let mut c = config(Scenario::SlowClients, &server.addr, &db, pid);
    c.sockets = 10;
    c.slow_sockets = 3;
    c.payload_bytes = 64_000;
    c.rate = 40.0;
    c.duration = Duration::from_secs(5);
    let report = run(&c).await.unwrap();
    assert!(
        report.is_clean(),
        "slow-clients not clean:\n{}",
        report.render()
    );
    let sockets = report.sockets.as_ref().unwrap();
    assert_eq!(
        sockets
            .slow_outcomes
            .get("close:4008")
            .copied()
            .unwrap_or(0),
        3,
        "slow sockets not all closed with 4008:\n{}",
        report.render()
    );

    let mut c = config(Scenario::Rest, &server.addr, &db, pid);
    c.rest_path = "/health".into();
    c.connections = 4;
    c.rate = 200.0;
    let report = run(&c).await.unwrap();
    assert!(report.is_clean(), "rest not clean:\n{}", report.render());
    assert!(report.requests.as_ref().unwrap().sent > 0);
}

/// Every event delivered once, nothing else: the checks of a clean realtime run.
fn all_delivered(what: &str, report: &Report) {
    assert!(report.is_clean(), "{what} not clean:\n{}", report.render());
    let events = report.events.as_ref().unwrap();
    assert!(events.counts.expected > 0, "{what}:\n{}", report.render());
    assert_eq!(
        events.counts.delivered,
        events.counts.expected,
        "{what}:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_per_commit_delivers_every_row_in_commit_order() {
    let db = TestDb::new().await;
    let (server, _dir) = realtime_server(&db, &[]).await;
    let pid = server.child.id().unwrap();

    // Owner RLS, 20 rows per transaction, a fifth of them updates of an earlier row: each
    // row reaches its owner once, in (commit, write) order, and nobody else.
    let mut c = config(Scenario::RealtimeOwner, &server.addr, &db, pid);
    c.sockets = 30;
    c.rows_per_commit = 20;
    c.update_percent = 20;
    c.rate = 400.0;
    c.writers = 2;
    let report = run(&c).await.unwrap();
    all_delivered("realtime-owner --rows-per-commit 20", &report);
    let writes = report.writes.as_ref().unwrap();
    assert_eq!(writes.committed % 20, 0, "whole transactions only");
    assert_eq!(writes.failed, 0);

    // Public: every row of every 50-row transaction to every socket.
    let mut c = config(Scenario::RealtimePublic, &server.addr, &db, pid);
    c.sockets = 20;
    c.rows_per_commit = 50;
    c.rate = 500.0;
    let report = run(&c).await.unwrap();
    all_delivered("realtime-public --rows-per-commit 50", &report);
}

/// Issue 12's cases against PostgreSQL straight (the SQL baseline), and over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_cases_and_their_sql_baselines_are_clean() {
    let db = TestDb::new().await;
    // Closed-loop clients from one address: the per-IP limit would answer 429.
    let (server, _dir) =
        realtime_server(&db, &[("FLUXBASE_SECURITY_RATE_LIMIT_ENABLED", "false")]).await;
    let pid = server.child.id().unwrap();
    let case = |case: RestCase, baseline: Baseline, rows: usize| {
        let mut c = config(Scenario::Rest, &server.addr, &db, pid);
        c.rest_case = Some(case);
        c.baseline = baseline;
        c.rows_per_commit = rows;
        c.connections = 4;
        c.rate = 0.0;
        c.duration = Duration::from_secs(2);
        c
    };

    // The baseline checks every answer: the row by key (RLS lets its owner see it), a
    // page of 100 of the caller's rows with their lists, every row inserted.
    for (what, rest_case, rows) in [
        ("get-by-key", RestCase::GetByKey, 1),
        ("list-embed", RestCase::ListEmbed, 1),
        ("insert 1", RestCase::Insert, 1),
        ("insert 1000", RestCase::Insert, 1000),
    ] {
        let report = run(&case(rest_case, Baseline::Sql, rows)).await.unwrap();
        assert!(
            report.is_clean(),
            "sql baseline {what} not clean:\n{}",
            report.render()
        );
        let requests = report.requests.as_ref().unwrap();
        assert!(requests.ok > 0, "{what}:\n{}", report.render());
        let per_request = match rest_case {
            RestCase::GetByKey => 1,
            RestCase::ListEmbed => 100,
            RestCase::Insert => rows as u64,
        };
        assert_eq!(requests.rows_per_request, per_request);
        // Clean, so every request was ok: rows/s is requests/s times the rows of one.
        let rows_per_sec = requests.per_sec * per_request as f64;
        assert!(
            (requests.rows_per_sec - rows_per_sec).abs() <= rows_per_sec * 1e-9,
            "{what}:\n{}",
            report.render()
        );
    }

    // Over HTTP: clean once the REST routes are mounted. Until then every answer is a 404
    // and the harness must count each as an error, not as a success.
    let report = run(&case(RestCase::GetByKey, Baseline::Http, 1))
        .await
        .unwrap();
    let requests = report.requests.as_ref().unwrap();
    assert!(requests.sent > 0, "{}", report.render());
    if requests.by_status.keys().all(|status| *status == 404) {
        assert_eq!(requests.ok, 0, "{}", report.render());
        assert!(!report.is_clean());
    } else {
        assert!(
            report.is_clean(),
            "rest get-by-key not clean:\n{}",
            report.render()
        );
    }

    // `--sessions`: signed-in users (auth.users + a live auth.sessions row each, tokens
    // naming them), so the server's in-transaction session probe runs on every request and
    // the baseline runs the same probe. A probe that refused would answer 401s (HTTP) or
    // fail with 22012 (SQL): both count as errors. The users go when the run ends.
    for baseline in [Baseline::Http, Baseline::Sql] {
        let mut c = case(RestCase::GetByKey, baseline, 1);
        c.rest_sessions = true;
        let report = run(&c).await.unwrap();
        assert!(
            report.is_clean(),
            "get-by-key --sessions ({baseline:?}) not clean:\n{}",
            report.render()
        );
        assert!(report.requests.as_ref().unwrap().ok > 0);
        let left: i64 = db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM auth.users WHERE email LIKE 'loadtest-%@loadtest.invalid'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "the run's users and sessions are deleted after it");
    }
}
