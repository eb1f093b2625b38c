//! Buckets: create, get, list, update, empty, delete (only when empty) — each as the caller,
//! so policies on `storage.buckets` decide (none by default: only the service role) — and
//! the rules a bucket puts on uploads (size limit, MIME allow-list with `image/*`).

use chrono::{DateTime, Utc};
use fluxbase_auth::AuthContext;
use fluxbase_migrations::DbErrorKind;
use serde::Serialize;
use tokio_postgres::Row;

use crate::error::StorageError;
use crate::metrics;
use crate::name::BucketId;
use crate::service::{Storage, begin_as, db};

/// The columns every bucket query selects, in [`Bucket::from_row`]'s order.
const BUCKET_COLUMNS: &str =
    "id, name, owner_id, public, file_size_limit, allowed_mime_types, created_at, updated_at";

/// One bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Id (and, as in Supabase, usually the name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creator's `sub`.
    pub owner: Option<String>,
    /// Readable by anyone through the public path, without a token.
    pub public: bool,
    /// Largest object in bytes, if the bucket sets one.
    pub file_size_limit: Option<u64>,
    /// Allowed content types (`image/png`, `image/*`); `None` allows all.
    pub allowed_mime_types: Option<Vec<String>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Bucket {
    pub(crate) fn from_row(row: &Row) -> Bucket {
        let limit: Option<i64> = row.get(4);
        Bucket {
            id: row.get(0),
            name: row.get(1),
            owner: row.get(2),
            public: row.get(3),
            file_size_limit: limit.map(|l| l.max(0) as u64),
            allowed_mime_types: row.get(5),
            created_at: row.get(6),
            updated_at: row.get(7),
        }
    }

    /// Whether `content_type` (parameters ignored, case-insensitive) may be stored here.
    pub fn allows_mime_type(&self, content_type: &str) -> bool {
        match &self.allowed_mime_types {
            None => true,
            Some(list) if list.is_empty() => true,
            Some(list) => mime_allowed(list, content_type),
        }
    }

    /// The limit in force given the server's own.
    pub fn effective_limit(&self, server_limit: u64) -> u64 {
        self.file_size_limit
            .map_or(server_limit, |l| l.min(server_limit))
    }
}

/// What [`Storage::create_bucket`] takes.
#[derive(Debug, Clone, Default)]
pub struct NewBucket {
    /// Id (validated: letters, digits, `_`, `-`, `.`).
    pub id: String,
    /// Display name; the id when absent.
    pub name: Option<String>,
    /// Public read without a token.
    pub public: bool,
    /// Largest object in bytes.
    pub file_size_limit: Option<u64>,
    /// Allowed content types.
    pub allowed_mime_types: Option<Vec<String>>,
}

/// What [`Storage::update_bucket`] changes: `None` leaves a field as it is; for the two
/// limits, `Some(None)` removes the limit.
#[derive(Debug, Clone, Default)]
pub struct BucketUpdate {
    /// New public flag.
    pub public: Option<bool>,
    /// New size limit.
    pub file_size_limit: Option<Option<u64>>,
    /// New allow-list.
    pub allowed_mime_types: Option<Option<Vec<String>>>,
}

impl Storage {
    /// Creates a bucket as the caller (`owner` = the caller's `sub`).
    pub async fn create_bucket(
        &self,
        ctx: &AuthContext,
        new: NewBucket,
    ) -> Result<Bucket, StorageError> {
        let result = self.create_bucket_inner(ctx, new).await;
        metrics::record("bucket_create", &result);
        result
    }

