//! Storage in the server: the `storage` health component, the metrics from the first scrape,
//! the orphan sweep at start-up, and the `storage.*` keys checked by `--config-test`.

use std::time::{Duration, SystemTime};

use actix_web::test::TestRequest;
use fluxbase_api::config::StorageProvider;

use super::env::{Backend, Env, binary};
use crate::storage_on_both_backends;
use crate::support::{TempDir, fluxbase, http};

storage_on_both_backends!(health_component);

async fn health_component(backend: Backend) {
    let env = Env::new(backend).await;
    let got = env
        .call(TestRequest::get().uri("/api/v1/monitoring/health"), None)
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let storage = &got.body["components"]["storage"];
    assert_eq!(storage["status"], "healthy", "{storage}");
    assert_eq!(storage["reachable"], true);
    let provider = match backend {
        Backend::Local => "local",
        Backend::S3 => "s3",
    };
    assert_eq!(storage["provider"], provider);
    // Free space is known for a disk, not for S3.
    assert_eq!(
        storage["free_bytes"].is_u64(),
        backend == Backend::Local,
        "{storage}"
    );
    assert_eq!(got.body["status"], "healthy");
    // The probe cleans up after itself.
    assert!(env.root.files().is_empty(), "{:?}", env.root.files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_degrades_the_server() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::with(Backend::Local, |config| {
        config.storage.provider = StorageProvider::S3;
        config.storage.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
        config.storage.s3.bucket = Some("nowhere".into());
        config.storage.s3.access_key = Some("k".into());
        config.storage.s3.secret_key = Some("s".into());
    })
    .await;
    let got = env
        .call(TestRequest::get().uri("/api/v1/monitoring/health"), None)
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["status"], "degraded", "{}", got.body);
    let storage = &got.body["components"]["storage"];
    assert_eq!(storage["status"], "unhealthy", "{storage}");
    assert_eq!(storage["reachable"], false);
    assert!(storage["error"].is_string(), "{storage}");
    assert_eq!(got.body["components"]["database"]["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exist_from_the_first_scrape() {
    let (server, _dir, _db, _root) = binary(Backend::Local, &[]).await;
    let scrape = http(&server.addr, "GET", "/metrics").await;
    assert_eq!(scrape.status, 200);
    for line in [
        "fluxbase_storage_bytes_in_total 0",
        "fluxbase_storage_bytes_out_total 0",
        "fluxbase_storage_operations_total{op=\"upload\",result=\"ok\"} 0",
        "fluxbase_storage_upload_duration_seconds_count 0",
    ] {
        assert!(
            scrape.body.contains(line),
            "{line} not in the scrape:\n{}",
            scrape.body
        );
    }
    assert!(
        scrape
            .body
            .contains("fluxbase_storage_upload_duration_seconds_bucket{le="),
        "{}",
        scrape.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_sweep_removes_old_orphans() {
    let dir = TempDir::new();
    let db = fluxbase_migrations::test_utils::TestDb::new().await;
    let root = dir.0.join("objects");
    // Bytes of a version no row names, as a crash between bytes and row leaves them, older
    // than the sweep's grace period; and a file of another program, which stays.
    let version = uuid::Uuid::new_v4().to_string();
    let orphan = root.join("photos").join(&version[..2]).join(&version);
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"orphaned bytes").unwrap();
    let old = SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let foreign = root.join("README");
    std::fs::write(&foreign, b"not ours").unwrap();

    let mut cmd = fluxbase(&dir.0);
    cmd.env("DATABASE_URL", db.url())
        .env("FLUXBASE_JWT_SECRET", crate::support::TEST_SECRET)
        .env("FLUXBASE_REALTIME_ENABLED", "false")
        .env("FLUXBASE_STORAGE_LOCAL_PATH", root.display().to_string());
    let mut server = crate::support::Server::start(cmd).await;
    // The sweep runs in the background from start-up: it may be done before "listening".
    let logged = server.lines.iter().find_map(|line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .filter(|v| v["message"] == "storage sweep done")
    });
    let done = match logged {
        Some(done) => done,
        None => server.wait_for_log("storage sweep done").await,
    };
    assert_eq!(done["orphan_objects"], 1, "{done}");
    assert_eq!(done["orphan_bytes"], 14, "{done}");
    assert!(!orphan.exists());
    assert!(foreign.exists());
    let ready = server
        .lines
        .iter()
        .any(|l| l.contains("storage ready") && l.contains("\"provider\":\"local\""));
    assert!(ready, "{}", server.lines.join("\n"));
    let (status, lines) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status}: {}", lines.join("\n"));
}

#[tokio::test]
async fn config_test_names_missing_s3_keys() {
    let dir = TempDir::new();
    let mut cmd = fluxbase(&dir.0);
    cmd.args(["--config-test"])
        .env("FLUXBASE_STORAGE_PROVIDER", "s3")
        .env("FLUXBASE_S3_ENDPOINT", "http://127.0.0.1:9000");
    let out = cmd.output().await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    for key in [
        "storage.s3.bucket",
        "FLUXBASE_S3_BUCKET",
        "storage.s3.access_key",
        "storage.s3.secret_key",
    ] {
        assert!(report.contains(key), "{key} not in {report}");
    }
    let bad = fluxbase(&dir.0)
        .args(["--config-test"])
        .env("FLUXBASE_STORAGE_PROVIDER", "ftp")
        .output()
        .await
        .unwrap();
    let report =
        String::from_utf8_lossy(&bad.stderr).to_string() + &String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{report}");
    assert!(report.contains("storage.provider"), "{report}");
}
