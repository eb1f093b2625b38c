//! The production kit of `deploy/` (issue 16), checked by `deploy/scripts/check.sh` with the
//! real tools: this test runs the built binary on a real database, makes it do some work
//! (a signup, the login limit, a realtime change on a socket, a stream restart), scrapes
//! `/metrics`, and hands the scrape, the database and the server to the script, which
//! validates compose, NGINX (in front of this server), Prometheus, the dashboards, Helm,
//! systemd, the scripts, and a backup/restore round trip locally and over S3.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::process::binary;
use crate::support::{EVENT_TIMEOUT, TempDir, Ws, http, realtime_server, token};

/// How long the whole check may take (it builds nothing; about a minute here).
const CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// Metrics the work below must have made appear before the scrape is handed over (they are
/// registered at their first event).
const AWAITED: &[&str] = &[
    "fluxbase_auth_attempts_total",
    "fluxbase_rate_limit_hits_total",
    "fluxbase_realtime_delivery_latency_seconds_count",
    "fluxbase_realtime_disconnects_total",
    "fluxbase_replication_lag_bytes",
    "fluxbase_replication_reconnects_total",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_kit_passes_its_checks_against_a_working_server() {
    let db = TestDb::new().await;
    let client = db.client().await;
    // Rows of many types for the backup round trip to bring back, byte for byte.
    client
        .batch_execute(
            "CREATE TABLE public.deploy_check (
               id bigserial PRIMARY KEY, owner uuid, title text, body jsonb, tags text[],
               price numeric(10,2), seen timestamptz DEFAULT now(), blob bytea, note text);
             INSERT INTO deploy_check (owner, title, body, tags, price, blob, note)
             SELECT gen_random_uuid(), 'row ' || i,
                    jsonb_build_object('i', i, 'nested', jsonb_build_array(i, 'x')),
                    ARRAY['a', 'b''c'], i * 1.25, decode(md5(i::text), 'hex'),
                    CASE WHEN i % 3 = 0 THEN NULL ELSE 'ünïcode ' || i END
             FROM generate_series(1, 500) i;",
        )
        .await
        .unwrap();
    let (server, _dir) =
        realtime_server(&db, &[("FLUXBASE_SECURITY_RATE_LIMIT_LOGIN_ATTEMPTS", "2")]).await;

    // An application user, then wrong passwords until the login limiter answers 429.
    let creds = |password: &str| json!({"email": "deploy@example.com", "password": password});
    let (status, body) = post(
        &server.addr,
        "/api/v1/auth/signup",
        "",
        creds("deploy-passw0rd"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for expected in [401, 401, 429] {
        let (status, body) = post(
            &server.addr,
            "/api/v1/auth/signin",
            "",
            creds("wrong-passw0rd"),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }

    // A realtime socket receives a change, then leaves.
    let service = token(json!({"role": "service_role"}));
    let mut ws = Ws::connect(&server.addr, Some(&service)).await;
    let ack = ws.subscribe("c1", json!({"table": "deploy_check"})).await;
    assert_eq!(ack["subscribed"], true, "{ack}");
    client
        .execute("INSERT INTO deploy_check (title) VALUES ('live')", &[])
        .await
        .unwrap();
    let change = ws.frame_of("postgres_changes").await;
    assert_eq!(change["payload"]["record"]["title"], "live", "{change}");
    let (status, body) = post(
        &server.addr,
        "/api/v1/admin/realtime/restart",
        &service,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    ws.inner.close(None).await.unwrap();

    // The scrape, once every metric the work must produce is there.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let scrape = loop {
        let res = http(&server.addr, "GET", "/metrics").await;
        assert_eq!(res.status, 200);
        let missing: Vec<&&str> = AWAITED.iter().filter(|m| !res.body.contains(**m)).collect();
        if missing.is_empty() {
            break res.body;
        }
        assert!(
            Instant::now() < deadline,
            "metrics still missing after the work: {missing:?}\n{}",
            res.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let work = TempDir::new();
    let scrape_file = work.0.join("fluxbase.prom");
    std::fs::write(&scrape_file, &scrape).unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/scripts/check.sh");
    let child = tokio::process::Command::new("bash")
        .arg(&script)
        .arg("--bin")
        .arg(binary())
        .arg("--scrape")
        .arg(&scrape_file)
        .arg("--database-url")
        .arg(db.url())
        .arg("--server")
        .arg(&server.addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run deploy/scripts/check.sh");
    let out = tokio::time::timeout(CHECK_TIMEOUT, child.wait_with_output())
        .await
        .expect("deploy/scripts/check.sh did not finish in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "check.sh failed:\n{stdout}\n{stderr}");
    // Every section ran (none skipped) and the server under test was the one used.
    for section in [
        "docker-compose config parses",
        "nginx -t accepts",
        "NGINX in front of the server",
        "promtool: check config",
        "dashboards: valid JSON",
        "metrics named in alerts.yml",
        "shellcheck:",
        "helm chart rendered",
        "backup.sh local -> restore.sh",
        "backup.sh s3 -> restore.sh",
    ] {
        assert!(
            stdout.contains(&format!("ok   {section}")),
            "no {section:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("check: all passed"), "{stdout}");
    let (status, _) = server.stop(libc::SIGTERM).await;
    assert!(status.success());
}

/// A JSON POST over a fresh connection, with an optional bearer token: (status, body).
async fn post(addr: &str, path: &str, bearer: &str, body: Value) -> (u16, String) {
    let body = body.to_string();
    let auth = if bearer.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {bearer}\r\n")
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    };
    tokio::time::timeout(EVENT_TIMEOUT, fut)
        .await
        .expect("HTTP request timed out")
}
