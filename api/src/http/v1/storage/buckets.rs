//! Buckets: list, create, get, update, empty, delete — as the caller (policies on
//! `storage.buckets` decide; without any, only the service role manages buckets).

use actix_web::{HttpResponse, web};
use fluxbase_storage::{BucketUpdate, NewBucket};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::http::extract::{Anyone, Guard, Json, OptionalJson};
use crate::http::state::AppState;
use crate::http::transfer::storage_of;

/// `POST /buckets` body: `id` (or `name`, as Supabase clients send both).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    file_size_limit: Option<u64>,
    #[serde(default)]
    allowed_mime_types: Option<Vec<String>>,
}

/// `PATCH /buckets/{bucket}` body: absent fields stay; `null` removes a limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    #[serde(default)]
    public: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    file_size_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    allowed_mime_types: Option<Option<Vec<String>>>,
}

/// A field that is present (`Some`, possibly `Some(None)` for `null`) or absent (`None`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// Every bucket the caller may see.
pub(super) async fn list(
    caller: Guard<Anyone>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let buckets = storage_of(&state)?.list_buckets(caller.context()).await?;
    Ok(HttpResponse::Ok().json(json!({ "buckets": buckets })))
}

/// Creates a bucket → 201.
pub(super) async fn create(
    caller: Guard<Anyone>,
    body: Json<CreateBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let id = body
        .id
        .clone()
        .or_else(|| body.name.clone())
        .ok_or_else(|| {
            ApiError::new(
                Code::BadRequest,
                "id is required (the bucket's id and name)",
            )
        })?;
    let bucket = storage_of(&state)?
        .create_bucket(
            caller.context(),
            NewBucket {
                id,
                name: body.name,
                public: body.public,
                file_size_limit: body.file_size_limit,
                allowed_mime_types: body.allowed_mime_types,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(bucket))
}

/// One bucket.
pub(super) async fn get(
    caller: Guard<Anyone>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bucket = storage_of(&state)?
        .get_bucket(caller.context(), &path)
        .await?;
    Ok(HttpResponse::Ok().json(bucket))
}

/// Changes the public flag or the limits → the bucket.
pub(super) async fn update(
    caller: Guard<Anyone>,
    path: web::Path<String>,
    body: OptionalJson<UpdateBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let bucket = storage_of(&state)?
        .update_bucket(
            caller.context(),
            &path,
            BucketUpdate {
                public: body.public,
                file_size_limit: body.file_size_limit,
                allowed_mime_types: body.allowed_mime_types,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(bucket))
}

/// Deletes every object the caller may delete → `{"deleted": n}`.
pub(super) async fn empty(
    caller: Guard<Anyone>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let deleted = storage_of(&state)?
        .empty_bucket(caller.context(), &path)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}

/// Deletes an empty bucket → 204 (409 while it has objects).
pub(super) async fn delete(
    caller: Guard<Anyone>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    storage_of(&state)?
        .delete_bucket(caller.context(), &path)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
