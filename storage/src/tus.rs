//! Resumable uploads: the tus 1.0.0 protocol (core, creation, termination, expiration) as
//! Supabase Storage offers it at `/storage/v1/upload/resumable`, without the HTTP. The
//! bucket and object name arrive in `Upload-Metadata` (`bucketName`, `objectName`,
//! `contentType`, `cacheControl`, `metadata`).
//!
//! State lives in `storage.resumable_uploads` (offset, length, chunk keys) and the bytes in
//! the backend's hidden area, one chunk per PATCH (`.fluxbase/tus/<id>/<offset>-<nonce>`),
//! so an upload survives a restart and works on any instance. A PATCH that breaks off
//! keeps what arrived: the client asks (HEAD) for the offset and continues from there. Two
//! PATCHes racing at one offset cannot both win: the offset only advances by a conditional
//! UPDATE, and the loser's chunk is deleted. When the offset reaches the length, the chunks
//! become one object (a single chunk by a hard link or server-side copy; several streamed
//! through SHA-256 into a new version) and the object's row is written as the caller, in
//! the transaction that deletes the upload's row.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use fluxbase_auth::AuthContext;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::backend::{OnBodyError, object_key, tus_chunk_key, tus_prefix};
use crate::error::StorageError;
use crate::meter::Meter;
use crate::metrics;
use crate::name::{BucketId, ObjectName};
use crate::object::ObjectInfo;
use crate::service::{Storage, db};
use crate::upload::{NewRow, Writer, content_type};

/// The protocol version (`Tus-Resumable`, `Tus-Version`).
pub const TUS_VERSION: &str = "1.0.0";
/// `Tus-Extension`.
pub const TUS_EXTENSIONS: &str = "creation,termination,expiration";
/// The only body type a PATCH takes.
pub const TUS_CONTENT_TYPE: &str = "application/offset+octet-stream";

/// Columns of `storage.resumable_uploads`, in [`Upload::from_row`]'s order.
const UPLOAD_COLUMNS: &str = "id, bucket_id, name, owner_id, upsert, content_type, \
     cache_control, user_metadata, upload_length, upload_offset, chunks, expires_at";

/// The state a client sees (`Upload-Offset`, `Upload-Length`, `Upload-Expires`, and the
/// id for `Location`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TusUpload {
    /// The upload's id (the last segment of its URL).
    pub id: String,
    /// Target bucket.
    pub bucket_id: String,
    /// Target object name.
    pub object_name: String,
    /// Bytes received.
    pub offset: u64,
    /// Bytes announced (`Upload-Length`).
    pub length: u64,
    /// When an abandoned upload is deleted (`Upload-Expires`).
    pub expires_at: DateTime<Utc>,
}

/// What a PATCH achieved.
#[derive(Debug, Clone)]
pub enum TusPatch {
    /// More bytes are expected.
    Progress(TusUpload),
    /// The last bytes arrived: the object exists.
    Completed(TusUpload, Box<ObjectInfo>),
}

impl TusPatch {
    /// The upload's state after the PATCH (for `Upload-Offset`).
    pub fn upload(&self) -> &TusUpload {
        match self {
            TusPatch::Progress(upload) | TusPatch::Completed(upload, _) => upload,
        }
    }
}

/// A creation request (`POST` with `Upload-Length` and `Upload-Metadata`).
#[derive(Debug, Clone, Default)]
pub struct TusCreate {
    /// `Upload-Length` (deferred lengths are not offered).
    pub upload_length: u64,
    /// The raw `Upload-Metadata` header.
    pub upload_metadata: Option<String>,
    /// `x-upsert: true`.
    pub upsert: bool,
}

/// A row of `storage.resumable_uploads`.
struct Upload {
    id: String,
    bucket_id: String,
    name: String,
    owner_id: Option<String>,
    upsert: bool,
    content_type: Option<String>,
    cache_control: Option<String>,
    user_metadata: Option<serde_json::Value>,
    length: u64,
    offset: u64,
    chunks: Vec<String>,
    expires_at: DateTime<Utc>,
}

impl Upload {
    fn from_row(row: &Row) -> Upload {
        let length: i64 = row.get(8);
        let offset: i64 = row.get(9);
        Upload {
            id: row.get(0),
            bucket_id: row.get(1),
            name: row.get(2),
            owner_id: row.get(3),
            upsert: row.get(4),
            content_type: row.get(5),
            cache_control: row.get(6),
            user_metadata: row.get(7),
            length: length.max(0) as u64,
            offset: offset.max(0) as u64,
            chunks: row.get(10),
            expires_at: row.get(11),
        }
    }

