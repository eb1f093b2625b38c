//! `fluxbase` as a user runs it: embedded PostgreSQL, restarts, graceful shutdown.

use fluxbase_migrations::test_utils::TestDb;
use tokio_postgres::NoTls;

use crate::support::{Server, TempDir, fluxbase, http};

/// Connects to the embedded cluster of `dir` with its generated password.
async fn embedded_client(dir: &TempDir) -> tokio_postgres::Client {
    let state = dir.0.join(".fluxbase");
    let password = std::fs::read_to_string(state.join("pg-password")).unwrap();
    let port = std::fs::read_to_string(state.join("pg-port")).unwrap();
    let url = format!(
        "postgres://fluxbase:{}@127.0.0.1:{}/fluxbase",
        password.trim(),
        port.trim()
    );
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_server_starts_serves_stops_and_keeps_its_data() {
    let dir = TempDir::new();

    let mut server = Server::start(fluxbase(&dir.0)).await;
    let first = serde_json::from_str::<serde_json::Value>(&server.lines[0]).unwrap();
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("embedded PostgreSQL"),
        "first log line must say the embedded cluster is used: {first}"
    );
    assert!(server.lines.iter().any(|l| l.contains("migration applied")));

    let res = http(&server.addr, "GET", "/health").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({"status": "healthy"}));
    let res = http(&server.addr, "GET", "/ready").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = http(&server.addr, "GET", "/metrics").await;
    assert_eq!(res.status, 200);
    assert!(
        res.body.contains("fluxbase_http_requests_total"),
        "{}",
        res.body
    );
    server.wait_for_log("HTTP request").await;

    // State is private: generated secrets are 0600.
    use std::os::unix::fs::PermissionsExt;
    for file in ["pg-password", "jwt-secret"] {
        let mode = std::fs::metadata(dir.0.join(".fluxbase").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }

    let client = embedded_client(&dir).await;
    client
        .batch_execute(
            "CREATE TABLE public.kept (v text); INSERT INTO kept VALUES ('across restarts')",
        )
        .await
        .unwrap();
    drop(client);

    let (status, lines) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "exit {status:?}\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("shutdown complete")));
    assert!(
        !dir.0.join(".fluxbase/pg/postmaster.pid").exists(),
        "embedded PostgreSQL still running after shutdown"
    );

    // Second start: same data, migrations not re-applied.
    let server = Server::start(fluxbase(&dir.0)).await;
    assert!(
        !server.lines.iter().any(|l| l.contains("migration applied")),
        "migrations re-applied:\n{}",
        server.lines.join("\n")
    );
    let res = http(&server.addr, "GET", "/ready").await;
    assert_eq!(res.status, 200);
    let client = embedded_client(&dir).await;
    let v: String = client
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "across restarts");
    drop(client);
    let (status, _) = server.stop(libc::SIGINT).await;
    assert!(status.success());
    assert!(!dir.0.join(".fluxbase/pg/postmaster.pid").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_database_url_logs_json_requests() {
    let db = TestDb::new().await;
    let dir = TempDir::new();
    let mut cmd = fluxbase(&dir.0);
    cmd.env("DATABASE_URL", db.url())
        .env(
            "FLUXBASE_JWT_SECRET",
            "a-test-secret-that-is-long-enough-for-hs256-0123456789",
        )
        // Every query is "slow": the log line must say so, with the statement only.
        .env("FLUXBASE_DATABASE_SLOW_QUERY_THRESHOLD", "0s")
        .env("FLUXBASE_DATABASE_MIN_CONNECTIONS", "3")
        .env(
            "FLUXBASE_REPLICATION_SLOT_NAME",
            format!("slot_{}", db.name()),
        );
    let mut server = Server::start(cmd).await;
    // No embedded cluster and no generated secret (local storage, `./.fluxbase/storage` by
    // default, is the application's data, not the embedded state).
    assert!(
        !dir.0.join(".fluxbase/pg").exists() && !dir.0.join(".fluxbase/jwt-secret").exists(),
        "embedded state created with DATABASE_URL"
    );

    let res = http(&server.addr, "GET", "/nope?x=1").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json()["error"]["code"], "not_found");
    let line = server.wait_for_log("HTTP request").await;
    for field in [
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "ip",
        "user_id",
    ] {
        assert!(line.get(field).is_some(), "{field} missing from {line}");
    }
    assert_eq!(line["level"], "warn");
    assert_eq!(line["status"], 404);
    assert_eq!(line["path"], "/nope");
    assert!(res.headers.to_ascii_lowercase().contains(&format!(
        "x-request-id: {}",
        line["request_id"].as_str().unwrap()
    )));

    let res = http(&server.addr, "GET", "/ready").await;
    assert_eq!(res.status, 200);
    // Other services (jobs, storage, the schema cache) query too: find `/ready`'s.
    let slow = loop {
        let slow = server.wait_for_log("slow query").await;
        assert_eq!(slow["slow_query"], true);
        if slow["query"] == "SELECT 1" {
            break slow;
        }
    };
    assert!(slow["duration_ms"].is_u64(), "{slow}");

    // min_connections are kept open.
    let res = http(&server.addr, "GET", "/api/v1/monitoring/health").await;
    let pool = &res.json()["components"]["database"]["pool"];
    assert!(pool["size"].as_u64().unwrap() >= 3, "{pool}");

    let (status, lines) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{}", lines.join("\n"));
    // The secret and the database password never reach the log.
    let log = lines.join("\n");
    assert!(!log.contains("a-test-secret"), "{log}");
}

/// `FDSize` of `/proc/<pid>/status`: the entries of that process's descriptor table.
fn descriptor_table(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_table_holds_the_sockets_before_the_first_one() {
    let db = TestDb::new().await;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit that outlives the call.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    // The server inherits this process's limits; it raises the soft one to the hard one.
    let sockets = 3000u64;
    let wanted = (sockets + 1024).min(limit.rlim_max - 1);
    let (server, _dir) = crate::support::plain_server(
        &db,
        &[("FLUXBASE_REALTIME_MAX_CONNECTIONS", &sockets.to_string())],
    )
    .await;
    let pid = server.child.id().unwrap();
    // Logged before `listening`, which `Server::start` waited for.
    let ready = server
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "file descriptors ready")
        .expect("a `file descriptors ready` line before `listening`");
    assert_eq!(ready["limit"], limit.rlim_max, "{ready}");
    // Grown at start, not one doubling at a time while a connect storm waits on each.
    let table = descriptor_table(pid);
    assert!(table > wanted, "FDSize {table}, wanted {wanted}");
    server.stop(libc::SIGTERM).await;
}
