//! Downloads and object info: as the caller (policies decide which rows it sees), from a
//! public bucket without a token, or with a signed URL. The body streams from the backend;
//! a `Range` (single or suffix) streams just those bytes; `verify` hashes the stored bytes
//! first and refuses to serve them if they no longer match the recorded SHA-256.

use std::ops::Range;

use fluxbase_auth::AuthContext;
use futures_util::{StreamExt, TryStreamExt};
use ring::digest::{Context, SHA256};

use crate::backend::ByteStream;
use crate::error::StorageError;
use crate::metrics;
use crate::name::{BucketId, ObjectName};
use crate::object::{OBJECT_COLUMNS, ObjectInfo};
use crate::service::{BEGIN_SQL, ROLLBACK_SQL, Storage, db};
use fluxbase_migrations::caller::ACT_AS_SQL;

/// A `Range: bytes=…` request, before it meets the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header value. `None` when the header is not one single byte range
    /// (a malformed or multi-range header is ignored and the whole object served, as RFC
    /// 9110 allows).
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<u64>().ok()
            }
        };
        match (start.is_empty(), end.is_empty()) {
            (true, false) => Some(ByteRange::Suffix(number(end)?)),
            (false, true) => Some(ByteRange::From(number(start)?)),
            (false, false) => {
                let (a, b) = (number(start)?, number(end)?);
                (a <= b).then_some(ByteRange::FromTo(a, b))
            }
            (true, true) => None,
        }
    }

    /// The half-open byte range of an object of `size` bytes, or 416.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, StorageError> {
        let unsatisfiable = StorageError::RangeNotSatisfiable { size };
        match self {
            ByteRange::FromTo(a, b) if a < size => Ok(a..b.saturating_add(1).min(size)),
            ByteRange::From(a) if a < size => Ok(a..size),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Ok(size.saturating_sub(n)..size),
            _ => Err(unsatisfiable),
        }
    }
}

/// How to download.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownloadOptions {
    /// The `Range` header, parsed.
    pub range: Option<ByteRange>,
    /// Hash the stored bytes before serving them (`?verify=true`).
    pub verify: bool,
}

/// A download in progress: headers' material and the body.
pub struct Download {
    /// The object (ETag, Last-Modified from `updated_at`, content type, cache control,
    /// `Repr-Digest`, name for `Content-Disposition`).
    pub info: ObjectInfo,
    /// The bytes sent, when a range was asked for (206 with `Content-Range`).
    pub range: Option<Range<u64>>,
    /// Whether the bytes were hashed and matched before this body was opened.
    pub verified: bool,
    /// The bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("info", &self.info)
            .field("range", &self.range)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

impl Download {
    /// `Content-Length` of this response.
    pub fn content_length(&self) -> u64 {
        self.range
            .as_ref()
            .map_or(self.info.size, |r| r.end - r.start)
    }

    /// `Content-Range` for a 206: `bytes a-b/size`.
    pub fn content_range(&self) -> Option<String> {
        self.range
            .as_ref()
            .map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, self.info.size))
    }

    /// The file name for `Content-Disposition` (the last segment of the object's name).
    pub fn file_name(&self) -> &str {
        self.info.name.rsplit('/').next().unwrap_or(&self.info.name)
    }
}

impl Storage {
    /// The object's metadata, if the caller may read it (`HEAD`, `/object/info`).
    pub async fn info(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        name: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let bucket = BucketId::parse(bucket)?;
        let name = ObjectName::parse(name)?;
        self.find_as(Some(ctx), &bucket, &name).await
    }

    /// The object's metadata in a public bucket, without a token.
    pub async fn info_public(&self, bucket: &str, name: &str) -> Result<ObjectInfo, StorageError> {
        let (bucket, name) = self.public_target(bucket, name).await?;
        self.find_as(None, &bucket, &name).await
    }

    /// Streams an object the caller may read.
    pub async fn download(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        name: &str,
        options: DownloadOptions,
    ) -> Result<Download, StorageError> {
        let result = async {
            let info = self.info(ctx, bucket, name).await?;
            self.open(info, options).await
        }
        .await;
        metrics::record("download", &result);
        result
    }

    /// Streams an object of a public bucket, without a token.
    pub async fn download_public(
        &self,
        bucket: &str,
        name: &str,
        options: DownloadOptions,
    ) -> Result<Download, StorageError> {
        let result = async {
            let info = self.info_public(bucket, name).await?;
            self.open(info, options).await
        }
        .await;
        metrics::record("download_public", &result);
        result
    }

