//! `/storage/v1/object…`: storage-js's `upload`, `update`, `download`, `remove`, `list`,
//! `move`, `copy`, `info`, `exists`, and the public and authenticated read paths.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_storage::{ListOptions, ObjectInfo, SortColumn, SortOrder, StorageError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::bucket::message;
use super::error::{StorageApiError, StorageCaller, StorageJson};
use super::{object_json, timestamp};
use crate::http::state::AppState;
use crate::http::transfer::download::{
    DownloadQuery, head as head_response, is_conditional, not_modified, respond,
};
use crate::http::transfer::upload::{UploadRequest, parse_flag, source, with_body};
use crate::http::transfer::{query, storage_of};

/// `{bucket}` and `{path}` of an object route (percent-decoded once).
type ObjectPath = web::Path<(String, String)>;

/// `POST /object/list/{bucket}` body.
#[derive(Debug, Deserialize)]
pub(super) struct ListBody {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
    #[serde(default, rename = "sortBy")]
    sort_by: Option<SortBy>,
    #[serde(default)]
    search: Option<String>,
}

/// `sortBy` of a listing.
#[derive(Debug, Deserialize)]
pub(super) struct SortBy {
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    order: Option<String>,
}

/// `DELETE /object/{bucket}` body.
#[derive(Debug, Deserialize)]
pub(super) struct RemoveBody {
    prefixes: Vec<Value>,
}

/// `POST /object/move` and `/object/copy` bodies.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TransferBody {
    bucket_id: String,
    source_key: String,
    destination_key: String,
    #[serde(default)]
    destination_bucket: Option<String>,
}

/// `POST /object/{bucket}/{path}`: a new object (replacing one with `x-upsert: true`) →
/// `{"Id", "Key"}`.
pub(super) async fn create(
    caller: StorageCaller,
    path: ObjectPath,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    upload(caller, path, req, payload, state, false).await
}

/// `PUT /object/{bucket}/{path}` (`update`): creates or replaces.
pub(super) async fn replace(
    caller: StorageCaller,
    path: ObjectPath,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    upload(caller, path, req, payload, state, true).await
}

