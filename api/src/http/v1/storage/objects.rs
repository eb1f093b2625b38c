//! Files of a bucket: upload (POST creates, PUT replaces; a raw body or a
//! `multipart/form-data` file part), download (`Range`, 304), `HEAD`, delete one or many,
//! list a folder, info, copy and move — as the caller — and public reads without a token.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use fluxbase_storage::{ListOptions, ObjectInfo, SortColumn, SortOrder, StorageError};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::extract::{Anyone, Guard, Json};
use crate::http::state::AppState;
use crate::http::transfer::download::{
    DownloadQuery, head as head_response, is_conditional, not_modified, respond, unsatisfiable,
};
use crate::http::transfer::upload::{UploadRequest, source, with_body};
use crate::http::transfer::{api_error, query, storage_of};

/// `{bucket}` and `{path}` of an object route (percent-decoded once).
type ObjectPath = web::Path<(String, String)>;

/// `GET /buckets/{bucket}/files` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    search: Option<String>,
}

/// `DELETE /buckets/{bucket}/files` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoveBody {
    paths: Vec<String>,
}

/// `copy` and `move` bodies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransferBody {
    from: String,
    to: String,
    #[serde(default)]
    destination_bucket: Option<String>,
    /// Copy only: replace an existing destination.
    #[serde(default)]
    upsert: bool,
}

/// `POST …/files/{path}`: a new object → 201 (409 when the name is taken, unless
/// `x-upsert: true`).
pub(super) async fn create(
    caller: Guard<Anyone>,
    path: ObjectPath,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let info = upload(&caller, path, &req, payload, &state, false).await?;
    Ok(HttpResponse::Created().json(info))
}

/// `PUT …/files/{path}`: creates or replaces → 200.
pub(super) async fn replace(
    caller: Guard<Anyone>,
    path: ObjectPath,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let info = upload(&caller, path, &req, payload, &state, true).await?;
    Ok(HttpResponse::Ok().json(info))
}

/// Streams the body into the object.
async fn upload(
    caller: &Guard<Anyone>,
    path: ObjectPath,
    req: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
    upsert: bool,
) -> Result<ObjectInfo, ApiError> {
    let storage = storage_of(state)?;
    let request = UploadRequest::from_headers(req, upsert).map_err(api_error)?;
    let (bucket, name) = path.into_inner();
    let ctx = caller.context().clone();
    with_body(payload, |body| async move {
        let (options, bytes) = source(request, body).await?;
        storage.upload(&ctx, &bucket, &name, options, bytes).await
    })
    .await
    .map_err(api_error)
}

/// `GET …/files/{path}`: the bytes (206 for a `Range`, 304 when the client's copy is
/// current, `?download[=name]`, `?verify=true`).
pub(super) async fn download(
    caller: Guard<Anyone>,
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage_of(&state)?;
    let (bucket, name) = path.into_inner();
    let params: DownloadQuery = query(&req).map_err(api_error)?;
    let options = params.options(&req).map_err(api_error)?;
    if is_conditional(&req) {
        let info = storage.info(caller.context(), &bucket, &name).await?;
        if let Some(res) = not_modified(&req, &info) {
            return Ok(res);
        }
    }
    let result = storage
        .download(caller.context(), &bucket, &name, options)
        .await;
    served(result.map(|d| respond(d, params.download.as_deref())))
}

/// `HEAD …/files/{path}`.
pub(super) async fn head(
    caller: Guard<Anyone>,
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?
        .info(caller.context(), &bucket, &name)
        .await?;
    Ok(not_modified(&req, &info).unwrap_or_else(|| head_response(&info)))
}

/// `GET /public/{bucket}/{path}`: an object of a public bucket, without a token.
pub(super) async fn download_public(
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage_of(&state)?;
    let (bucket, name) = path.into_inner();
    let params: DownloadQuery = query(&req).map_err(api_error)?;
    let options = params.options(&req).map_err(api_error)?;
    if is_conditional(&req) {
        let info = storage.info_public(&bucket, &name).await?;
        if let Some(res) = not_modified(&req, &info) {
            return Ok(res);
        }
    }
    let result = storage.download_public(&bucket, &name, options).await;
    served(result.map(|d| respond(d, params.download.as_deref())))
}

