//! The local backend's read path: one blocking thread per download reads the file with
//! `pread` straight into fresh buffers of [`READ_SIZE`] bytes and hands them over a small
//! bounded channel, so the disk reads run ahead of the socket writes, each byte is copied
//! once into user space (no intermediate buffer to copy it out of), and there is no thread
//! hop per read. The kernel is told the file is read sequentially (larger read-ahead).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::ByteStream;
use super::file_writer::backend_error;
use crate::error::StorageError;

/// Bytes per read (and per chunk sent).
pub(crate) const READ_SIZE: usize = 512 * 1024;

/// Chunks read ahead of the socket. Memory per download is about
/// `READ_SIZE * (READ_AHEAD + 2)`.
const READ_AHEAD: usize = 2;

/// Opens `path` and streams `range` of it (all of it when `None`). A missing file is
/// [`StorageError::BytesMissing`]; a file shorter than the range ends the stream with an
/// error rather than with fewer bytes.
pub(crate) async fn read_file(
    path: PathBuf,
    range: Option<Range<u64>>,
) -> Result<ByteStream, StorageError> {
    let opened = tokio::task::spawn_blocking(move || open(&path, range))
        .await
        .map_err(|err| StorageError::Internal(format!("the file reader failed: {err}")))??;
    let (file, range) = opened;
    Ok(stream(file, range))
}

/// Streams `range` of an open file from a reading thread.
pub(crate) fn stream(file: File, range: Range<u64>) -> ByteStream {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, StorageError>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || read_loop(&file, range, &tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Opens the file, resolves the range against its size and asks for sequential read-ahead.
fn open(
    path: &std::path::Path,
    range: Option<Range<u64>>,
) -> Result<(File, Range<u64>), StorageError> {
    let file = File::open(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => StorageError::BytesMissing {
            version: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        _ => backend_error(err),
    })?;
    let size = file.metadata().map_err(backend_error)?.len();
    let range = range.unwrap_or(0..size);
    // SAFETY: a valid open descriptor; the call only sets a hint on it.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            range.start as libc::off_t,
            (range.end - range.start) as libc::off_t,
            libc::POSIX_FADV_SEQUENTIAL,
        );
    }
    Ok((file, range))
}

/// The reading thread: reads `range` in [`READ_SIZE`] chunks until done, an error, or the
/// receiver gone (the client left).
fn read_loop(file: &File, range: Range<u64>, tx: &mpsc::Sender<Result<Bytes, StorageError>>) {
    let mut offset = range.start;
    while offset < range.end {
        let want = (range.end - offset).min(READ_SIZE as u64) as usize;
        let item = read_chunk(file, offset, want).inspect(|chunk| offset += chunk.len() as u64);
        let failed = item.is_err();
        if tx.blocking_send(item.map_err(backend_error)).is_err() || failed {
            return;
        }
    }
}

/// Reads exactly `want` bytes at `offset` into a new buffer (short reads are retried; the
/// end of the file before `want` bytes is an error: the file is shorter than its row says).
fn read_chunk(file: &File, offset: u64, want: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(want);
    while buf.len() < want {
        let filled = buf.len();
        let spare = &mut buf.spare_capacity_mut()[..want - filled];
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`; pread
        // writes at most that many bytes into it and reports how many it wrote.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                (offset + filled as u64) as libc::off_t,
            )
        };
        match n {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stored file is shorter than the object",
                ));
            }
            n if n > 0 => {
                // SAFETY: pread initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n as usize) };
            }
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(stream: ByteStream) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reads_whole_files_ranges_and_refuses_missing_or_short_ones() {
        let dir = std::env::temp_dir().join(format!("fluxbase-reader-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        let data: Vec<u8> = (0..READ_SIZE * 2 + 1234)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();

        let all = collect(read_file(path.clone(), None).await.unwrap())
            .await
            .unwrap();
        assert_eq!(all, data);
        let start = READ_SIZE as u64 - 10;
        let end = 2 * READ_SIZE as u64 + 5;
        let part = collect(read_file(path.clone(), Some(start..end)).await.unwrap())
            .await
            .unwrap();
        assert_eq!(part, &data[start as usize..end as usize]);

        let past = data.len() as u64 + 10;
        let short = collect(read_file(path.clone(), Some(0..past)).await.unwrap()).await;
        assert!(matches!(short, Err(StorageError::Backend(_))), "{short:?}");

        let missing = read_file(dir.join("gone"), None).await;
        assert!(
            matches!(missing, Err(StorageError::BytesMissing { version }) if version == "gone")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