/// Streams the body (raw, or a form's file part) into the object.
async fn upload(
    caller: StorageCaller,
    path: ObjectPath,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    upsert: bool,
) -> Result<HttpResponse, StorageApiError> {
    let storage = storage_of(&state)?;
    let request = UploadRequest::from_headers(&req, upsert)?;
    let (bucket, name) = path.into_inner();
    let ctx = caller.context().clone();
    let info = with_body(payload, |body| async move {
        let (options, bytes) = source(request, body).await?;
        storage.upload(&ctx, &bucket, &name, options, bytes).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(uploaded(&info)))
}

/// storage-api's answer to an upload.
pub(super) fn uploaded(info: &ObjectInfo) -> Value {
    json!({
        "Id": info.id,
        "Key": format!("{}/{}", info.bucket_id, info.name),
    })
}

/// `GET /object/[authenticated/]{bucket}/{path}` (`download`): the bytes as the caller may
/// read them (`Range`, 304, `?download`).
pub(super) async fn download(
    caller: StorageCaller,
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let storage = storage_of(&state)?;
    let (bucket, name) = path.into_inner();
    let params: DownloadQuery = query(&req)?;
    let options = params.options(&req)?;
    if is_conditional(&req) {
        let info = storage.info(caller.context(), &bucket, &name).await?;
        if let Some(res) = not_modified(&req, &info) {
            return Ok(res);
        }
    }
    let download = storage
        .download(caller.context(), &bucket, &name, options)
        .await?;
    Ok(respond(download, params.download.as_deref()))
}

/// `HEAD /object/[authenticated/]{bucket}/{path}`.
pub(super) async fn head(
    caller: StorageCaller,
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?
        .info(caller.context(), &bucket, &name)
        .await?;
    Ok(not_modified(&req, &info).unwrap_or_else(|| head_response(&info)))
}

/// `GET /object/public/{bucket}/{path}` (`getPublicUrl`): an object of a public bucket,
/// with or without a token.
pub(super) async fn download_public(
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let storage = storage_of(&state)?;
    let (bucket, name) = path.into_inner();
    let params: DownloadQuery = query(&req)?;
    let options = params.options(&req)?;
    if is_conditional(&req) {
        let info = storage.info_public(&bucket, &name).await?;
        if let Some(res) = not_modified(&req, &info) {
            return Ok(res);
        }
    }
    let download = storage.download_public(&bucket, &name, options).await?;
    Ok(respond(download, params.download.as_deref()))
}

/// `HEAD /object/public/{bucket}/{path}`.
pub(super) async fn head_public(
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?.info_public(&bucket, &name).await?;
    Ok(not_modified(&req, &info).unwrap_or_else(|| head_response(&info)))
}

/// The object's metadata in the shape of storage-api's `info` (storage-js camel-cases it).
fn info_json(info: &ObjectInfo) -> Value {
    json!({
        "id": info.id,
        "version": info.version,
        "name": info.name,
        "bucket_id": info.bucket_id,
        "size": info.size,
        "content_type": info.mime_type,
        "cache_control": info.cache_control,
        "etag": info.etag,
        "last_modified": timestamp(info.updated_at),
        "created_at": timestamp(info.created_at),
        "updated_at": timestamp(info.updated_at),
        "metadata": info.user_metadata.clone().unwrap_or_else(|| json!({})),
        "sha256": info.sha256,
    })
}

/// `GET /object/info/[authenticated/]{bucket}/{path}` (`info`, `exists`).
pub(super) async fn info(
    caller: StorageCaller,
    path: ObjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?
        .info(caller.context(), &bucket, &name)
        .await?;
    Ok(HttpResponse::Ok().json(info_json(&info)))
}

/// `GET /object/info/public/{bucket}/{path}`.
pub(super) async fn info_public(
    path: ObjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?.info_public(&bucket, &name).await?;
    Ok(HttpResponse::Ok().json(info_json(&info)))
}

/// `DELETE /object/{bucket}/{path}` → `{"message": "Successfully deleted"}` (404 when the
/// caller could delete nothing).
pub(super) async fn remove(
    caller: StorageCaller,
    path: ObjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let deleted = storage_of(&state)?
        .remove(caller.context(), &bucket, &[name])
        .await?;
    if deleted.is_empty() {
        return Err(StorageError::ObjectNotFound.into());
    }
    Ok(message("Successfully deleted"))
}

/// `DELETE /object/{bucket}` `{"prefixes": [name | {path}]}` (`remove`) → the deleted
/// objects (names the caller may not delete, or that do not exist, are left out).
pub(super) async fn remove_many(
    caller: StorageCaller,
    bucket: web::Path<String>,
    body: StorageJson<RemoveBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let names = body
        .0
        .prefixes
        .iter()
        .map(|entry| match entry {
            Value::String(name) => Ok(name.clone()),
            Value::Object(o) => o
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(()),
            _ => Err(()),
        })
        .collect::<Result<Vec<_>, ()>>()
        .map_err(|()| {
            StorageApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "prefixes must be names or {\"path\": name} objects",
            )
        })?;
    let deleted = storage_of(&state)?
        .remove(caller.context(), &bucket, &names)
        .await?;
    let out: Vec<Value> = deleted.iter().map(|o| object_json(&o.name, o)).collect();
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /object/list/{bucket}` (`list`): one folder level.
pub(super) async fn list(
    caller: StorageCaller,
    bucket: web::Path<String>,
    body: StorageJson<ListBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let body = body.0;
    let sort = body.sort_by.unwrap_or(SortBy {
        column: None,
        order: None,
    });
    let options = ListOptions {
        prefix: body.prefix,
        limit: body.limit,
        offset: body.offset.unwrap_or(0),
        sort: sort
            .column
            .as_deref()
            .map(SortColumn::parse)
            .transpose()?
            .unwrap_or_default(),
        order: sort
            .order
            .as_deref()
            .map(SortOrder::parse)
            .transpose()?
            .unwrap_or_default(),
        search: body.search,
    };
    let entries = storage_of(&state)?
        .list(caller.context(), &bucket, &options)
        .await?;
    let out: Vec<Value> = entries
        .iter()
        .map(|entry| match &entry.object {
            Some(object) => object_json(&entry.name, object),
            None => json!({
                "name": entry.name,
                "id": null,
                "updated_at": null,
                "created_at": null,
                "last_accessed_at": null,
                "metadata": null,
            }),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /object/move` → `{"message": "Successfully moved"}`.
pub(super) async fn rename(
    caller: StorageCaller,
    body: StorageJson<TransferBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let body = body.0;
    let to_bucket = body
        .destination_bucket
        .as_deref()
        .unwrap_or(&body.bucket_id);
    storage_of(&state)?
        .move_object(
            caller.context(),
            (&body.bucket_id, &body.source_key),
            (to_bucket, &body.destination_key),
        )
        .await?;
    Ok(message("Successfully moved"))
}

/// `POST /object/copy` (`x-upsert: true` replaces an existing destination) → `{"Id",
/// "Key"}`.
pub(super) async fn copy(
    caller: StorageCaller,
    req: HttpRequest,
    body: StorageJson<TransferBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let body = body.0;
    let upsert = match req.headers().get("x-upsert").and_then(|v| v.to_str().ok()) {
        Some(v) => parse_flag(v, "x-upsert")?,
        None => false,
    };
    let to_bucket = body
        .destination_bucket
        .as_deref()
        .unwrap_or(&body.bucket_id);
    let info = storage_of(&state)?
        .copy(
            caller.context(),
            (&body.bucket_id, &body.source_key),
            (to_bucket, &body.destination_key),
            upsert,
        )
        .await?;
    Ok(HttpResponse::Ok().json(uploaded(&info)))
}

/// `/render/image/…`: image transformations are not offered.
pub(super) async fn transform() -> Result<HttpResponse, StorageApiError> {
    Err(StorageApiError::not_supported("image transformation"))
}
