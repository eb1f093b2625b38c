//! Uploads: the body streams through a meter (SHA-256, byte count, size limit) into a fresh
//! version key of the backend, never whole in memory. The order keeps metadata and bytes in
//! agreement:
//!
//! 1. a dry run of the row's INSERT as the caller (rolled back) — a refused caller never
//!    writes a byte;
//! 2. the bytes, durable when `put` returns; any failure (client gone, limit, backend)
//!    aborts them;
//! 3. the row, as the caller, in a transaction committed only now; if it fails the bytes
//!    are deleted; a replaced object's old bytes are deleted after the commit.
//!
//! A crash between 2 and 3 leaves bytes without a row, which the sweep removes.

use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use fluxbase_auth::AuthContext;
use fluxbase_migrations::DbErrorKind;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::io::AsyncRead;
use uuid::Uuid;

use crate::backend::{OnBodyError, object_key};
use crate::bucket::{Bucket, rules_sql};
use crate::error::StorageError;
use crate::meter::Meter;
use crate::metrics;
use crate::name::{BucketId, ObjectName};
use crate::object::{DEFAULT_CONTENT_TYPE, OBJECT_COLUMNS, ObjectInfo, etag_of, supabase_metadata};
use crate::service::{
    AS_SERVER_SQL, BEGIN_SQL, OpenTx, ROLLBACK_SQL, Storage, db, prepare_all, switch_to,
    switch_to_server,
};
use fluxbase_migrations::caller::ACT_AS_SQL;

/// Read size when the body is an `AsyncRead`.
const READER_CHUNK: usize = 1024 * 1024;

/// How an upload should be stored.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// `Content-Type` (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// `Cache-Control` for downloads (`cacheControl` in storage-js: `max-age=3600`).
    pub cache_control: Option<String>,
    /// Replace an existing object (`PUT`, `x-upsert: true`) instead of refusing.
    pub upsert: bool,
    /// Metadata to keep with the object (a JSON object).
    pub user_metadata: Option<Value>,
    /// `Content-Length`, when the client sent one: refused at once when over the limit.
    pub content_length: Option<u64>,
}

/// Who writes a row: the caller (policies decide), or the server for a signed upload
/// (the signature was the permission; `owner` comes from the token).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writer<'a> {
    /// As this caller.
    Caller(&'a AuthContext),
    /// As the server, with this owner.
    Server { owner: Option<&'a str> },
}

impl Writer<'_> {
    fn owner(&self) -> Option<&str> {
        match self {
            Writer::Caller(ctx) => ctx.uid(),
            Writer::Server { owner } => *owner,
        }
    }
}

/// The row to write for new bytes.
pub(crate) struct NewRow<'a> {
    pub(crate) bucket: &'a BucketId,
    pub(crate) name: &'a ObjectName,
    pub(crate) size: u64,
    pub(crate) mime_type: &'a str,
    pub(crate) sha256: Option<&'a str>,
    pub(crate) cache_control: Option<&'a str>,
    pub(crate) version: &'a str,
    pub(crate) user_metadata: Option<&'a Value>,
    pub(crate) upsert: bool,
}

/// Insert (or upsert) of a row; the caller's role must pass INSERT (and for upsert, UPDATE)
/// policies. No RETURNING: that would also demand SELECT policies of the new row.
const INSERT_SQL: &str = "INSERT INTO storage.objects
      (bucket_id, name, owner, owner_id, size, mime_type, sha256, etag, cache_control, version,
       metadata, user_metadata)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// [`INSERT_SQL`] replacing an existing row of the same name.
const UPSERT_SUFFIX: &str = " ON CONFLICT (bucket_id, name) DO UPDATE SET
      owner = excluded.owner, owner_id = excluded.owner_id, size = excluded.size,
      mime_type = excluded.mime_type, sha256 = excluded.sha256, etag = excluded.etag,
      cache_control = excluded.cache_control, version = excluded.version,
      metadata = excluded.metadata, user_metadata = excluded.user_metadata,
      last_accessed_at = now()";

