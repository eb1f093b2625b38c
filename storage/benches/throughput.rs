//! Upload and download throughput of the local backend against a plain `cp` of the same
//! bytes on the same disk, in the same run (a plain timing binary, not criterion: one
//! iteration of 100 MB is already long). Run with
//! `cargo bench -p fluxbase-storage --bench throughput`.
//!
//! Upload = `Storage::upload` of a file's bytes, read by a thread as a client streams them
//! (read, SHA-256, write, fsync, row commit), under a new name each time;
//! download = `Storage::download` into a file (row read, stream, write). Both are compared
//! with `cp src dst` (no fsync), and the upload also with `cp` followed by `sync dst`
//! (`cp` made as durable as an upload is) and with an in-process `std::fs::copy` + `fsync`
//! (the same without starting two processes, which dominates the 1 MiB case). The variants
//! run interleaved, one sample of each per round, and the medians are compared.

use std::path::{Path, PathBuf};
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

    println!(
        "| size | op | fluxbase MB/s | cp MB/s | ratio | cp+sync MB/s | ratio | copy+fsync (in-process) MB/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (size, reps) in [(MIB, 40), (100 * MIB, 7)] {
        let src = dir.join(format!("src-{size}"));
        write_random(&src, size);
        let dst = dir.join("dst");
        let (mut cp, mut cp_sync, mut copy_fsync) = (Vec::new(), Vec::new(), Vec::new());
        let (mut uploads, mut downloads) = (Vec::new(), Vec::new());
        // Interleaved, so that load from elsewhere on the machine hits every variant alike.
        for _ in 0..reps {
            cp.push({
                let _ = std::fs::remove_file(&dst);
                let started = Instant::now();
                let status = Command::new("cp").arg(&src).arg(&dst).status().unwrap();
                assert!(status.success());
                started.elapsed()
            });
            cp_sync.push({
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
            copy_fsync.push({
                let _ = std::fs::remove_file(&dst);
                let started = Instant::now();
                std::fs::copy(&src, &dst).unwrap();
                std::fs::File::open(&dst).unwrap().sync_all().unwrap();
                started.elapsed()
            });

            // A new name each time, as `cp` makes a new file; the previous object is
            // removed outside the clock, as `dst` is before `cp`.
            let _ = storage
                .remove(&service, "bench", &["object".to_string()])
                .await;
            let started = Instant::now();
            let info = storage
                .upload(
                    &service,
                    "bench",
                    "object",
                    UploadOptions::default(),
                    file_body(src.clone()),
                )
                .await
                .unwrap();
            uploads.push(started.elapsed());
            assert_eq!(info.size, size);

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
            assert_eq!(std::fs::metadata(&dst).unwrap().len(), size);
        }
        let (cp, cp_sync, copy_fsync) = (median_of(cp), median_of(cp_sync), median_of(copy_fsync));
        let (upload, download) = (median_of(uploads), median_of(downloads));

        let label = format!("{} MiB", size / MIB);
        let rate = |d: Duration| size as f64 / MIB as f64 / d.as_secs_f64();
        let ratio = |base: Duration, ours: Duration| base.as_secs_f64() / ours.as_secs_f64();
        println!(
            "| {label} | upload | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} |",
            rate(upload),
            rate(cp),
            ratio(cp, upload),
            rate(cp_sync),
            ratio(cp_sync, upload),
            rate(copy_fsync),
            ratio(copy_fsync, upload),
        );
        println!(
            "| {label} | download | {:.0} | {:.0} | {:.2} | | | | |",
            rate(download),
            rate(cp),
            ratio(cp, download),
        );
    }
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bytes of the file at `path`, read by a thread of their own in 1 MiB chunks, as a
/// client streams a file (tokio's `File` would add a thread hop and a copy per read).
fn file_body(
    path: PathBuf,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        let mut file = std::fs::File::open(path).unwrap();
        loop {
            let mut buf = vec![0u8; MIB as usize];
            let n = std::io::Read::read(&mut file, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                break;
            }
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
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

fn median_of(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
