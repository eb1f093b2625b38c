//! The sweep that keeps bytes and rows in agreement after what a transaction cannot cover:
//! a crash between an upload's durable bytes and its row, a failed delete of replaced
//! bytes, rows deleted by hand (the runbook's `DELETE FROM storage.objects …`), abandoned
//! resumable uploads. Run at start-up and periodically (a scheduled job once jobs exist).
//!
//! A row is the truth: bytes under a bucket whose version no row names are orphans and go.
//! Only keys of the service's own shapes are touched: a file an operator put into the
//! storage root is left alone.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use object_store::path::Path;
use serde::Serialize;

use crate::backend::{HIDDEN_PREFIX, StoredKey, tus_prefix, version_of_key};
use crate::error::StorageError;
use crate::metrics;
use crate::service::{Storage, db};

/// Keys checked against the database per query.
const BATCH: usize = 500;

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Object bytes without a row.
    pub orphan_objects: u64,
    /// Bytes of those.
    pub orphan_bytes: u64,
    /// Resumable uploads past their expiry.
    pub expired_uploads: u64,
    /// Chunks of resumable uploads that no upload lists.
    pub orphan_chunks: u64,
    /// Unfinished staging files of the local backend.
    pub staging_files: u64,
}

impl Storage {
    /// Removes orphans older than the configured grace period.
    pub async fn sweep_orphans(&self) -> Result<SweepReport, StorageError> {
        self.sweep_orphans_older_than(self.inner.settings.orphan_grace)
            .await
    }

    /// Removes orphans older than `grace`. With a zero grace an upload in flight could
    /// lose its bytes just before its row commits: tests and quiet systems only.
    pub async fn sweep_orphans_older_than(
        &self,
        grace: Duration,
    ) -> Result<SweepReport, StorageError> {
        let result = self.sweep_inner(grace).await;
        metrics::record("sweep", &result);
        match &result {
            Ok(report) => tracing::info!(
                orphan_objects = report.orphan_objects,
                orphan_bytes = report.orphan_bytes,
                expired_uploads = report.expired_uploads,
                orphan_chunks = report.orphan_chunks,
                staging_files = report.staging_files,
                "storage sweep done"
            ),
            Err(err) => tracing::warn!(error = %err, "storage sweep failed"),
        }
        result
    }

    async fn sweep_inner(&self, grace: Duration) -> Result<SweepReport, StorageError> {
        let mut report = SweepReport::default();
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();

        // Abandoned resumable uploads: the row goes first, then its chunks.
        let expired = self
            .conn()
            .await?
            .query(
                "DELETE FROM storage.resumable_uploads WHERE expires_at <= now() RETURNING id",
                &[],
            )
            .await
            .map_err(db)?;
        for row in &expired {
            let id: String = row.get(0);
            self.discard_prefix(&tus_prefix(&id)).await;
        }
        report.expired_uploads = expired.len() as u64;

        let mut keys = self.inner.backend.list(&Path::from(""));
        let mut objects: Vec<StoredKey> = Vec::new();
        let mut chunks: Vec<StoredKey> = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key?;
            if key.last_modified > cutoff {
                continue;
            }
            let path = key.key.as_ref();
            if path.starts_with(&format!("{HIDDEN_PREFIX}/tus/")) {
                chunks.push(key);
                if chunks.len() >= BATCH {
                    report.orphan_chunks += self.sweep_chunks(&mut chunks).await?;
                }
            } else if path.starts_with(&format!("{HIDDEN_PREFIX}/probe/")) {
                // A health probe that died between its write and its delete.
                self.discard_bytes(&key.key).await;
            } else if version_of_key(&key.key).is_some() {
                objects.push(key);
                if objects.len() >= BATCH {
                    self.sweep_objects(&mut objects, &mut report).await?;
                }
            }
        }
        self.sweep_objects(&mut objects, &mut report).await?;
        report.orphan_chunks += self.sweep_chunks(&mut chunks).await?;
        report.staging_files = self.inner.backend.sweep_staging(grace).await?;
        Ok(report)
    }

    /// Deletes the object keys of `batch` whose version no row names.
    async fn sweep_objects(
        &self,
        batch: &mut Vec<StoredKey>,
        report: &mut SweepReport,
    ) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let versions: Vec<String> = batch
            .iter()
            .filter_map(|k| version_of_key(&k.key).map(|(_, v)| v))
            .collect();
        let known: HashSet<String> = self
            .conn()
            .await?
            .query(
                "SELECT bucket_id || '/' || version FROM storage.objects WHERE version = ANY($1)",
                &[&versions],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for stored in batch.drain(..) {
            let referenced = version_of_key(&stored.key)
                .is_none_or(|(bucket, version)| known.contains(&format!("{bucket}/{version}")));
            if !referenced {
                tracing::info!(key = %stored.key, size = stored.size, "deleting orphan bytes");
                self.discard_bytes(&stored.key).await;
                report.orphan_objects += 1;
                report.orphan_bytes += stored.size;
            }
        }
        Ok(())
    }

    /// Deletes the chunk keys of `batch` that no live upload lists.
    async fn sweep_chunks(&self, batch: &mut Vec<StoredKey>) -> Result<u64, StorageError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let keys: Vec<String> = batch.iter().map(|k| k.key.to_string()).collect();
        let listed: HashSet<String> = self
            .conn()
            .await?
            .query(
                "SELECT c FROM storage.resumable_uploads, unnest(chunks) AS c WHERE c = ANY($1)",
                &[&keys],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut removed = 0;
        for stored in batch.drain(..) {
            if !listed.contains(stored.key.as_ref()) {
                self.discard_bytes(&stored.key).await;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
