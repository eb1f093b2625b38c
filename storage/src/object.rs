//! An object's metadata as `storage.objects` holds it, and what HTTP headers are made of
//! (ETag, Last-Modified, `Repr-Digest`, Supabase's `metadata` shape).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use object_store::path::Path;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::backend::object_key;

/// The columns every object query selects, in [`ObjectInfo::from_row`]'s order.
pub(crate) const OBJECT_COLUMNS: &str = "id, bucket_id, name, owner_id, size, mime_type, sha256, \
     etag, cache_control, version, user_metadata, created_at, updated_at, last_accessed_at";

/// Default content type when the uploader sends none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// One stored object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectInfo {
    /// Row id.
    pub id: Uuid,
    /// Its bucket.
    pub bucket_id: String,
    /// Its full name (`folder/file.png`).
    pub name: String,
    /// The uploader's `sub`.
    pub owner: Option<String>,
    /// Bytes.
    pub size: u64,
    /// Content type given at upload.
    pub mime_type: String,
    /// Hex SHA-256 of the bytes (absent only for rows written by hand).
    pub sha256: Option<String>,
    /// Strong ETag, quoted.
    pub etag: String,
    /// `Cache-Control` to send with downloads.
    pub cache_control: Option<String>,
    /// Which bytes in the backend.
    pub version: String,
    /// Metadata the uploader attached (JSON object).
    pub user_metadata: Option<Value>,
    /// First upload.
    pub created_at: DateTime<Utc>,
    /// Last replacement or change (`Last-Modified`).
    pub updated_at: DateTime<Utc>,
    /// Last upload (downloads do not write to the database).
    pub last_accessed_at: DateTime<Utc>,
}

impl ObjectInfo {
    /// Reads a row selected with [`OBJECT_COLUMNS`].
    pub(crate) fn from_row(row: &Row) -> ObjectInfo {
        Self::from_row_at(row, 0)
    }

    /// Reads [`OBJECT_COLUMNS`] starting at column `at`.
    pub(crate) fn from_row_at(row: &Row, at: usize) -> ObjectInfo {
        let size: i64 = row.get(at + 4);
        let mime: Option<String> = row.get(at + 5);
        let sha256: Option<String> = row.get(at + 6);
        let etag: Option<String> = row.get(at + 7);
        let version: String = row.get(at + 9);
        ObjectInfo {
            id: row.get(at),
            bucket_id: row.get(at + 1),
            name: row.get(at + 2),
            owner: row.get(at + 3),
            size: size.max(0) as u64,
            mime_type: mime.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            etag: etag.unwrap_or_else(|| etag_of(sha256.as_deref().unwrap_or(&version))),
            sha256,
            cache_control: row.get(at + 8),
            version,
            user_metadata: row.get(at + 10),
            created_at: row.get(at + 11),
            updated_at: row.get(at + 12),
            last_accessed_at: row.get(at + 13),
        }
    }

    /// The backend key of its bytes.
    pub fn key(&self) -> Path {
        object_key(&self.bucket_id, &self.version)
    }

    /// `Repr-Digest` (RFC 9530): `sha-256=:<base64>:` of the whole object, also valid on a
    /// range response.
    pub fn repr_digest(&self) -> Option<String> {
        let bytes = hex::decode(self.sha256.as_deref()?).ok()?;
        Some(format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }

    /// Whether an `If-None-Match` header value matches this object (`*`, a list, weak
    /// comparison as RFC 9110 asks for this header).
    pub fn matches_if_none_match(&self, header: &str) -> bool {
        let ours = self.etag.trim_start_matches("W/");
        header
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
    }

    /// The `metadata` object Supabase clients read (`eTag`, `size`, `mimetype`,
    /// `cacheControl`, `lastModified`, `contentLength`, `httpStatusCode`).
    pub fn supabase_metadata(&self) -> Value {
        supabase_metadata(
            &self.etag,
            self.size,
            &self.mime_type,
            self.cache_control.as_deref(),
            self.updated_at,
        )
    }
}

/// Supabase's `metadata` shape, stored in `storage.objects.metadata` for policies and SQL.
pub(crate) fn supabase_metadata(
    etag: &str,
    size: u64,
    mime_type: &str,
    cache_control: Option<&str>,
    last_modified: DateTime<Utc>,
) -> Value {
    json!({
        "eTag": etag,
        "size": size,
        "mimetype": mime_type,
        "cacheControl": cache_control,
        "lastModified": last_modified.to_rfc3339_opts(SecondsFormat::Millis, true),
        "contentLength": size,
        "httpStatusCode": 200,
    })
}

/// The strong ETag of bytes with this SHA-256.
pub(crate) fn etag_of(sha256_hex: &str) -> String {
    format!("\"{sha256_hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ObjectInfo {
        let now = Utc::now();
        ObjectInfo {
            id: Uuid::nil(),
            bucket_id: "b".into(),
            name: "n".into(),
            owner: None,
            size: 0,
            mime_type: DEFAULT_CONTENT_TYPE.into(),
            // SHA-256 of the empty string.
            sha256: Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()),
            etag: "\"abc\"".into(),
            cache_control: None,
            version: "v".into(),
            user_metadata: None,
            created_at: now,
            updated_at: now,
            last_accessed_at: now,
        }
    }

    #[test]
    fn repr_digest_is_base64_of_the_sha256() {
        assert_eq!(
            info().repr_digest().unwrap(),
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
        );
    }

    #[test]
    fn if_none_match() {
        let info = info();
        assert!(info.matches_if_none_match("\"abc\""));
        assert!(info.matches_if_none_match("W/\"abc\""));
        assert!(info.matches_if_none_match("\"x\", \"abc\""));
        assert!(info.matches_if_none_match("*"));
        assert!(!info.matches_if_none_match("\"abd\""));
    }
}
