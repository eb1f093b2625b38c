//! The local backend's write path: a body streamed into a new file by one blocking thread
//! per upload, fed through a bounded channel, so the file writes overlap with receiving
//! (and hashing) the next chunks, with no part buffers and no hop per chunk.
//!
//! Durability costs one `fdatasync` of the file and one `fsync` of its directory, both
//! done before the row that makes the object visible is committed, but not one after the
//! other at the end: the directory's fsync (the new entry) starts as soon as the file is
//! created, on another thread, while the body streams; and past [`FLUSH_STEP`] bytes a
//! flushing thread starts write-back of each written stretch (`sync_file_range`), so the
//! final `fdatasync` finds little left to write instead of the whole file — write-back
//! overlaps the transfer, as hashing does. (The hint runs on its own thread: issued by
//! the writing thread it blocked on a busy disk and slowed the upload down.)
//!
//! The file is written at its final key: keys are fresh versions no row names yet, so a
//! half-written file is invisible, removed on failure, and — after a crash — an orphan
//! the sweep removes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc as sync_mpsc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{BodyStream, OnBodyError, PutOutcome};
use crate::batch::Batch;
use crate::error::StorageError;

/// Batches waiting for the writing thread (each about 256 KiB, or one larger chunk).
const WRITE_QUEUE: usize = 4;

/// Bytes written between two write-back starts (and before the first: a small upload
/// starts no flushing thread).
const FLUSH_STEP: u64 = 8 * 1024 * 1024;

/// What the writing thread is told.
enum Order {
    /// Append these bytes.
    Write(Vec<Bytes>),
    /// Everything is here: make it durable.
    Commit,
}

/// Streams `body` into a new file at `path` (refusing an existing one), durable when it
/// returns `Ok`; on failure nothing stays, unless `on_error` keeps what arrived before the
/// body broke off.
pub(crate) async fn write_file(
    path: PathBuf,
    mut body: BodyStream<'_>,
    on_error: OnBodyError,
) -> Result<PutOutcome, StorageError> {
    let (tx, rx) = mpsc::channel::<Order>(WRITE_QUEUE);
    let target = path.clone();
    let writer = tokio::task::spawn_blocking(move || write_loop(&target, rx));
    let mut interrupted = None;
    let mut sent = 0u64;
    let mut batch = Batch::default();
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                sent += chunk.len() as u64;
                if let Some(chunks) = batch.push(chunk)
                    && tx.send(Order::Write(chunks)).await.is_err()
                {
                    break; // The writer stopped on an error: it is reported below.
                }
            }
            Err(err) => {
                interrupted = Some(err);
                break;
            }
        }
    }
    drop(body);
    let keep = interrupted.is_none() || (on_error == OnBodyError::KeepReceived && sent > 0);
    if keep {
        // A closed channel means the writer failed; its error is in the join below.
        if let Some(chunks) = batch.take() {
            let _ = tx.send(Order::Write(chunks)).await;
        }
        let _ = tx.send(Order::Commit).await;
    }
    drop(tx);
    let outcome = writer.await.unwrap_or_else(|err| {
        Err(WriteFailure {
            error: io::Error::other(format!("the file writer panicked: {err}")),
            created: true,
        })
    });
    match outcome {
        Ok((written, true)) if keep => Ok(PutOutcome {
            written,
            interrupted,
        }),
        Ok(_) => {
            remove(path).await;
            Err(interrupted.unwrap_or_else(|| {
                StorageError::Internal("the file writer stopped before the commit".into())
            }))
        }
        Err(failure) => {
            // A file that was there before (a key reused) is not ours to remove.
            if failure.created {
                remove(path).await;
            }
            Err(interrupted.unwrap_or_else(|| backend_error(failure.error)))
        }
    }
}

/// Why the writing thread stopped.
struct WriteFailure {
    error: io::Error,
    /// Whether this write created the file (and so must remove it).
    created: bool,
}

/// The writing thread: creates the file, appends, and on `Commit` makes it durable →
/// (bytes written, committed).
fn write_loop(path: &Path, mut orders: mpsc::Receiver<Order>) -> Result<(u64, bool), WriteFailure> {
    let before = |error| WriteFailure {
        error,
        created: false,
    };
    let after = |error| WriteFailure {
        error,
        created: true,
    };
    create_parents(path).map_err(before)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(before)?;
    let entry = sync_parent_meanwhile(path);
    let mut flusher: Option<sync_mpsc::Sender<(u64, u64)>> = None;
    let mut flushed = 0u64;
    let mut written = 0u64;
    while let Some(order) = orders.blocking_recv() {
        match order {
            Order::Write(chunks) => {
                for chunk in chunks {
                    file.write_all(&chunk).map_err(after)?;
                    written += chunk.len() as u64;
                }
                if written - flushed >= FLUSH_STEP {
                    if flusher.is_none() {
                        flusher = start_flusher(&file);
                    }
                    if let Some(flusher) = &flusher {
                        let _ = flusher.send((flushed, written - flushed));
                    }
                    flushed = written;
                }
            }
            Order::Commit => {
                drop(flusher);
                file.sync_data().map_err(after)?;
                drop(file);
                entry
                    .recv()
                    .unwrap_or_else(|_| Err(io::Error::other("the directory fsync stopped")))
                    .map_err(after)?;
                return Ok((written, true));
            }
        }
    }
    Ok((written, false))
}