/// `HEAD /public/{bucket}/{path}`.
pub(super) async fn head_public(
    path: ObjectPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?.info_public(&bucket, &name).await?;
    Ok(not_modified(&req, &info).unwrap_or_else(|| head_response(&info)))
}

/// A download's answer; a 416 carries `Content-Range: bytes */size`.
pub(super) fn served(result: Result<HttpResponse, StorageError>) -> Result<HttpResponse, ApiError> {
    match result {
        Ok(res) => Ok(res),
        Err(StorageError::RangeNotSatisfiable { size }) => {
            let err = ApiError::from(StorageError::RangeNotSatisfiable { size });
            Ok(unsatisfiable(err.error_response(), size))
        }
        Err(err) => Err(api_error(err)),
    }
}

/// `DELETE …/files/{path}` → 204 (404 when there was nothing the caller may delete).
pub(super) async fn remove(
    caller: Guard<Anyone>,
    path: ObjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let deleted = storage_of(&state)?
        .remove(caller.context(), &bucket, &[name])
        .await?;
    if deleted.is_empty() {
        return Err(StorageError::ObjectNotFound.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE …/files` `{"paths":[…]}` → `{"deleted":[objects]}` (those the caller could
/// delete; the others are left out, as in Supabase).
pub(super) async fn remove_many(
    caller: Guard<Anyone>,
    bucket: web::Path<String>,
    body: Json<RemoveBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let deleted = storage_of(&state)?
        .remove(caller.context(), &bucket, &body.paths)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}

/// `GET …/files`: the entries directly under `prefix` → `{"entries":[{name, folder,
/// object?}]}`.
pub(super) async fn list(
    caller: Guard<Anyone>,
    bucket: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params: ListQuery = query(&req).map_err(api_error)?;
    let options = ListOptions {
        prefix: params.prefix,
        limit: params
            .limit
            .as_deref()
            .map(|v| number("limit", v))
            .transpose()?,
        offset: params
            .offset
            .as_deref()
            .map(|v| number("offset", v))
            .transpose()?
            .unwrap_or(0),
        sort: params
            .sort
            .as_deref()
            .map(SortColumn::parse)
            .transpose()?
            .unwrap_or_default(),
        order: params
            .order
            .as_deref()
            .map(SortOrder::parse)
            .transpose()?
            .unwrap_or_default(),
        search: params.search,
    };
    let entries = storage_of(&state)?
        .list(caller.context(), &bucket, &options)
        .await?;
    let entries: Vec<_> = entries
        .into_iter()
        .map(|entry| match entry.object {
            None => json!({"name": entry.name, "folder": true}),
            Some(object) => json!({"name": entry.name, "folder": false, "object": object}),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}

/// A non-negative integer query parameter, or a 400 naming it.
fn number(field: &'static str, value: &str) -> Result<u32, StorageError> {
    value.parse().map_err(|_| StorageError::InvalidInput {
        field,
        reason: format!("{value:?} is not a non-negative integer"),
    })
}

/// `GET …/info/{path}`: the object's metadata.
pub(super) async fn info(
    caller: Guard<Anyone>,
    path: ObjectPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let info = storage_of(&state)?
        .info(caller.context(), &bucket, &name)
        .await?;
    Ok(HttpResponse::Ok().json(info))
}

/// `POST …/copy` → 201 with the copy.
pub(super) async fn copy(
    caller: Guard<Anyone>,
    bucket: web::Path<String>,
    body: Json<TransferBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let to_bucket = body.destination_bucket.as_deref().unwrap_or(&bucket);
    let info = storage_of(&state)?
        .copy(
            caller.context(),
            (&bucket, &body.from),
            (to_bucket, &body.to),
            body.upsert,
        )
        .await?;
    Ok(HttpResponse::Created().json(info))
}

/// `POST …/move` → the renamed object.
pub(super) async fn rename(
    caller: Guard<Anyone>,
    bucket: web::Path<String>,
    body: Json<TransferBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let to_bucket = body.destination_bucket.as_deref().unwrap_or(&bucket);
    let info = storage_of(&state)?
        .move_object(
            caller.context(),
            (&bucket, &body.from),
            (to_bucket, &body.to),
        )
        .await?;
    Ok(HttpResponse::Ok().json(info))
}
