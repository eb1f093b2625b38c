//! Upload and download throughput of the local backend against a plain `cp` of the same
//! bytes on the same disk, in the same run (a plain timing binary, not criterion: one
//! iteration of 100 MB is already long). Run with
//! `cargo bench -p fluxbase-storage --bench throughput`.
//!
//! Upload = `Storage::upload_reader` from a file (read, SHA-256, write, fsync, row commit);
//! download = `Storage::download` into a file (row read, stream, write). Both are compared
//! with `cp src dst` (no fsync), and the upload also with `cp` followed by `sync dst`
//! (`cp` made as durable as an upload is).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxbase_auth::AuthContext;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};
use fluxbase_storage::{
    DownloadOptions, LocalBackend, NewBucket, Storage, StorageSettings, UploadOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

const MIB: u64 = 1024 * 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = std::env::temp_dir().join(format!("fluxbase-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = TestDb::new().await;
    let backend = LocalBackend::new(dir.join("root")).unwrap();
    let storage = Storage::new(
        Db::new(db.config(), PoolSettings::default()),
        Arc::new(backend),
        StorageSettings::new(4 << 30, b"bench".to_vec()),
    );
    let service = AuthContext::service_role();
    storage
        .create_bucket(
            &service,
            NewBucket {
                id: "bench".into(),
                ..NewBucket::default()
            },
        )
        .await
        .unwrap();

    println!("| size | op | fluxbase MB/s | cp MB/s | ratio | cp+sync MB/s | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (size, reps) in [(MIB, 40), (100 * MIB, 5)] {
        let src = dir.join(format!("src-{size}"));
        write_random(&src, size);
        let dst = dir.join("dst");
        let cp = median(reps, || {
            let _ = std::fs::remove_file(&dst);
            let started = Instant::now();
            let status = Command::new("cp").arg(&src).arg(&dst).status().unwrap();
            assert!(status.success());
            started.elapsed()
        });
        let cp_sync = median(reps, || {
            let _ = std::fs::remove_file(&dst);
            let started = Instant::now();
            assert!(
                Command::new("cp")
                    .arg(&src)
                    .arg(&dst)
                    .status()
                    .unwrap()
                    .success()
            );
            assert!(Command::new("sync").arg(&dst).status().unwrap().success());
            started.elapsed()
        });

        let mut uploads = Vec::new();
        for _ in 0..reps {
            let file = tokio::fs::File::open(&src).await.unwrap();
            let started = Instant::now();
            let info = storage
                .upload_reader(
                    &service,
                    "bench",
                    "object",
                    UploadOptions {
                        upsert: true,
                        ..UploadOptions::default()
                    },
                    file,
                )
                .await
                .unwrap();
            uploads.push(started.elapsed());
            assert_eq!(info.size, size);
        }
        let upload = median_of(uploads);

        let mut downloads = Vec::new();
        for _ in 0..reps {
            let _ = std::fs::remove_file(&dst);
            let started = Instant::now();
            let download = storage
                .download(&service, "bench", "object", DownloadOptions::default())
                .await
                .unwrap();
            let mut out = tokio::fs::File::create(&dst).await.unwrap();
            let mut body = download.body;
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk.unwrap()).await.unwrap();
            }
            out.flush().await.unwrap();
            drop(out);
            downloads.push(started.elapsed());
        }
        let download = median_of(downloads);
        assert_eq!(std::fs::metadata(&dst).unwrap().len(), size);

        let label = format!("{} MiB", size / MIB);
        let rate = |d: Duration| size as f64 / MIB as f64 / d.as_secs_f64();
        println!(
            "| {label} | upload | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
            rate(upload),
            rate(cp),
            cp.as_secs_f64() / upload.as_secs_f64(),
            rate(cp_sync),
            cp_sync.as_secs_f64() / upload.as_secs_f64(),
        );
        println!(
            "| {label} | download | {:.0} | {:.0} | {:.2} | | |",
            rate(download),
            rate(cp),
            cp.as_secs_f64() / download.as_secs_f64(),
        );
    }
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `size` pseudo-random bytes (incompressible, like most uploads).
fn write_random(path: &Path, size: u64) {
    use rand::RngCore;
    let mut rng = rand::rng();
    let mut file = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB) as usize;
        rng.fill_bytes(&mut buf[..n]);
        std::io::Write::write_all(&mut file, &buf[..n]).unwrap();
        left -= n as u64;
    }
}

fn median(reps: usize, mut f: impl FnMut() -> Duration) -> Duration {
    median_of((0..reps).map(|_| f()).collect())
}

fn median_of(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