    fn state(&self) -> TusUpload {
        TusUpload {
            id: self.id.clone(),
            bucket_id: self.bucket_id.clone(),
            object_name: self.name.clone(),
            offset: self.offset,
            length: self.length,
            expires_at: self.expires_at,
        }
    }

    /// The creator, or the service role, may touch an upload; anyone else gets 404.
    fn check_access(&self, ctx: &AuthContext) -> Result<(), StorageError> {
        if ctx.bypasses_rls() || self.owner_id.as_deref() == ctx.uid() {
            Ok(())
        } else {
            Err(StorageError::UploadNotFound)
        }
    }
}

/// Refuses a request whose `Tus-Resumable` is missing or not 1.0.0 (412 in tus).
pub fn check_tus_resumable(header: Option<&str>) -> Result<(), StorageError> {
    match header.map(str::trim) {
        Some(TUS_VERSION) => Ok(()),
        Some(other) => Err(StorageError::TusVersion(other.to_string())),
        None => Err(StorageError::TusVersion(String::new())),
    }
}

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (or a bare key).
pub fn parse_upload_metadata(
    header: &str,
) -> Result<BTreeMap<String, Option<String>>, StorageError> {
    let bad = |reason: String| StorageError::InvalidInput {
        field: "Upload-Metadata",
        reason,
    };
    let mut out = BTreeMap::new();
    for pair in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut parts = pair.split(' ').filter(|p| !p.is_empty());
        let key = parts.next().unwrap_or_default();
        let value = parts.next();
        if parts.next().is_some() || key.is_empty() || !key.is_ascii() {
            return Err(bad(format!("{pair:?} is not `key base64value`")));
        }
        let value = match value {
            Some(encoded) => {
                let bytes = STANDARD
                    .decode(encoded)
                    .map_err(|_| bad(format!("the value of {key} is not base64")))?;
                Some(
                    String::from_utf8(bytes)
                        .map_err(|_| bad(format!("the value of {key} is not UTF-8")))?,
                )
            }
            None => None,
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(bad(format!("{key} appears twice")));
        }
    }
    Ok(out)
}

/// A required metadata value.
fn required<'a>(
    metadata: &'a BTreeMap<String, Option<String>>,
    key: &'static str,
) -> Result<&'a str, StorageError> {
    metadata
        .get(key)
        .and_then(|v| v.as_deref())
        .ok_or(StorageError::InvalidInput {
            field: "Upload-Metadata",
            reason: format!("{key} is required"),
        })
}

impl Storage {
    /// Creates an upload after checking that the caller may write the object (a dry run
    /// of its INSERT) and that the bucket takes its size and type.
    pub async fn tus_create(
        &self,
        ctx: &AuthContext,
        request: TusCreate,
    ) -> Result<TusUpload, StorageError> {
        let result = self.tus_create_inner(ctx, request).await;
        metrics::record("tus_create", &result);
        result
    }

    async fn tus_create_inner(
        &self,
        ctx: &AuthContext,
        request: TusCreate,
    ) -> Result<TusUpload, StorageError> {
        let metadata = parse_upload_metadata(request.upload_metadata.as_deref().unwrap_or(""))?;
        let bucket = BucketId::parse(required(&metadata, "bucketName")?)?;
        let name = ObjectName::parse(required(&metadata, "objectName")?)?;
        let user_metadata =
            match metadata.get("metadata").and_then(|v| v.as_deref()) {
                Some(json) => Some(serde_json::from_str::<serde_json::Value>(json).map_err(
                    |err| StorageError::InvalidInput {
                        field: "Upload-Metadata",
                        reason: format!("metadata is not JSON: {err}"),
                    },
                )?),
                None => None,
            };
        let rules = self.bucket_rules(&bucket).await?;
        let given_type = metadata.get("contentType").and_then(|v| v.as_deref());
        let mime_type = content_type(given_type, &rules)?;
        let limit = rules.effective_limit(self.inner.settings.max_object_size);
        if request.upload_length > limit {
            return Err(StorageError::TooLarge { limit });
        }
        let length =
            i64::try_from(request.upload_length).map_err(|_| StorageError::TooLarge { limit })?;
        self.check_write(ctx, &bucket, &name, &mime_type, request.upsert)
            .await?;
        let id = Uuid::new_v4().simple().to_string();
        let expires_at = Utc::now() + self.tus_expiry();
        let cache_control = metadata.get("cacheControl").and_then(|v| v.clone());
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                &format!(
                    "INSERT INTO storage.resumable_uploads
                       (id, bucket_id, name, owner_id, upsert, content_type, cache_control,
                        user_metadata, upload_length, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     RETURNING {UPLOAD_COLUMNS}"
                ),
                &[
                    &id,
                    &bucket.as_str(),
                    &name.as_str(),
                    &ctx.uid(),
                    &request.upsert,
                    &mime_type,
                    &cache_control,
                    &user_metadata,
                    &length,
                    &expires_at,
                ],
            )
            .await
            .map_err(db)?;
        Ok(Upload::from_row(&row).state())
    }