impl Storage {
    /// Uploads `body` to `bucket`/`name` as the caller.
    pub async fn upload<S>(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        name: &str,
        options: UploadOptions,
        body: S,
    ) -> Result<ObjectInfo, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let result = self
            .upload_as(Writer::Caller(ctx), bucket, name, options, body)
            .await;
        metrics::record("upload", &result);
        result
    }

    /// [`Storage::upload`] with an `AsyncRead` as the body.
    pub async fn upload_reader<R>(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        name: &str,
        options: UploadOptions,
        reader: R,
    ) -> Result<ObjectInfo, StorageError>
    where
        R: AsyncRead + Send,
    {
        let body = tokio_util::io::ReaderStream::with_capacity(reader, READER_CHUNK);
        self.upload(ctx, bucket, name, options, body).await
    }

    /// The upload steps for a writer (the caller, or the server for a signed upload).
    pub(crate) async fn upload_as<S>(
        &self,
        writer: Writer<'_>,
        bucket: &str,
        name: &str,
        options: UploadOptions,
        body: S,
    ) -> Result<ObjectInfo, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let started = Instant::now();
        let bucket_id = BucketId::parse(bucket)?;
        let name = ObjectName::parse(name)?;
        let requested = requested_type(options.content_type.as_deref());
        let (rules, may_write) = match writer {
            Writer::Caller(ctx) => {
                let (rules, verdict) = self
                    .dry_run(ctx, &bucket_id, &name, requested, options.upsert)
                    .await?;
                (rules, Some(verdict))
            }
            Writer::Server { .. } => (self.bucket_rules(&bucket_id).await?, None),
        };
        // The bucket's refusals first, then the policies' (the order callers always saw).
        let mime_type = content_type(Some(requested), &rules)?;
        let limit = rules.effective_limit(self.inner.settings.max_object_size);
        if let Some(length) = options.content_length
            && length > limit
        {
            return Err(StorageError::TooLarge { limit });
        }
        if let Some(verdict) = may_write {
            verdict?;
        }

        let version = Uuid::new_v4().to_string();
        let key = object_key(bucket_id.as_str(), &version);
        let mut meter = Meter::new(limit);
        let body = body.map(|item| item.map_err(StorageError::Body));
        self.inner
            .backend
            .put(&key, meter.wrap(body), OnBodyError::Discard)
            .await?;
        let size = meter.bytes();
        let sha256 = meter.finish().await?;
        metrics::bytes_in(size);

        let row = NewRow {
            bucket: &bucket_id,
            name: &name,
            size,
            mime_type: &mime_type,
            sha256: Some(&sha256),
            cache_control: options.cache_control.as_deref(),
            version: &version,
            user_metadata: options.user_metadata.as_ref(),
            upsert: options.upsert,
        };
        let info = self.commit_new_bytes(writer, &row, None).await?;
        metrics::upload_duration(started.elapsed());
        Ok(info)
    }

    /// Step 1: the row's INSERT as the caller, rolled back: refuses before any byte moves.
    pub(crate) async fn check_write(
        &self,
        ctx: &AuthContext,
        bucket: &BucketId,
        name: &ObjectName,
        mime_type: &str,
        upsert: bool,
    ) -> Result<(), StorageError> {
        let (_, verdict) = self.dry_run(ctx, bucket, name, mime_type, upsert).await?;
        verdict
    }

    /// Step 1 in one round trip: `BEGIN`, the bucket's rules (read as the server), the
    /// row's INSERT as the caller, `ROLLBACK` → the rules (or `BucketNotFound`) and the
    /// INSERT's verdict, for the caller to weigh after the bucket's own refusals.
    pub(crate) async fn dry_run(
        &self,
        ctx: &AuthContext,
        bucket: &BucketId,
        name: &ObjectName,
        mime_type: &str,
        upsert: bool,
    ) -> Result<(Bucket, Result<(), StorageError>), StorageError> {
        let probe = Uuid::new_v4().to_string();
        let row = NewRow {
            bucket,
            name,
            size: 0,
            mime_type,
            sha256: None,
            cache_control: None,
            version: &probe,
            user_metadata: None,
            upsert,
        };
        let conn = self.conn().await?;
        let client: &deadpool_postgres::Client = &conn;
        let begin = client.prepare_cached(BEGIN_SQL).await.map_err(db)?;
        let read_rules = client.prepare_cached(rules_sql()).await.map_err(db)?;
        let act = client.prepare_cached(ACT_AS_SQL).await.map_err(db)?;
        client
            .prepare_cached(insert_sql(upsert))
            .await
            .map_err(db)?;
        let rollback = client.prepare_cached(ROLLBACK_SQL).await.map_err(db)?;
        let role = ctx.role().as_str();
        let claims = ctx.claims_json();
        let acting: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&role, &claims];
        let bucket_id = bucket.as_str();
        let rules_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&bucket_id];
        // One round trip: the five go out together, in order (see BEGIN_SQL); the
        // ROLLBACK ends the transaction whatever happened before it.
        let (begun, found, acted, inserted, ended) = futures_util::join!(
            client.execute(&begin, &[]),
            client.query_opt(&read_rules, &rules_params),
            client.query_one(&act, &acting),
            insert_row(client, Writer::Caller(ctx), &row),
            client.execute(&rollback, &[]),
        );
        begun.map_err(db)?;
        ended.map_err(db)?;
        let rules = found
            .map_err(db)?
            .as_ref()
            .map(Bucket::from_row)
            .ok_or(StorageError::BucketNotFound)?;
        let verdict = acted.map_err(db).and(inserted);
        Ok((rules, verdict))
    }

    /// Step 3: writes the row for bytes already durable at `row.version`, deleting those
    /// bytes if the row cannot be written, and the replaced version's bytes once it is.
    /// `tus_upload` (a finished resumable upload) is deleted in the same transaction.
    pub(crate) async fn commit_new_bytes(
        &self,
        writer: Writer<'_>,
        row: &NewRow<'_>,
        tus_upload: Option<&str>,
    ) -> Result<ObjectInfo, StorageError> {
        let key = object_key(row.bucket.as_str(), row.version);
        // Boxed: the pipelined transaction is a large future, kept off the caller's.
        match Box::pin(self.write_row(writer, row, tus_upload)).await {
            Ok((info, replaced)) => {
                if let Some(old) = replaced.filter(|old| old != row.version) {
                    self.discard_bytes(&object_key(row.bucket.as_str(), &old))
                        .await;
                }
                Ok(info)
            }
            Err(err) => {
                self.discard_bytes(&key).await;
                Err(err)
            }
        }
    }

    /// One transaction: lock the name's current row (as the server, to learn which bytes
    /// a replacement frees), write as the writer, read the result back as the server.
    async fn write_row(
        &self,
        writer: Writer<'_>,
        row: &NewRow<'_>,
        tus_upload: Option<&str>,
    ) -> Result<(ObjectInfo, Option<String>), StorageError> {
        let tx = OpenTx::new(self.conn().await?);
        match row_statements(tx.client(), writer, row, tus_upload).await {
            Ok(written) => {
                tx.commit().await?;
                Ok(written)
            }
            Err(err) => {
                tx.rollback().await;
                Err(err)
            }
        }
    }
}

