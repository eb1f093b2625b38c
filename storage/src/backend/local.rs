//! The local file-system backend: `object_store`'s `LocalFileSystem` under the canonical
//! storage root for reads, copies, renames and listings; uploads through our own
//! [`file_writer`](super::file_writer) (one writing thread per upload, one fsync at the
//! end: a row is committed only after its bytes are durable); and a guard that refuses any
//! key whose path crosses a symbolic link inside the root — so a symlink planted there (to
//! `/etc`, to another bucket) is never followed.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::{
    Backend, BackendHealth, BodyStream, ByteStream, OnBodyError, PutOutcome, StoredKey,
    file_reader, file_writer, list_keys, missing_or_backend, probe_round_trip,
};
use crate::error::StorageError;

/// Objects in a directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// The canonical root (symlinks above it, e.g. `/var/fluxbase` → `/mnt`, are fine).
    root: PathBuf,
    store: Arc<LocalFileSystem>,
}

impl LocalBackend {
    /// Opens (creating it if needed) the directory `root` (`storage.local_path`).
    pub fn new(root: impl AsRef<FsPath>) -> Result<LocalBackend, StorageError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|err| {
            StorageError::Internal(format!(
                "cannot create storage.local_path {}: {err}",
                root.display()
            ))
        })?;
        let root = std::fs::canonicalize(root).map_err(|err| {
            StorageError::Internal(format!(
                "cannot resolve storage.local_path {}: {err}",
                root.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(StorageError::Backend)?
            .with_fsync(true);
        Ok(LocalBackend {
            root,
            store: Arc::new(store),
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &FsPath {
        &self.root
    }

    /// The file a key maps to.
    pub fn path_of(&self, key: &Path) -> PathBuf {
        let mut path = self.root.clone();
        for part in key.parts() {
            path.push(part.as_ref());
        }
        path
    }

    /// Refuses a key whose path under the root crosses a symbolic link or leaves the root.
    fn guard(&self, key: &Path) -> Result<(), StorageError> {
        let mut path = self.root.clone();
        for part in key.parts() {
            let part = part.as_ref();
            if part.is_empty() || part == "." || part == ".." || part.contains('/') {
                return Err(StorageError::Internal(format!("unsafe backend key {key}")));
            }
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    tracing::warn!(path = %path.display(), "symlink inside the storage root refused");
                    return Err(StorageError::Internal(format!(
                        "refusing to follow a symbolic link inside the storage root at {}",
                        path.display()
                    )));
                }
                Ok(_) => {}
                // Nothing further exists: the write creates plain directories from here.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) => {
                    return Err(StorageError::Internal(format!(
                        "cannot inspect {}: {err}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn provider(&self) -> &'static str {
        "local"
    }

    async fn put(
        &self,
        key: &Path,
        body: BodyStream<'_>,
        on_error: OnBodyError,
    ) -> Result<PutOutcome, StorageError> {
        self.guard(key)?;
        let outcome = file_writer::write_file(self.path_of(key), body, on_error).await?;
        // Checked again after the directories were created: a symlink swapped in meanwhile
        // means the bytes may have gone elsewhere; refuse them.
        if let Err(err) = self.guard(key) {
            let _ = self.store.delete(key).await;
            return Err(err);
        }
        Ok(outcome)
    }

    async fn get(&self, key: &Path, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        self.guard(key)?;
        file_reader::read_file(self.path_of(key), range).await
    }

    async fn delete(&self, key: &Path) -> Result<(), StorageError> {
        self.guard(key)?;
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(StorageError::Backend(err)),
        }
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.guard(from)?;
        self.guard(to)?;
        self.store
            .copy(from, to)
            .await
            .map_err(|err| missing_or_backend(err, from))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.guard(from)?;
        self.guard(to)?;
        self.store
            .rename(from, to)
            .await
            .map_err(|err| missing_or_backend(err, from))
    }

    fn list(&self, prefix: &Path) -> BoxStream<'static, Result<StoredKey, StorageError>> {
        if let Err(err) = self.guard(prefix) {
            return futures_util::stream::once(async move { Err(err) }).boxed();
        }
        let store: Arc<dyn ObjectStore> = self.store.clone();
        list_keys(store, prefix)
    }

    async fn probe(&self) -> BackendHealth {
        let started = Instant::now();
        let result = probe_round_trip(self.store.as_ref()).await;
        let space = disk_space(&self.root);
        BackendHealth {
            provider: "local",
            reachable: result.is_ok(),
            latency_ms: started.elapsed().as_millis() as u64,
            free_bytes: space.map(|(free, _)| free),
            total_bytes: space.map(|(_, total)| total),
            error: result.err().map(|err| err.to_string()),
        }
    }

    async fn sweep_staging(&self, older_than: Duration) -> Result<u64, StorageError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let cutoff = SystemTime::now() - older_than;
            let mut removed = 0;
            remove_stale_staging(&root, cutoff, &mut removed);
            removed
        })
        .await
        .map_err(|err| StorageError::Internal(format!("staging sweep task: {err}")))
    }
}

/// Deletes `object_store`'s staging files (`<name>#<digits>`) older than `cutoff`, never
/// following symlinks.
fn remove_stale_staging(dir: &FsPath, cutoff: SystemTime, removed: &mut u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            remove_stale_staging(&path, cutoff, removed);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let name = entry.file_name();
        let is_staging =
            name.to_str()
                .and_then(|n| n.rsplit_once('#'))
                .is_some_and(|(_, digits)| {
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                });
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < cutoff);
        if is_staging && old && std::fs::remove_file(&path).is_ok() {
            *removed += 1;
        }
    }
}

/// Free and total bytes of the file system holding `path`.
fn disk_space(path: &FsPath) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable
    // memory of the right type; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit targets).
    #[allow(clippy::unnecessary_cast)]
    let (block, free, total) = (
        stat.f_frsize as u64,
        stat.f_bavail as u64,
        stat.f_blocks as u64,
    );
    Some((free * block, total * block))
}
