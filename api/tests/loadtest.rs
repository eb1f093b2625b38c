//! Every load-test scenario at a small scale against a real server: correctness only
//! (nothing lost, duplicated, reordered or leaked), never timing.

use std::time::Duration;

use fluxbase_loadtest::{Scenario, ScenarioConfig, run};
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