/// [`Storage::write_row`]'s statements, `BEGIN` first, in one round trip: they go out
/// together, in this order; if one fails, the ones after it fail with it.
async fn row_statements(
    tx: &deadpool_postgres::Client,
    writer: Writer<'_>,
    row: &NewRow<'_>,
    tus_upload: Option<&str>,
) -> Result<(ObjectInfo, Option<String>), StorageError> {
    let caller = match writer {
        Writer::Caller(ctx) => Some(ctx),
        Writer::Server { .. } => None,
    };
    let read_sql = format!("SELECT {OBJECT_COLUMNS} FROM storage.objects WHERE version = $1");
    prepare_all(
        tx,
        &[
            BEGIN_SQL,
            LOCK_SQL,
            TUS_DONE_SQL,
            ACT_AS_SQL,
            insert_sql(row.upsert),
            AS_SERVER_SQL,
            &read_sql,
        ],
    )
    .await?;
    let begin = async {
        let statement = tx.prepare_cached(BEGIN_SQL).await.map_err(db)?;
        tx.execute(&statement, &[]).await.map_err(db)?;
        Ok::<(), StorageError>(())
    };
    let lock = async {
        let statement = tx.prepare_cached(LOCK_SQL).await.map_err(db)?;
        let old = tx
            .query_opt(&statement, &[&row.bucket.as_str(), &row.name.as_str()])
            .await
            .map_err(db)?;
        Ok::<Option<String>, StorageError>(old.map(|r| r.get(0)))
    };
    let finish_tus = async {
        let Some(id) = tus_upload else {
            return Ok(());
        };
        let statement = tx.prepare_cached(TUS_DONE_SQL).await.map_err(db)?;
        match tx.execute(&statement, &[&id]).await.map_err(db)? {
            1 => Ok(()),
            _ => Err(StorageError::UploadNotFound),
        }
    };
    let act = async {
        match caller {
            Some(ctx) => switch_to(tx, ctx).await,
            None => Ok(()),
        }
    };
    let insert = insert_row(tx, writer, row);
    let back = async {
        match caller {
            Some(_) => switch_to_server(tx).await,
            None => Ok(()),
        }
    };
    let read = async {
        let statement = tx.prepare_cached(&read_sql).await.map_err(db)?;
        tx.query_one(&statement, &[&row.version]).await.map_err(db)
    };
    let ((), replaced, (), (), (), (), stored) =
        futures_util::try_join!(begin, lock, finish_tus, act, insert, back, read)?;
    Ok((ObjectInfo::from_row(&stored), replaced))
}

