//! The binary's command line: --version, --config-test, migrate.

use std::process::Output;

use fluxbase_migrations::test_utils::TestDb;

use crate::support::{TempDir, fluxbase};

/// The `fluxbase.yaml` of the production runbook, verbatim.
const RUNBOOK_CONFIG: &str = r#"server:
  host: "0.0.0.0"
  port: 8080
  body_limit: 2147483648  # 2GB

database:
  max_connections: 100
  min_connections: 10
  connection_max_lifetime: "1h"
  max_conn_idle_time: "10m"
  health_check_period: "1m"

security:
  rate_limit:
    enabled: true
    requests_per_minute: 100
  csrf:
    enabled: false  # Enable for browser-based apps
    cookie_secure: true  # HTTPS only

realtime:
  enabled: true
  max_connections: 1000
  ping_interval: "30s"

log:
  level: "info"  # Options: debug, info, warn, error
  format: "json"  # Use json in production
"#;

/// Keys the operational runbook tells operators to set.
const OPERATIONAL_CONFIG: &str = r#"database:
  max_connections: 100
realtime:
  rls_cache_size: 50000
  rls_cache_ttl: 15s
  max_connections_per_user: 5
  max_connections_per_ip: 10
  slow_client_timeout: 60s
  slow_client_threshold: 200
server:
  rate_limit:
    requests_per_second: 10
    burst: 20
jobs:
  max_concurrent_per_worker: 10
"#;

async fn run(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = fluxbase(&dir.0);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run fluxbase")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn version() {
    let dir = TempDir::new();
    let out = run(&dir, &["--version"], &[]).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("fluxbase {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn config_test_accepts_the_runbook_examples() {
    let dir = TempDir::new();
    for example in [RUNBOOK_CONFIG, OPERATIONAL_CONFIG] {
        std::fs::write(dir.0.join("fluxbase.yaml"), example).unwrap();
        // The default path ./fluxbase.yaml is found without --config.
        let out = run(&dir, &["--config-test"], &[]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("configuration OK"), "{}", text(&out));
    }
}

#[tokio::test]
async fn config_test_names_bad_values_unknown_keys_and_their_origin() {
    let dir = TempDir::new();
    let path = dir.0.join("custom.yaml");
    std::fs::write(
        &path,
        "realtime:\n  enabled: true\n  rls_cache_size: lots\nlog:\n  levle: debug\n",
    )
    .unwrap();
    let out = run(
        &dir,
        &["--config", path.to_str().unwrap(), "--config-test"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("realtime.rls_cache_size"), "{report}");
    assert!(report.contains("\"lots\""), "{report}");
    assert!(report.contains("custom.yaml:3"), "{report}");
    assert!(report.contains("log.levle"), "{report}");
    assert!(report.contains("unknown configuration key"), "{report}");
    assert!(report.contains("custom.yaml:5"), "{report}");
    assert!(!report.contains("configuration OK"), "{report}");

    // The same key from the environment names the variable.
    let out = run(
        &dir,
        &["--config-test"],
        &[("FLUXBASE_REALTIME_SLOW_CLIENT_TIMEOUT", "forever")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(report.contains("realtime.slow_client_timeout"), "{report}");
    assert!(
        report.contains("environment variable FLUXBASE_REALTIME_SLOW_CLIENT_TIMEOUT"),
        "{report}"
    );
}

#[tokio::test]
async fn serve_refuses_a_bad_config_before_doing_anything() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("fluxbase.yaml"), "server:\n  port: eighty\n").unwrap();
    let out = run(&dir, &[], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("server.port"), "{}", text(&out));
    assert!(
        !dir.0.join(".fluxbase").exists(),
        "started a cluster anyway"
    );
}

#[tokio::test]
async fn migrate_twice_and_concurrently() {
    let db = TestDb::new_empty().await;
    let dir = TempDir::new();
    let url = db.url();
    let env = [("DATABASE_URL", url.as_str())];

    // Two at once on a database that has nothing yet.
    let (a, b) = tokio::join!(run(&dir, &["migrate"], &env), run(&dir, &["migrate"], &env));
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    let outputs = [text(&a), text(&b)];
    assert_eq!(
        outputs
            .iter()
            .filter(|o| o.contains("applied migrations [1"))
            .count(),
        1,
        "{outputs:?}"
    );

    // And again: nothing to do.
    let out = run(&dir, &["migrate"], &env).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("migrations up to date"),
        "{}",
        text(&out)
    );

    let client = db.client().await;
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM _fluxbase.schema_migrations ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i64> = fluxbase_migrations::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, expected);
}

#[tokio::test]
async fn serve_with_a_real_database_requires_a_strong_jwt_secret() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let url = db.url();
    let out = run(&dir, &[], &[("DATABASE_URL", url.as_str())]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("FLUXBASE_JWT_SECRET is not set"),
        "{}",
        text(&out)
    );

    let out = run(
        &dir,
        &[],
        &[
            ("DATABASE_URL", url.as_str()),
            ("FLUXBASE_JWT_SECRET", "your-256-bit-secret-key-here"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("placeholder"), "{}", text(&out));
    // The secret itself is never printed.
    assert!(
        !text(&out).contains("your-256-bit-secret-key-here"),
        "{}",
        text(&out)
    );
}
