//! Where the bytes live: one [`Backend`] trait, two implementations on `object_store` —
//! [`LocalBackend`] (a directory, guarded against symlinks planted inside it) and
//! [`S3Backend`] (any S3-compatible store, path-style). The service above decides what to
//! store and when; a backend only moves bytes, streaming, with bounded memory.
//!
//! Keys are built by the service only ([`object_key`], [`tus_chunk_key`]): the bucket id, a
//! two-hex-digit fan-out and a version uuid, or the hidden `.fluxbase/` area. An object's
//! name is never part of a key.

mod file_reader;
mod file_writer;
mod local;
mod s3;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};
use serde::Serialize;

use crate::error::StorageError;

pub use local::LocalBackend;
pub use s3::{S3Backend, S3Settings};

/// Bytes flowing into a backend: the body's chunks, or the error that ends it (a limit hit,
/// the client gone).
pub type BodyStream<'a> = BoxStream<'a, Result<Bytes, StorageError>>;

/// Bytes flowing out of a backend.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// The hidden area of the backend: resumable uploads and probes. Bucket ids cannot start
/// with `.`, so no bucket's keys can collide with it.
pub const HIDDEN_PREFIX: &str = ".fluxbase";

/// What a failed [`Backend::put`] leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBodyError {
    /// Nothing: the partial write is aborted (an ordinary upload).
    Discard,
    /// The bytes received before the body failed, as a complete object (a tus PATCH: the
    /// client resumes from there).
    KeepReceived,
}

/// The result of a [`Backend::put`].
#[derive(Debug)]
pub struct PutOutcome {
    /// Bytes stored.
    pub written: u64,
    /// The error that ended the body early, when [`OnBodyError::KeepReceived`] kept what
    /// came before it.
    pub interrupted: Option<StorageError>,
}

/// One key found by [`Backend::list`].
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The key.
    pub key: Path,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// Its size in bytes.
    pub size: u64,
}

/// What the health probe found (the monitoring endpoint shows it).
#[derive(Debug, Clone, Serialize)]
pub struct BackendHealth {
    /// `local` or `s3`.
    pub provider: &'static str,
    /// Whether a probe round trip (write, read back, delete) worked.
    pub reachable: bool,
    /// How long the probe took.
    pub latency_ms: u64,
    /// Free bytes on the storage root's file system (local only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// Size of the storage root's file system (local only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Why the probe failed, when it did (no secrets: the backend's error text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A store of bytes under keys.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// `local` or `s3`.
    fn provider(&self) -> &'static str;

    /// Streams `body` into `key` (replacing nothing: keys are fresh versions). Durable when
    /// it returns `Ok`. On a body or backend error the write is aborted and nothing stays
    /// at `key`, unless `on_error` is [`OnBodyError::KeepReceived`] and the *body* failed.
    async fn put(
        &self,
        key: &Path,
        body: BodyStream<'_>,
        on_error: OnBodyError,
    ) -> Result<PutOutcome, StorageError>;

    /// Streams `key`'s bytes, all of them or `range` (already resolved against the size).
    async fn get(&self, key: &Path, range: Option<Range<u64>>) -> Result<ByteStream, StorageError>;

    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &Path) -> Result<(), StorageError>;

    /// Copies `from` to `to` inside the backend (server-side on S3).
    async fn copy(&self, from: &Path, to: &Path) -> Result<(), StorageError>;

    /// Moves `from` to `to` (a rename on disk; copy + delete on S3).
    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError>;

    /// Every key under `prefix`.
    fn list(&self, prefix: &Path) -> BoxStream<'static, Result<StoredKey, StorageError>>;

    /// Reachability (and free space for a disk).
    async fn probe(&self) -> BackendHealth;

    /// Removes staging files of writes that never finished (a crash mid-upload), older than
    /// `older_than`; returns how many. S3 keeps unfinished multipart uploads out of sight: a
    /// bucket lifecycle rule (`AbortIncompleteMultipartUpload`) removes those.
    async fn sweep_staging(&self, older_than: Duration) -> Result<u64, StorageError> {
        let _ = older_than;
        Ok(0)
    }
}

/// The key of an object version's bytes: `<bucket>/<version[0..2]>/<version>`.
pub fn object_key(bucket_id: &str, version: &str) -> Path {
    let fan = version.get(..2).unwrap_or("00");
    Path::from_iter([bucket_id, fan, version])
}

/// The bucket and version a key names, if it has exactly [`object_key`]'s shape (a valid
/// bucket id, the version's first two characters, a uuid). Anything else in the backend
/// (an operator's file, another program's data) is not ours, and the sweep leaves it alone.
pub fn version_of_key(key: &Path) -> Option<(String, String)> {
    let parts: Vec<_> = key.parts().collect();
    match parts.as_slice() {
        [bucket, fan, version]
            if crate::name::BucketId::parse(bucket.as_ref()).is_ok()
                && uuid::Uuid::try_parse(version.as_ref()).is_ok()
                && version.as_ref().get(..2) == Some(fan.as_ref()) =>
        {
            Some((bucket.as_ref().to_string(), version.as_ref().to_string()))
        }
        _ => None,
    }
}

/// The folder of a resumable upload's chunks.
pub fn tus_prefix(upload_id: &str) -> Path {
    Path::from_iter([HIDDEN_PREFIX, "tus", upload_id])
}

/// The key of one chunk of a resumable upload (the offset it starts at, zero-padded so keys
/// sort in order, plus a random suffix so a losing concurrent PATCH never overwrites).
pub fn tus_chunk_key(upload_id: &str, offset: u64, nonce: &str) -> Path {
    tus_prefix(upload_id).join(format!("{offset:020}-{nonce}"))
}

