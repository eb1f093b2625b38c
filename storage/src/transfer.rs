//! Deleting, copying and moving objects, each as the caller. Rows change first (in one
//! transaction); bytes that no row points to any more are deleted after the commit, and
//! new bytes (a copy, a move across buckets) are made before the row that points to them
//! and deleted again if that row cannot be written.

use fluxbase_auth::AuthContext;
use fluxbase_migrations::DbErrorKind;
use uuid::Uuid;

use crate::backend::object_key;
use crate::error::StorageError;
use crate::metrics;
use crate::name::{BucketId, ObjectName};
use crate::object::{OBJECT_COLUMNS, ObjectInfo};
use crate::service::{Storage, begin_as, db, switch_to};
use crate::upload::{NewRow, Writer, content_type};

/// Most names one delete call takes (Supabase's limit too).
pub const MAX_DELETE_BATCH: usize = 1000;

impl Storage {
    /// Deletes the named objects the caller may delete; returns those deleted (names the
    /// caller may not delete, or that do not exist, are left out, as in Supabase).
    pub async fn remove(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        names: &[String],
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let result = self.remove_inner(ctx, bucket, names).await;
        metrics::record("delete", &result);
        result
    }

    async fn remove_inner(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        names: &[String],
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let bucket = BucketId::parse(bucket)?;
        if names.len() > MAX_DELETE_BATCH {
            return Err(StorageError::InvalidInput {
                field: "prefixes",
                reason: format!("at most {MAX_DELETE_BATCH} names per call"),
            });
        }
        let names = names
            .iter()
            .map(|n| ObjectName::parse(n).map(|n| n.as_str().to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let rows = tx
            .query(
                &format!(
                    "DELETE FROM storage.objects WHERE bucket_id = $1 AND name = ANY($2)
                     RETURNING {OBJECT_COLUMNS}"
                ),
                &[&bucket.as_str(), &names],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let deleted: Vec<ObjectInfo> = rows.iter().map(ObjectInfo::from_row).collect();
        for info in &deleted {
            self.discard_bytes(&info.key()).await;
        }
        Ok(deleted)
    }

    /// Copies an object the caller may read to a name the caller may write (`upsert`
    /// replaces an existing one). The copy is owned by the caller.
    pub async fn copy(
        &self,
        ctx: &AuthContext,
        from: (&str, &str),
        to: (&str, &str),
        upsert: bool,
    ) -> Result<ObjectInfo, StorageError> {
        let result = self.copy_inner(ctx, from, to, upsert).await;
        metrics::record("copy", &result);
        result
    }

    async fn copy_inner(
        &self,
        ctx: &AuthContext,
        (from_bucket, from_name): (&str, &str),
        (to_bucket, to_name): (&str, &str),
        upsert: bool,
    ) -> Result<ObjectInfo, StorageError> {
        let source = self.info(ctx, from_bucket, from_name).await?;
        let bucket = BucketId::parse(to_bucket)?;
        let name = ObjectName::parse(to_name)?;
        let mime_type = self.check_destination(&bucket, &source).await?;
        self.check_write(ctx, &bucket, &name, &mime_type, upsert)
            .await?;
        let version = Uuid::new_v4().to_string();
        self.inner
            .backend
            .copy(&source.key(), &object_key(bucket.as_str(), &version))
            .await?;
        let row = NewRow {
            bucket: &bucket,
            name: &name,
            size: source.size,
            mime_type: &mime_type,
            sha256: source.sha256.as_deref(),
            cache_control: source.cache_control.as_deref(),
            version: &version,
            user_metadata: source.user_metadata.as_ref(),
            upsert,
        };
        self.commit_new_bytes(Writer::Caller(ctx), &row, None).await
    }

    /// Renames an object (possibly into another bucket). The caller must be allowed to
    /// UPDATE the row, and the renamed row must pass the policies' checks. Within a bucket
    /// no byte moves; across buckets the bytes are copied first and the old ones deleted
    /// after the commit.
    pub async fn move_object(
        &self,
        ctx: &AuthContext,
        from: (&str, &str),
        to: (&str, &str),
    ) -> Result<ObjectInfo, StorageError> {
        let result = self.move_inner(ctx, from, to).await;
        metrics::record("move", &result);
        result
    }

    async fn move_inner(
        &self,
        ctx: &AuthContext,
        (from_bucket, from_name): (&str, &str),
        (to_bucket, to_name): (&str, &str),
    ) -> Result<ObjectInfo, StorageError> {
        let source = self.info(ctx, from_bucket, from_name).await?;
        let bucket = BucketId::parse(to_bucket)?;
        let name = ObjectName::parse(to_name)?;
        let across = bucket.as_str() != source.bucket_id;
        let version = if across {
            self.check_destination(&bucket, &source).await?;
            let version = Uuid::new_v4().to_string();
            self.inner
                .backend
                .copy(&source.key(), &object_key(bucket.as_str(), &version))
                .await?;
            version
        } else {
            source.version.clone()
        };
        match self
            .rename_row(ctx, &source, &bucket, &name, &version)
            .await
        {
            Ok(moved) => {
                if across {
                    self.discard_bytes(&source.key()).await;
                }
                Ok(moved)
            }
            Err(err) => {
                if across {
                    self.discard_bytes(&object_key(bucket.as_str(), &version))
                        .await;
                }
                Err(err)
            }
        }
    }

    /// The UPDATE of a move, as the caller; the row is then read back as the server.
    async fn rename_row(
        &self,
        ctx: &AuthContext,
        source: &ObjectInfo,
        bucket: &BucketId,
        name: &ObjectName,
        version: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(db)?;
        switch_to(&tx, ctx).await?;
        let updated = tx
            .execute(
                "UPDATE storage.objects SET bucket_id = $2, name = $3, version = $4
                 WHERE id = $1 AND version = $5",
                &[
                    &source.id,
                    &bucket.as_str(),
                    &name.as_str(),
                    &version,
                    &source.version,
                ],
            )
            .await
            .map_err(|err| match db(err) {
                StorageError::Db(e) if e.kind() == DbErrorKind::UniqueViolation => {
                    StorageError::ObjectExists
                }
                StorageError::Db(e) if e.kind() == DbErrorKind::ForeignKeyViolation => {
                    StorageError::BucketNotFound
                }
                other => other,
            })?;
        if updated == 0 {
            // Not allowed to update it, or replaced meanwhile.
            return Err(StorageError::ObjectNotFound);
        }
        tx.execute(
            "SELECT pg_catalog.set_config('role', 'none', true),
                    pg_catalog.set_config('request.jwt.claims', '', true)",
            &[],
        )
        .await
        .map_err(db)?;
        let row = tx
            .query_one(
                &format!("SELECT {OBJECT_COLUMNS} FROM storage.objects WHERE id = $1"),
                &[&source.id],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(ObjectInfo::from_row(&row))
    }

    /// The destination bucket's rules applied to an object arriving from elsewhere.
    async fn check_destination(
        &self,
        bucket: &BucketId,
        source: &ObjectInfo,
    ) -> Result<String, StorageError> {
        let rules = self.bucket_rules(bucket).await?;
        let limit = rules.effective_limit(self.inner.settings.max_object_size);
        if source.size > limit {
            return Err(StorageError::TooLarge { limit });
        }
        content_type(Some(&source.mime_type), &rules)
    }
}
