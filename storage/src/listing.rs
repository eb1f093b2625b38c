//! Listing a bucket like a file browser (Supabase's `list(path, {limit, offset, sortBy,
//! search})`): the entries directly under a folder prefix — objects, and folders (the next
//! `/`-separated segment of deeper names) — as the caller sees them under the policies.

use fluxbase_auth::AuthContext;
use serde::Serialize;

use crate::error::StorageError;
use crate::metrics;
use crate::name::{BucketId, Prefix};
use crate::object::ObjectInfo;
use crate::service::{Storage, begin_as, db};

/// Default page size.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Sort column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortColumn {
    /// By entry name (folders and objects interleaved).
    #[default]
    Name,
    /// By creation time (folders first).
    CreatedAt,
    /// By last change (folders first).
    UpdatedAt,
    /// By last upload (folders first).
    LastAccessedAt,
}

impl SortColumn {
    /// Parses `name`, `created_at`, `updated_at`, `last_accessed_at`.
    pub fn parse(raw: &str) -> Result<SortColumn, StorageError> {
        match raw {
            "name" => Ok(SortColumn::Name),
            "created_at" => Ok(SortColumn::CreatedAt),
            "updated_at" => Ok(SortColumn::UpdatedAt),
            "last_accessed_at" => Ok(SortColumn::LastAccessedAt),
            other => Err(StorageError::InvalidInput {
                field: "sortBy.column",
                reason: format!(
                    "{other:?} is not one of name, created_at, updated_at, last_accessed_at"
                ),
            }),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

impl SortOrder {
    /// Parses `asc` or `desc` (any case).
    pub fn parse(raw: &str) -> Result<SortOrder, StorageError> {
        match raw.to_ascii_lowercase().as_str() {
            "asc" => Ok(SortOrder::Asc),
            "desc" => Ok(SortOrder::Desc),
            other => Err(StorageError::InvalidInput {
                field: "sortBy.order",
                reason: format!("{other:?} is not asc or desc"),
            }),
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// The folder (`""` for the root, `a/b` or `a/b/`).
    pub prefix: String,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Entries to skip.
    pub offset: u32,
    /// Sort column.
    pub sort: SortColumn,
    /// Sort direction.
    pub order: SortOrder,
    /// Only entries whose name starts with this, case-insensitively.
    pub search: Option<String>,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListEntry {
    /// The entry's name relative to the prefix (one segment).
    pub name: String,
    /// The object, or `None` for a folder.
    pub object: Option<ObjectInfo>,
}

impl ListEntry {
    /// Whether this entry is a folder.
    pub fn is_folder(&self) -> bool {
        self.object.is_none()
    }
}

/// The listing query; `{order}` is one of the constant ORDER BY clauses below.
const LIST_SQL: &str = r#"
WITH entries AS (
  SELECT o.id,
         split_part(substr(o.name, $3), '/', 1) AS entry,
         strpos(substr(o.name, $3), '/') > 0 AS is_folder
  FROM storage.objects o
  WHERE o.bucket_id = $1
    AND o.name COLLATE "C" >= $2 AND o.name COLLATE "C" < $4
    AND starts_with(o.name, $2)
), listed AS (
  SELECT DISTINCT entry, true AS is_folder, NULL::uuid AS object_id
    FROM entries WHERE is_folder
  UNION ALL
  SELECT entry, false, id FROM entries WHERE NOT is_folder
)
SELECT l.entry, l.is_folder,
       o.id, o.bucket_id, o.name, o.owner_id, o.size, o.mime_type, o.sha256, o.etag,
       o.cache_control, o.version, o.user_metadata, o.created_at, o.updated_at,
       o.last_accessed_at
FROM listed l LEFT JOIN storage.objects o ON o.id = l.object_id
WHERE $5::text IS NULL OR l.entry ILIKE $5 || '%'
ORDER BY {order}
LIMIT $6 OFFSET $7"#;

impl Storage {
    /// The entries directly under `options.prefix` that the caller may see.
    pub async fn list(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        options: &ListOptions,
    ) -> Result<Vec<ListEntry>, StorageError> {
        let result = self.list_inner(ctx, bucket, options).await;
        metrics::record("list", &result);
        result
    }

    async fn list_inner(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        options: &ListOptions,
    ) -> Result<Vec<ListEntry>, StorageError> {
        let bucket = BucketId::parse(bucket)?;
        let prefix = Prefix::parse(&options.prefix)?;
        let limit = i64::from(
            options
                .limit
                .unwrap_or(DEFAULT_LIST_LIMIT)
                .clamp(1, MAX_LIST_LIMIT),
        );
        let offset = i64::from(options.offset);
        let start = (prefix.as_str().chars().count() + 1) as i32;
        // Names cannot contain noncharacters, so this bounds every name with the prefix.
        let upper = format!("{}\u{10FFFF}", prefix.as_str());
        let search = options
            .search
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(escape_like);
        let direction = match options.order {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        };
        let order = match options.sort {
            SortColumn::Name => format!("l.entry COLLATE \"C\" {direction}, l.is_folder DESC"),
            SortColumn::CreatedAt => format!("o.created_at {direction} NULLS FIRST, l.entry"),
            SortColumn::UpdatedAt => format!("o.updated_at {direction} NULLS FIRST, l.entry"),
            SortColumn::LastAccessedAt => {
                format!("o.last_accessed_at {direction} NULLS FIRST, l.entry")
            }
        };
        let sql = LIST_SQL.replace("{order}", &order);
        let mut conn = self.conn().await?;
        let tx = begin_as(&mut conn, ctx).await?;
        let rows = tx
            .query(
                &sql,
                &[
                    &bucket.as_str(),
                    &prefix.as_str(),
                    &start,
                    &upper,
                    &search,
                    &limit,
                    &offset,
                ],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                let is_folder: bool = row.get(1);
                let object = (!is_folder).then(|| ObjectInfo::from_row_at(row, 2));
                ListEntry { name, object }
            })
            .collect())
    }
}

/// Escapes `\`, `%` and `_` for ILIKE (PostgreSQL's default escape is `\`).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }

    #[test]
    fn sort_options_parse() {
        assert_eq!(
            SortColumn::parse("created_at").unwrap(),
            SortColumn::CreatedAt
        );
        assert!(SortColumn::parse("size; drop").is_err());
        assert_eq!(SortOrder::parse("DESC").unwrap(), SortOrder::Desc);
    }
}