/// Part size for multipart writes: S3's minimum part is 5 MiB; the file system is happy
/// with anything. Memory held per upload is about `part_size * (MAX_PARTS_IN_FLIGHT + 1)`.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// The streaming write both backends share: the first `part_size` bytes are buffered; a
/// body that ends within them is one `put` (atomic, one request), a longer one becomes a
/// multipart upload with at most [`MAX_PARTS_IN_FLIGHT`] parts in flight.
pub(crate) async fn put_streaming(
    store: &dyn ObjectStore,
    key: &Path,
    mut body: BodyStream<'_>,
    part_size: usize,
    on_error: OnBodyError,
) -> Result<PutOutcome, StorageError> {
    let mut head: Vec<Bytes> = Vec::new();
    let mut head_len = 0usize;
    let mut interrupted = None;
    while head_len < part_size {
        match body.next().await {
            Some(Ok(chunk)) => {
                head_len += chunk.len();
                head.push(chunk);
            }
            Some(Err(err)) => {
                interrupted = Some(err);
                break;
            }
            None => break,
        }
    }
    let keep = on_error == OnBodyError::KeepReceived;
    if head_len < part_size || interrupted.is_some() {
        if let Some(err) = interrupted {
            if !keep || head_len == 0 {
                return Err(err);
            }
            interrupted = Some(err);
        }
        let payload: PutPayload = head.into_iter().collect();
        store
            .put(key, payload)
            .await
            .map_err(StorageError::Backend)?;
        return Ok(PutOutcome {
            written: head_len as u64,
            interrupted,
        });
    }

    let upload = store
        .put_multipart(key)
        .await
        .map_err(StorageError::Backend)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut written = 0u64;
    for chunk in head {
        written += chunk.len() as u64;
        writer.put(chunk);
    }
    loop {
        if let Err(err) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
            let _ = writer.abort().await;
            return Err(StorageError::Backend(err));
        }
        match body.next().await {
            Some(Ok(chunk)) => {
                written += chunk.len() as u64;
                writer.put(chunk);
            }
            Some(Err(err)) if keep => {
                interrupted = Some(err);
                break;
            }
            Some(Err(err)) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key = %key, error = %abort, "aborting a failed upload failed");
                }
                return Err(err);
            }
            None => break,
        }
    }
    writer.finish().await.map_err(StorageError::Backend)?;
    Ok(PutOutcome {
        written,
        interrupted,
    })
}

/// Reads `key` through `object_store` (a local file, should one come back, is read by
/// [`file_reader`] in large reads: object_store's own file stream reads 8 KiB at a time).
pub(crate) async fn get_streaming(
    store: &dyn ObjectStore,
    key: &Path,
    range: Option<Range<u64>>,
) -> Result<ByteStream, StorageError> {
    let options = GetOptions {
        range: range.map(GetRange::Bounded),
        ..GetOptions::default()
    };
    let result = store
        .get_opts(key, options)
        .await
        .map_err(|err| missing_or_backend(err, key))?;
    let range = result.range.clone();
    match result.payload {
        GetResultPayload::File(file, _) => Ok(file_reader::stream(file, range)),
        GetResultPayload::Stream(stream) => Ok(stream.map_err(StorageError::Backend).boxed()),
    }
}

/// A key that is not there is [`StorageError::BytesMissing`]; the rest are backend errors.
pub(crate) fn missing_or_backend(err: object_store::Error, key: &Path) -> StorageError {
    match err {
        object_store::Error::NotFound { .. } => StorageError::BytesMissing {
            version: key.filename().unwrap_or_default().to_string(),
        },
        other => StorageError::Backend(other),
    }
}

/// Lists through `object_store`, mapping errors.
pub(crate) fn list_keys(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
) -> BoxStream<'static, Result<StoredKey, StorageError>> {
    store
        .list(Some(prefix))
        .map(|item| {
            item.map(|meta| StoredKey {
                key: meta.location,
                last_modified: meta.last_modified,
                size: meta.size,
            })
            .map_err(StorageError::Backend)
        })
        .boxed()
}

/// The probe both backends run: write, read back and delete a small key in the hidden area.
pub(crate) async fn probe_round_trip(store: &dyn ObjectStore) -> Result<(), object_store::Error> {
    let key = Path::from_iter([HIDDEN_PREFIX, "probe", &uuid::Uuid::new_v4().to_string()]);
    store.put(&key, PutPayload::from_static(b"ok")).await?;
    let read = store.get(&key).await?.bytes().await;
    let deleted = store.delete(&key).await;
    let read = read?;
    deleted?;
    if read.as_ref() != b"ok" {
        return Err(object_store::Error::Generic {
            store: "probe",
            source: "the probe read back different bytes".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_shapes() {
        let version = "0f3a2c1e-7d5b-4e8a-9c3f-1b2d3e4f5a6b";
        let key = object_key("avatars", version);
        assert_eq!(key.as_ref(), format!("avatars/0f/{version}"));
        assert_eq!(
            version_of_key(&key),
            Some(("avatars".into(), version.into()))
        );
        // Not our shape: left alone by the sweep.
        for other in ["README", "avatars/file.txt", "avatars/00/not-a-uuid"] {
            assert_eq!(version_of_key(&Path::from(other)), None, "{other}");
        }
        assert_eq!(
            version_of_key(&Path::from(format!("avatars/11/{version}"))),
            None
        );
        let chunk = tus_chunk_key("abc", 42, "n");
        assert_eq!(chunk.as_ref(), ".fluxbase/tus/abc/00000000000000000042-n");
        assert_eq!(version_of_key(&chunk), None);
        assert_eq!(version_of_key(&Path::from(".fluxbase/probe/x")), None);
    }
}