/// Locks the name's current row (as the server): which bytes a replacement frees.
const LOCK_SQL: &str =
    "SELECT version FROM storage.objects WHERE bucket_id = $1 AND name = $2 FOR UPDATE";

/// Removes a finished resumable upload in the transaction that writes its object.
const TUS_DONE_SQL: &str =
    "DELETE FROM storage.resumable_uploads WHERE id = $1 AND upload_offset = upload_length";

/// The INSERT of a new object, or the upsert replacing one.
fn insert_sql(upsert: bool) -> &'static str {
    static UPSERT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if upsert {
        UPSERT.get_or_init(|| format!("{INSERT_SQL}{UPSERT_SUFFIX}"))
    } else {
        INSERT_SQL
    }
}

/// Runs the INSERT (or upsert) of `row`, mapping conflicts and refusals.
async fn insert_row<C: deadpool_postgres::GenericClient>(
    tx: &C,
    writer: Writer<'_>,
    row: &NewRow<'_>,
) -> Result<(), StorageError> {
    let owner = writer.owner();
    let owner_uuid = owner.and_then(|s| s.parse::<Uuid>().ok());
    let etag = row
        .sha256
        .map(etag_of)
        .unwrap_or_else(|| etag_of(row.version));
    let size = i64::try_from(row.size).map_err(|_| StorageError::TooLarge {
        limit: i64::MAX as u64,
    })?;
    let metadata = supabase_metadata(
        &etag,
        row.size,
        row.mime_type,
        row.cache_control,
        Utc::now(),
    );
    let statement = tx
        .prepare_cached(insert_sql(row.upsert))
        .await
        .map_err(db)?;
    tx.execute(
        &statement,
        &[
            &row.bucket.as_str(),
            &row.name.as_str(),
            &owner_uuid,
            &owner,
            &size,
            &row.mime_type,
            &row.sha256,
            &etag,
            &row.cache_control,
            &row.version,
            &metadata,
            &row.user_metadata,
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
    Ok(())
}

/// The content type asked for: the given one, trimmed, or the default.
fn requested_type(given: Option<&str>) -> &str {
    given
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_CONTENT_TYPE)
}

/// The content type to store: the given one (checked against the bucket's allow-list) or
/// the default.
pub(crate) fn content_type(given: Option<&str>, bucket: &Bucket) -> Result<String, StorageError> {
    let mime = requested_type(given);
    if mime.len() > 255 || mime.chars().any(|c| c.is_control()) || !mime.contains('/') {
        return Err(StorageError::InvalidInput {
            field: "content-type",
            reason: "is not a media type".into(),
        });
    }
    if !bucket.allows_mime_type(mime) {
        return Err(StorageError::MimeTypeNotAllowed {
            mime_type: mime.to_string(),
        });
    }
    Ok(mime.to_string())
}
