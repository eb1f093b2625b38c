//! `/storage/v1/bucket…`: storage-js's `listBuckets`, `getBucket`, `createBucket`,
//! `updateBucket`, `emptyBucket`, `deleteBucket`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_storage::{Bucket, BucketUpdate, NewBucket};
use serde::Deserialize;
use serde_json::{Value, json};

use super::bucket_json;
use super::error::{StorageApiError, StorageCaller, StorageJson};
use crate::http::state::AppState;
use crate::http::transfer::{query, storage_of};

/// `POST /bucket` body, as storage-js sends it (`id` and `name`, unset options absent).
#[derive(Debug, Deserialize)]
pub(super) struct CreateBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    file_size_limit: Option<Value>,
    #[serde(default)]
    allowed_mime_types: Option<Vec<String>>,
}

/// `PUT /bucket/{id}` body: absent fields stay as they are; `null` removes a limit.
#[derive(Debug, Deserialize)]
pub(super) struct UpdateBody {
    #[serde(default)]
    public: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    file_size_limit: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    allowed_mime_types: Option<Option<Vec<String>>>,
}

/// `GET /bucket` query (`listBuckets` options).
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    search: Option<String>,
    #[serde(default, rename = "sortColumn")]
    sort_column: Option<String>,
    #[serde(default, rename = "sortOrder")]
    sort_order: Option<String>,
}

/// A field that is present (`Some`, `Some(None)` for `null`) or absent (`None`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// A `file_size_limit` as storage-api takes it: a number of bytes, or a string with a
/// decimal unit (`"20GB"`, `"1.5MB"`, `"30KB"`, `"3B"`); `null` is no limit.
fn size_limit(value: &Value) -> Result<Option<u64>, StorageApiError> {
    let invalid = || {
        StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "invalid file_size_limit: use a number of bytes or a size like 20GB, 20MB, 30KB, 3B",
        )
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(invalid),
        Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(invalid)?;
            let (number, unit) = s.split_at(split);
            let number: f64 = number.parse().map_err(|_| invalid())?;
            let scale = match unit.to_ascii_uppercase().as_str() {
                "GB" => 1e9,
                "MB" => 1e6,
                "KB" => 1e3,
                "B" => 1.0,
                _ => return Err(invalid()),
            };
            let bytes = (number * scale).round();
            if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
                return Err(invalid());
            }
            Ok(Some(bytes as u64))
        }
        _ => Err(invalid()),
    }
}

/// `GET /bucket` → every bucket the caller may see (`limit`, `offset`, `search`,
/// `sortColumn`, `sortOrder` applied).
pub(super) async fn list(
    caller: StorageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let params: ListQuery = query(&req)?;
    let mut buckets = storage_of(&state)?.list_buckets(caller.context()).await?;
    if let Some(search) = params.search.as_deref().filter(|s| !s.is_empty()) {
        let search = search.to_lowercase();
        buckets.retain(|b| b.name.to_lowercase().contains(&search));
    }
    let key = |b: &Bucket| match params.sort_column.as_deref() {
        Some("id") => b.id.clone(),
        Some("created_at") => b.created_at.to_rfc3339(),
        Some("updated_at") => b.updated_at.to_rfc3339(),
        _ => b.name.clone(),
    };
    buckets.sort_by_key(key);
    if params
        .sort_order
        .as_deref()
        .is_some_and(|o| o.eq_ignore_ascii_case("desc"))
    {
        buckets.reverse();
    }
    let page: Vec<Value> = buckets
        .iter()
        .skip(params.offset.unwrap_or(0))
        .take(params.limit.unwrap_or(usize::MAX))
        .map(bucket_json)
        .collect();
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /bucket` → `{"name": …}`.
pub(super) async fn create(
    caller: StorageCaller,
    body: StorageJson<CreateBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let body = body.0;
    if body
        .kind
        .as_deref()
        .is_some_and(|k| !k.eq_ignore_ascii_case("STANDARD"))
    {
        return Err(StorageApiError::not_supported(
            "a bucket type other than STANDARD",
        ));
    }
    let id = body
        .id
        .clone()
        .or_else(|| body.name.clone())
        .ok_or_else(|| {
            StorageApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "body must have required property 'name'",
            )
        })?;
    let file_size_limit = match &body.file_size_limit {
        Some(value) => size_limit(value)?,
        None => None,
    };
    let allowed_mime_types = body
        .allowed_mime_types
        .map(|types| types.into_iter().filter(|t| !t.is_empty()).collect());
    let bucket = storage_of(&state)?
        .create_bucket(
            caller.context(),
            NewBucket {
                id,
                name: body.name,
                public: body.public.unwrap_or(false),
                file_size_limit,
                allowed_mime_types,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "name": bucket.name })))
}

/// `GET /bucket/{id}` → the bucket.
pub(super) async fn get(
    caller: StorageCaller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let bucket = storage_of(&state)?
        .get_bucket(caller.context(), &id)
        .await?;
    Ok(HttpResponse::Ok().json(bucket_json(&bucket)))
}

/// `PUT /bucket/{id}` → `{"message": "Successfully updated"}`.
pub(super) async fn update(
    caller: StorageCaller,
    id: web::Path<String>,
    body: StorageJson<UpdateBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let body = body.0;
    let file_size_limit = match &body.file_size_limit {
        Some(Some(value)) => Some(size_limit(value)?),
        Some(None) => Some(None),
        None => None,
    };
    storage_of(&state)?
        .update_bucket(
            caller.context(),
            &id,
            BucketUpdate {
                public: body.public,
                file_size_limit,
                allowed_mime_types: body.allowed_mime_types,
            },
        )
        .await?;
    Ok(message("Successfully updated"))
}

/// `POST /bucket/{id}/empty` → `{"message": "Successfully emptied"}`.
pub(super) async fn empty(
    caller: StorageCaller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    storage_of(&state)?
        .empty_bucket(caller.context(), &id)
        .await?;
    Ok(message("Successfully emptied"))
}

/// `DELETE /bucket/{id}` → `{"message": "Successfully deleted"}` (409 while not empty).
pub(super) async fn delete(
    caller: StorageCaller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    storage_of(&state)?
        .delete_bucket(caller.context(), &id)
        .await?;
    Ok(message("Successfully deleted"))
}

/// storage-api's `{"message": …}` answer.
pub(super) fn message(text: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "message": text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits_in_storage_api_units() {
        assert_eq!(size_limit(&json!(1000)).unwrap(), Some(1000));
        assert_eq!(size_limit(&json!("20GB")).unwrap(), Some(20_000_000_000));
        assert_eq!(size_limit(&json!("1.5mb")).unwrap(), Some(1_500_000));
        assert_eq!(size_limit(&json!("30KB")).unwrap(), Some(30_000));
        assert_eq!(size_limit(&json!("3B")).unwrap(), Some(3));
        assert_eq!(size_limit(&json!(null)).unwrap(), None);
        for bad in [
            json!("20"),
            json!("MB"),
            json!("1TB"),
            json!(-1),
            json!(true),
        ] {
            assert!(size_limit(&bad).is_err(), "{bad}");
        }
    }
}