/// Fsyncs the directory holding `path` on another thread, now; the answer comes later.
fn sync_parent_meanwhile(path: &Path) -> sync_mpsc::Receiver<io::Result<()>> {
    let (tx, rx) = sync_mpsc::sync_channel(1);
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _ = tx.send(fsync_parent(&path));
    });
    rx
}

/// A thread starting write-back of the stretches (offset, length) it is sent, until the
/// sender is dropped; `None` if the file cannot be shared with it (then the final
/// `fdatasync` does all the writing, as it would anyway).
fn start_flusher(file: &File) -> Option<sync_mpsc::Sender<(u64, u64)>> {
    let file = file.try_clone().ok()?;
    let (tx, rx) = sync_mpsc::channel::<(u64, u64)>();
    tokio::task::spawn_blocking(move || {
        while let Ok((offset, length)) = rx.recv() {
            // SAFETY: a valid open descriptor; the call only starts write-back of dirty
            // pages in the range (no data is read or written through pointers).
            let rc = unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    offset as libc::off64_t,
                    length as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            if rc != 0 {
                // Only a hint: the final fdatasync writes what is left and reports errors.
                return;
            }
        }
    });
    Some(tx)
}

/// Creates the missing directories above `path`, each made durable (its parent fsynced),
/// as a new directory entry must be for the file below it to survive a crash.
fn create_parents(path: &Path) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut dir = parent;
    while !dir.is_dir() {
        missing.push(dir.to_path_buf());
        match dir.parent() {
            Some(up) => dir = up,
            None => break,
        }
    }
    // Another upload may create the same directory meanwhile: create_dir_all tolerates it.
    std::fs::create_dir_all(parent)?;
    for created in missing.iter().rev() {
        fsync_parent(created)?;
    }
    Ok(())
}

/// Fsyncs the directory holding `path`.
fn fsync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Removes a file that will not be committed (a missing one is fine).
async fn remove(path: PathBuf) {
    let result = tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err((path, err)),
        _ => Ok(()),
    })
    .await;
    if let Ok(Err((path, err))) = result {
        tracing::warn!(path = %path.display(), error = %err, "removing an uncommitted file failed; the sweep will retry");
    }
}

/// A file-system error as the backend's error.
pub(crate) fn backend_error(err: io::Error) -> StorageError {
    StorageError::Backend(object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<Result<&'static [u8], StorageError>>) -> BodyStream<'static> {
        futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| c.map(Bytes::from_static))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("fluxbase-writer-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn writes_creates_directories_and_refuses_an_existing_file() {
        let root = temp();
        let path = root.join("b").join("ab").join("file");
        let out = write_file(
            path.clone(),
            body(vec![Ok(b"ab"), Ok(b"cd")]),
            OnBodyError::Discard,
        )
        .await
        .unwrap();
        assert_eq!(out.written, 4);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        let again = write_file(path.clone(), body(vec![Ok(b"x")]), OnBodyError::Discard).await;
        assert!(matches!(again, Err(StorageError::Backend(_))));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"abcd",
            "the existing file stays"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    /// Past FLUSH_STEP the flushing thread runs alongside the writes; the file is the body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_past_the_flush_step_is_written_whole() {
        let root = temp();
        let path = root.join("big");
        let piece: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let pieces = (2 * FLUSH_STEP / piece.len() as u64 + 1) as usize;
        let chunks: Vec<Result<Bytes, StorageError>> = (0..pieces)
            .map(|_| Ok(Bytes::from(piece.clone())))
            .collect();
        let out = write_file(
            path.clone(),
            futures_util::stream::iter(chunks).boxed(),
            OnBodyError::Discard,
        )
        .await
        .unwrap();
        assert_eq!(out.written, (pieces * piece.len()) as u64);
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(stored.len(), pieces * piece.len());
        assert!(stored.chunks(piece.len()).all(|c| c == piece.as_slice()));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn a_broken_body_leaves_nothing_or_what_arrived() {
        let root = temp();
        let broken = || {
            body(vec![
                Ok(b"ab"),
                Err(StorageError::Body(io::Error::from(
                    io::ErrorKind::UnexpectedEof,
                ))),
            ])
        };
        let discarded = root.join("discarded");
        let err = write_file(discarded.clone(), broken(), OnBodyError::Discard).await;
        assert!(matches!(err, Err(StorageError::Body(_))));
        assert!(!discarded.exists());
        let kept = root.join("kept");
        let out = write_file(kept.clone(), broken(), OnBodyError::KeepReceived)
            .await
            .unwrap();
        assert_eq!(out.written, 2);
        assert!(matches!(out.interrupted, Some(StorageError::Body(_))));
        assert_eq!(std::fs::read(&kept).unwrap(), b"ab");
        let nothing = root.join("nothing");
        let err = write_file(
            nothing.clone(),
            body(vec![Err(StorageError::TooLarge { limit: 1 })]),
            OnBodyError::KeepReceived,
        )
        .await;
        assert!(matches!(err, Err(StorageError::TooLarge { .. })));
        assert!(!nothing.exists());
        std::fs::remove_dir_all(root).unwrap();
    }
}
