//! Large and broken transfers through the binary, on real sockets: an upload cut off
//! midway leaves no row and no bytes; a large upload and download stream through the
//! server with flat memory, byte-identical.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fluxbase_storage::test_utils::generated;
use tokio::io::AsyncWriteExt;

use super::env::{
    Backend, Root, binary, digest_of, eventually, service_key, stream_download, stream_request,
};
use crate::storage_on_both_backends;
use crate::support::http::request;

storage_on_both_backends!(an_interrupted_upload_leaves_nothing);

/// Creates bucket `id` through the binary.
async fn create_bucket(addr: &str, id: &str) {
    let auth = format!("Bearer {}", service_key());
    let res = request(
        addr,
        "POST",
        "/storage/v1/bucket",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &format!(r#"{{"id":"{id}","name":"{id}"}}"#),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

/// The value of a metric series in a Prometheus scrape (0 when absent).
async fn metric(addr: &str, series: &str) -> f64 {
    let scrape = crate::support::http(addr, "GET", "/metrics").await;
    scrape
        .body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn an_interrupted_upload_leaves_nothing(backend: Backend) {
    let (server, _dir, db, root) = binary(backend, &[]).await;
    create_bucket(&server.addr, "b").await;
    // 12 MB of a promised 30 MB: past the first multipart part on both backends.
    let stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let (_read, mut write) = stream.into_split();
    let head = format!(
        "POST /storage/v1/object/b/cut.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 30000000\r\n\r\n",
        server.addr,
        service_key()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let mut body = std::pin::pin!(generated(7, 12_000_000, 256 * 1024));
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        write.write_all(&chunk.unwrap()).await.unwrap();
    }
    write.flush().await.unwrap();
    drop(write);
    drop(_read);

    // The server counts the failed upload once it has cleaned up after it.
    let failed = "fluxbase_storage_operations_total{op=\"upload\",result=\"bad_request\"}";
    eventually("the cut-off upload is counted as failed", || async {
        metric(&server.addr, failed).await >= 1.0
    })
    .await;
    let rows: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM storage.objects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    assert!(root.object_files().is_empty(), "{:?}", root.files());
    assert_eq!(
        metric(
            &server.addr,
            "fluxbase_storage_operations_total{op=\"upload\",result=\"ok\"}"
        )
        .await,
        0.0
    );
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Samples `pid`'s RSS every 5 ms until stopped → the peak.
fn sample_rss(pid: u32) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = AtomicU64::new(0);
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.fetch_max(rss_of(pid), Ordering::Relaxed);
            peak.load(Ordering::Relaxed)
        })
    };
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_streams_through_the_server_in_flat_memory() {
    const SIZE: u64 = 160 * 1024 * 1024;
    const BOUND: u64 = 64 * 1024 * 1024;
    let (server, _dir, _db, root) = binary(Backend::Local, &[]).await;
    let _root: &Root = &root;
    create_bucket(&server.addr, "big").await;
    let pid = server.child.id().unwrap();
    // Warm the path with a small object, so the baseline includes what any upload needs.
    let (warm, _) = stream_request(
        &server.addr,
        &format!(
            "POST /storage/v1/object/big/warm.bin HTTP/1.1\r\nAuthorization: Bearer {}",
            service_key()
        ),
        1024,
        generated(1, 1024, 1024),
    )
    .await;
    assert_eq!(warm.status, 200);
    let baseline = rss_of(pid);

    let (stop, sampler) = sample_rss(pid);
    let (head, body) = stream_request(
        &server.addr,
        &format!(
            "POST /storage/v1/object/big/large.bin HTTP/1.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/octet-stream",
            service_key()
        ),
        SIZE,
        generated(42, SIZE, 256 * 1024),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let upload_peak = sampler.join().unwrap();
    assert_eq!(head.status, 200, "{body}");
    assert!(
        upload_peak.saturating_sub(baseline) < BOUND,
        "upload grew the server by {} MiB",
        upload_peak.saturating_sub(baseline) >> 20
    );

    let head = request(
        &server.addr,
        "HEAD",
        "/storage/v1/object/big/large.bin",
        &[("Authorization", &format!("Bearer {}", service_key()))],
        "",
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(SIZE.to_string().as_str())
    );
    assert!(head.body.is_empty());

    let (stop, sampler) = sample_rss(pid);
    let (head, sha, len) = stream_download(
        &server.addr,
        "/storage/v1/object/big/large.bin",
        &format!("Authorization: Bearer {}\r\n", service_key()),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let download_peak = sampler.join().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(SIZE.to_string().as_str())
    );
    let (expected, _) = digest_of(generated(42, SIZE, 1 << 20)).await;
    assert_eq!((sha, len), (expected, SIZE));
    assert!(
        download_peak.saturating_sub(baseline) < BOUND,
        "download grew the server by {} MiB",
        download_peak.saturating_sub(baseline) >> 20
    );
}