    /// Refuses anything but a public bucket's object (404 for a private bucket: its
    /// existence is not for anonymous eyes).
    async fn public_target(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<(BucketId, ObjectName), StorageError> {
        let bucket = BucketId::parse(bucket)?;
        let name = ObjectName::parse(name)?;
        let rules = self.bucket_rules(&bucket).await?;
        if !rules.public {
            return Err(StorageError::BucketNotFound);
        }
        Ok((bucket, name))
    }

    /// The row, as the caller (policies apply) or as the server (`None`).
    pub(crate) async fn find_as(
        &self,
        ctx: Option<&AuthContext>,
        bucket: &BucketId,
        name: &ObjectName,
    ) -> Result<ObjectInfo, StorageError> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM storage.objects WHERE bucket_id = $1 AND name = $2"
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&bucket.as_str(), &name.as_str()];
        let conn = self.conn().await?;
        let row = match ctx {
            Some(ctx) => {
                let begin = conn.prepare_cached(BEGIN_SQL).await.map_err(db)?;
                let act = conn.prepare_cached(ACT_AS_SQL).await.map_err(db)?;
                let read = conn.prepare_cached(&sql).await.map_err(db)?;
                let rollback = conn.prepare_cached(ROLLBACK_SQL).await.map_err(db)?;
                let role = ctx.role().as_str();
                let claims = ctx.claims_json();
                let acting: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&role, &claims];
                // One round trip: the four go out together, in order (see BEGIN_SQL).
                let (begun, acted, row, ended) = futures_util::join!(
                    conn.execute(&begin, &[]),
                    conn.query_one(&act, &acting),
                    conn.query_opt(&read, &params),
                    conn.execute(&rollback, &[]),
                );
                begun.map_err(db)?;
                acted.map_err(db)?;
                let row = row.map_err(db)?;
                ended.map_err(db)?;
                row
            }
            None => {
                let statement = conn.prepare_cached(&sql).await.map_err(db)?;
                conn.query_opt(&statement, &params).await.map_err(db)?
            }
        };
        row.as_ref()
            .map(ObjectInfo::from_row)
            .ok_or(StorageError::ObjectNotFound)
    }

    /// Opens the bytes of a row the reader was allowed to see.
    pub(crate) async fn open(
        &self,
        info: ObjectInfo,
        options: DownloadOptions,
    ) -> Result<Download, StorageError> {
        let range = match options.range {
            Some(range) => Some(range.resolve(info.size)?),
            None => None,
        };
        if options.verify {
            self.verify_bytes(&info).await?;
        }
        let body = if info.size == 0 {
            futures_util::stream::empty().boxed()
        } else {
            self.inner.backend.get(&info.key(), range.clone()).await?
        };
        let body = body
            .inspect_ok(|chunk| metrics::bytes_out(chunk.len() as u64))
            .boxed();
        Ok(Download {
            info,
            range,
            verified: options.verify,
            body,
        })
    }

    /// Hashes the stored bytes and compares them with the recorded digest and size.
    pub(crate) async fn verify_bytes(&self, info: &ObjectInfo) -> Result<(), StorageError> {
        let Some(expected) = info.sha256.clone() else {
            return Err(StorageError::Internal(format!(
                "object version {} has no recorded SHA-256 to verify against",
                info.version
            )));
        };
        let mut hasher = Context::new(&SHA256);
        let mut size = 0u64;
        if info.size > 0 {
            let mut stream = self.inner.backend.get(&info.key(), None).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
        }
        let actual = hex::encode(hasher.finish());
        if actual != expected || size != info.size {
            tracing::error!(
                bucket = %info.bucket_id,
                version = %info.version,
                expected = %expected,
                actual = %actual,
                "stored bytes do not match their recorded sha256"
            );
            metrics::record::<()>(
                "verify",
                &Err(StorageError::IntegrityMismatch {
                    expected: expected.clone(),
                    actual: actual.clone(),
                }),
            );
            return Err(StorageError::IntegrityMismatch { expected, actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!(
            ByteRange::parse("bytes=0-99"),
            Some(ByteRange::FromTo(0, 99))
        );
        assert_eq!(ByteRange::parse("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(ByteRange::parse("bytes=-10"), Some(ByteRange::Suffix(10)));
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
        ] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn resolves_against_size() {
        assert_eq!(ByteRange::FromTo(0, 99).resolve(10).unwrap(), 0..10);
        assert_eq!(ByteRange::FromTo(2, 4).resolve(10).unwrap(), 2..5);
        assert_eq!(ByteRange::From(9).resolve(10).unwrap(), 9..10);
        assert_eq!(ByteRange::Suffix(3).resolve(10).unwrap(), 7..10);
        assert_eq!(ByteRange::Suffix(30).resolve(10).unwrap(), 0..10);
        assert_eq!(ByteRange::FromTo(0, u64::MAX).resolve(10).unwrap(), 0..10);
        for bad in [
            ByteRange::From(10),
            ByteRange::FromTo(10, 20),
            ByteRange::Suffix(0),
        ] {
            assert!(matches!(
                bad.resolve(10),
                Err(StorageError::RangeNotSatisfiable { size: 10 })
            ));
        }
        assert!(ByteRange::Suffix(1).resolve(0).is_err());
        assert!(ByteRange::From(0).resolve(0).is_err());
    }
}