    /// The upload's state (`HEAD`: `Upload-Offset`, `Upload-Length`).
    pub async fn tus_status(&self, ctx: &AuthContext, id: &str) -> Result<TusUpload, StorageError> {
        Ok(self.load_upload(ctx, id).await?.state())
    }

    /// Appends a PATCH body at `offset` (`Upload-Offset`); `content_type` must be
    /// `application/offset+octet-stream`. If the body breaks off, what arrived is kept and
    /// the body's error returned; the client resumes from the new offset.
    pub async fn tus_patch<S>(
        &self,
        ctx: &AuthContext,
        id: &str,
        offset: u64,
        content_type: Option<&str>,
        body: S,
    ) -> Result<TusPatch, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let result = self
            .tus_patch_inner(ctx, id, offset, content_type, body)
            .await;
        metrics::record("tus_patch", &result);
        result
    }

    async fn tus_patch_inner<S>(
        &self,
        ctx: &AuthContext,
        id: &str,
        offset: u64,
        content_type: Option<&str>,
        body: S,
    ) -> Result<TusPatch, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        if essence.as_deref() != Some(TUS_CONTENT_TYPE) {
            return Err(StorageError::WrongContentType {
                expected: TUS_CONTENT_TYPE,
            });
        }
        let upload = self.load_upload(ctx, id).await?;
        if offset != upload.offset {
            return Err(StorageError::OffsetMismatch {
                expected: upload.offset,
                given: offset,
            });
        }
        if upload.offset == upload.length {
            // Every byte is here; an earlier finish failed (or this is a retry): finish.
            return self.tus_finish(ctx, upload, None).await;
        }

        let key = tus_chunk_key(&upload.id, offset, &Uuid::new_v4().simple().to_string());
        let mut meter = Meter::new(upload.length - offset);
        let body = body.map(|item| item.map_err(StorageError::Body));
        let outcome = self
            .inner
            .backend
            .put(&key, meter.wrap(body), OnBodyError::KeepReceived)
            .await?;
        let written = outcome.written;
        let chunk_sha = meter.finish().await?;
        if written == 0 {
            self.discard_bytes(&key).await;
            return match outcome.interrupted {
                Some(err) => Err(err),
                None => Ok(TusPatch::Progress(upload.state())),
            };
        }
        metrics::bytes_in(written);

        let advanced = self
            .conn()
            .await?
            .query_opt(
                &format!(
                    "UPDATE storage.resumable_uploads
                     SET upload_offset = upload_offset + $2,
                         chunks = array_append(chunks, $3),
                         expires_at = greatest(expires_at, $5)
                     WHERE id = $1 AND upload_offset = $4 AND expires_at > now()
                     RETURNING {UPLOAD_COLUMNS}"
                ),
                &[
                    &upload.id,
                    &(written as i64),
                    &key.as_ref(),
                    &(offset as i64),
                    &(Utc::now() + self.tus_expiry()),
                ],
            )
            .await
            .map_err(db);
        let upload = match advanced {
            Ok(Some(row)) => Upload::from_row(&row),
            Ok(None) => {
                // Another PATCH won this offset, or the upload was terminated meanwhile.
                self.discard_bytes(&key).await;
                let now = self.load_upload(ctx, id).await?;
                return Err(StorageError::OffsetMismatch {
                    expected: now.offset,
                    given: offset,
                });
            }
            Err(err) => {
                self.discard_bytes(&key).await;
                return Err(err);
            }
        };
        if let Some(err) = outcome.interrupted {
            return Err(err);
        }
        if upload.offset < upload.length {
            return Ok(TusPatch::Progress(upload.state()));
        }
        // One chunk covering everything: its digest is the object's.
        let whole = (offset == 0 && upload.chunks.len() == 1).then_some(chunk_sha);
        self.tus_finish(ctx, upload, whole).await
    }

    /// Deletes an upload and its chunks (`DELETE`, the termination extension).
    pub async fn tus_terminate(&self, ctx: &AuthContext, id: &str) -> Result<(), StorageError> {
        let upload = self.load_upload(ctx, id).await?;
        let conn = self.conn().await?;
        let deleted = conn
            .execute(
                "DELETE FROM storage.resumable_uploads WHERE id = $1",
                &[&upload.id],
            )
            .await
            .map_err(db)?;
        if deleted == 0 {
            return Err(StorageError::UploadNotFound);
        }
        self.discard_prefix(&tus_prefix(&upload.id)).await;
        let result = Ok(());
        metrics::record("tus_terminate", &result);
        result
    }

    /// Turns the chunks into the object and writes its row as the caller.
    async fn tus_finish(
        &self,
        ctx: &AuthContext,
        upload: Upload,
        whole_sha: Option<String>,
    ) -> Result<TusPatch, StorageError> {
        let bucket = BucketId::parse(&upload.bucket_id)?;
        let name = ObjectName::parse(&upload.name)?;
        let rules = self.bucket_rules(&bucket).await?;
        let mime_type = content_type(upload.content_type.as_deref(), &rules)?;
        let version = Uuid::new_v4().to_string();
        let key = object_key(bucket.as_str(), &version);
        let chunks: Vec<Path> = upload
            .chunks
            .iter()
            .map(|c| Path::from(c.as_str()))
            .collect();
        let sha256 = match (whole_sha, chunks.as_slice()) {
            (Some(sha), [only]) => {
                self.inner.backend.copy(only, &key).await?;
                sha
            }
            _ => {
                let mut meter = Meter::new(u64::MAX);
                let backend = self.inner.backend.clone();
                let body = futures_util::stream::iter(chunks.clone())
                    .then(move |chunk| {
                        let backend = backend.clone();
                        async move { backend.get(&chunk, None).await }
                    })
                    .try_flatten();
                self.inner
                    .backend
                    .put(&key, meter.wrap(body), OnBodyError::Discard)
                    .await?;
                if meter.bytes() != upload.length {
                    self.discard_bytes(&key).await;
                    return Err(StorageError::Internal(format!(
                        "resumable upload {} has {} bytes in its chunks, expected {}",
                        upload.id,
                        meter.bytes(),
                        upload.length
                    )));
                }
                meter.finish().await?
            }
        };
        let row = NewRow {
            bucket: &bucket,
            name: &name,
            size: upload.length,
            mime_type: &mime_type,
            sha256: Some(&sha256),
            cache_control: upload.cache_control.as_deref(),
            version: &version,
            user_metadata: upload.user_metadata.as_ref(),
            upsert: upload.upsert,
        };
        let info = self
            .commit_new_bytes(Writer::Caller(ctx), &row, Some(&upload.id))
            .await?;
        self.discard_prefix(&tus_prefix(&upload.id)).await;
        Ok(TusPatch::Completed(upload.state(), Box::new(info)))
    }

    /// The upload, if it exists, has not expired, and the caller may touch it.
    async fn load_upload(&self, ctx: &AuthContext, id: &str) -> Result<Upload, StorageError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::UploadNotFound);
        }
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {UPLOAD_COLUMNS} FROM storage.resumable_uploads
                     WHERE id = $1 AND expires_at > now()"
                ),
                &[&id],
            )
            .await
            .map_err(db)?
            .ok_or(StorageError::UploadNotFound)?;
        let upload = Upload::from_row(&row);
        upload.check_access(ctx)?;
        Ok(upload)
    }

    fn tus_expiry(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.settings.tus_expiry)
            .unwrap_or(chrono::Duration::days(1))
    }

    /// Deletes every key under `prefix`, logging failures (the sweep retries).
    pub(crate) async fn discard_prefix(&self, prefix: &Path) {
        let keys: Vec<_> = self.inner.backend.list(prefix).collect().await;
        for key in keys {
            match key {
                Ok(stored) => self.discard_bytes(&stored.key).await,
                Err(err) => {
                    tracing::warn!(prefix = %prefix, error = %err, "listing keys to delete failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs() {
        let header = format!(
            "bucketName {},objectName {}, flag",
            STANDARD.encode("b"),
            STANDARD.encode("a/é.txt")
        );
        let parsed = parse_upload_metadata(&header).unwrap();
        assert_eq!(parsed["bucketName"].as_deref(), Some("b"));
        assert_eq!(parsed["objectName"].as_deref(), Some("a/é.txt"));
        assert_eq!(parsed["flag"], None);
        assert!(parse_upload_metadata("k not-base64!").is_err());
        assert!(parse_upload_metadata("k YQ== extra").is_err());
        assert!(parse_upload_metadata("k YQ==,k YQ==").is_err());
        assert!(parse_upload_metadata("").unwrap().is_empty());
    }

    #[test]
    fn version_header() {
        assert!(check_tus_resumable(Some("1.0.0")).is_ok());
        assert!(matches!(
            check_tus_resumable(Some("0.2.2")),
            Err(StorageError::TusVersion(_))
        ));
        assert!(check_tus_resumable(None).is_err());
    }
}