    async fn create_bucket_inner(
        &self,
        ctx: &AuthContext,
        new: NewBucket,
    ) -> Result<Bucket, StorageError> {
        let id = BucketId::parse(&new.id)?;
        let name = new.name.unwrap_or_else(|| id.as_str().to_string());
        let limit = check_limit(new.file_size_limit)?;
        let types = check_mime_list(new.allowed_mime_types)?;
        let owner = ctx.uid().map(str::to_string);
        let owner_uuid = ctx.uid().and_then(|s| s.parse::<uuid::Uuid>().ok());
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO storage.buckets
                       (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {BUCKET_COLUMNS}"
                ),
                &[
                    &id.as_str(),
                    &name,
                    &owner_uuid,
                    &owner,
                    &new.public,
                    &limit,
                    &types,
                ],
            )
            .await
            .map_err(|err| match db(err) {
                StorageError::Db(e) if e.kind() == DbErrorKind::UniqueViolation => {
                    StorageError::BucketExists
                }
                other => other,
            })?;
        tx.commit().await.map_err(db)?;
        Ok(Bucket::from_row(&row))
    }

    /// One bucket the caller may see.
    pub async fn get_bucket(&self, ctx: &AuthContext, id: &str) -> Result<Bucket, StorageError> {
        let id = BucketId::parse(id)?;
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let row = tx
            .query_opt(
                &format!("SELECT {BUCKET_COLUMNS} FROM storage.buckets WHERE id = $1"),
                &[&id.as_str()],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref()
            .map(Bucket::from_row)
            .ok_or(StorageError::BucketNotFound)
    }

    /// Every bucket the caller may see, by name.
    pub async fn list_buckets(&self, ctx: &AuthContext) -> Result<Vec<Bucket>, StorageError> {
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let rows = tx
            .query(
                &format!("SELECT {BUCKET_COLUMNS} FROM storage.buckets ORDER BY name"),
                &[],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows.iter().map(Bucket::from_row).collect())
    }

    /// Changes a bucket's public flag or limits.
    pub async fn update_bucket(
        &self,
        ctx: &AuthContext,
        id: &str,
        update: BucketUpdate,
    ) -> Result<Bucket, StorageError> {
        let id = BucketId::parse(id)?;
        let limit = match update.file_size_limit {
            Some(limit) => Some(check_limit(limit)?),
            None => None,
        };
        let types = match update.allowed_mime_types {
            Some(types) => Some(check_mime_list(types)?),
            None => None,
        };
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE storage.buckets SET
                       public = coalesce($2, public),
                       file_size_limit = CASE WHEN $3 THEN $4 ELSE file_size_limit END,
                       allowed_mime_types = CASE WHEN $5 THEN $6 ELSE allowed_mime_types END
                     WHERE id = $1 RETURNING {BUCKET_COLUMNS}"
                ),
                &[
                    &id.as_str(),
                    &update.public,
                    &limit.is_some(),
                    &limit.flatten(),
                    &types.is_some(),
                    &types.flatten(),
                ],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let result = row
            .as_ref()
            .map(Bucket::from_row)
            .ok_or(StorageError::BucketNotFound);
        metrics::record("bucket_update", &result);
        result
    }

    /// Deletes every object of the bucket that the caller may delete; returns how many.
    /// The rows go first (in one transaction); the bytes follow, and any the server fails
    /// to delete are left to the sweep.
    pub async fn empty_bucket(&self, ctx: &AuthContext, id: &str) -> Result<u64, StorageError> {
        let id = BucketId::parse(id)?;
        self.get_bucket(ctx, id.as_str()).await?;
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let rows = tx
            .query(
                "DELETE FROM storage.objects WHERE bucket_id = $1 RETURNING version",
                &[&id.as_str()],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        for row in &rows {
            let version: String = row.get(0);
            self.discard_bytes(&crate::backend::object_key(id.as_str(), &version))
                .await;
        }
        let result = Ok(rows.len() as u64);
        metrics::record("bucket_empty", &result);
        result
    }

    /// Deletes a bucket that has no objects left.
    pub async fn delete_bucket(&self, ctx: &AuthContext, id: &str) -> Result<(), StorageError> {
        let id = BucketId::parse(id)?;
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let deleted = tx
            .execute("DELETE FROM storage.buckets WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(|err| match db(err) {
                StorageError::Db(e) if e.kind() == DbErrorKind::ForeignKeyViolation => {
                    StorageError::BucketNotEmpty
                }
                other => other,
            })?;
        tx.commit().await.map_err(db)?;
        let result = if deleted == 0 {
            Err(StorageError::BucketNotFound)
        } else {
            Ok(())
        };
        metrics::record("bucket_delete", &result);
        result
    }

    /// The bucket as the server sees it (no policy applies): its rules bind every upload,
    /// and public reads need its flag.
    pub(crate) async fn bucket_rules(&self, id: &BucketId) -> Result<Bucket, StorageError> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(rules_sql()).await.map_err(db)?;
        let row = conn
            .query_opt(&statement, &[&id.as_str()])
            .await
            .map_err(db)?;
        row.as_ref()
            .map(Bucket::from_row)
            .ok_or(StorageError::BucketNotFound)
    }
}

/// The read of one bucket's rules by id (`$1`), in [`Bucket::from_row`]'s shape.
pub(crate) fn rules_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!("SELECT {BUCKET_COLUMNS} FROM storage.buckets WHERE id = $1"))
}

/// A size limit that fits PostgreSQL's bigint and is positive.
fn check_limit(limit: Option<u64>) -> Result<Option<i64>, StorageError> {
    match limit {
        None => Ok(None),
        Some(0) => Err(StorageError::InvalidInput {
            field: "file_size_limit",
            reason: "must be positive".into(),
        }),
        Some(l) => i64::try_from(l)
            .map(Some)
            .map_err(|_| StorageError::InvalidInput {
                field: "file_size_limit",
                reason: "is too large".into(),
            }),
    }
}

/// Lower-cases and checks the allow-list: `type/subtype`, `type/*` or `*/*`.
fn check_mime_list(list: Option<Vec<String>>) -> Result<Option<Vec<String>>, StorageError> {
    let Some(list) = list else { return Ok(None) };
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let entry = entry.trim().to_ascii_lowercase();
        let valid = entry.split_once('/').is_some_and(|(t, s)| {
            let token = |x: &str| {
                !x.is_empty()
                    && x.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-*".contains(&b))
            };
            token(t) && token(s) && (t != "*" || s == "*")
        });
        if !valid {
            return Err(StorageError::InvalidInput {
                field: "allowed_mime_types",
                reason: format!("{entry:?} is not a media type or pattern like image/*"),
            });
        }
        out.push(entry);
    }
    Ok(Some(out))
}

/// Whether `content_type` matches one of the patterns (`*/*`, `image/*`, `image/png`).
pub fn mime_allowed(patterns: &[String], content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((top, _)) = essence.split_once('/') else {
        return false;
    };
    patterns.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.split_once('/') {
            Some(("*", "*")) => true,
            Some((ptop, "*")) => ptop == top,
            _ => pattern == essence,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_patterns() {
        let list = vec!["image/*".to_string(), "application/pdf".to_string()];
        assert!(mime_allowed(&list, "image/png"));
        assert!(mime_allowed(&list, "IMAGE/JPEG; q=1"));
        assert!(mime_allowed(&list, "application/pdf;charset=x"));
        assert!(!mime_allowed(&list, "application/pdfx"));
        assert!(!mime_allowed(&list, "text/plain"));
        assert!(!mime_allowed(&list, "imagepng"));
        assert!(mime_allowed(&["*/*".to_string()], "a/b"));
    }

    #[test]
    fn allow_lists_are_checked() {
        assert!(check_mime_list(Some(vec!["image/*".into()])).is_ok());
        assert!(check_mime_list(Some(vec!["image".into()])).is_err());
        assert!(check_mime_list(Some(vec!["*/png".into()])).is_err());
        assert_eq!(
            check_mime_list(Some(vec![" Image/PNG ".into()])).unwrap(),
            Some(vec!["image/png".to_string()])
        );
    }
}
