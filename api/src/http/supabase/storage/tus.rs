//! `/storage/v1/upload/resumable`: tus 1.0.0 (core, creation, termination, expiration), as
//! Supabase Storage offers it to tus-js-client and Uppy. `POST` creates an upload from
//! `Upload-Length` and `Upload-Metadata` (`bucketName`, `objectName`, `contentType`,
//! `cacheControl`, `metadata`; `x-upsert: true` to replace) and answers its `Location`;
//! `HEAD` tells the offset to resume from; `PATCH` appends at `Upload-Offset` (what arrives
//! before a connection breaks is kept); `DELETE` abandons it. Every answer, errors too,
//! carries `Tus-Resumable: 1.0.0`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HttpDate};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use fluxbase_storage::tus::{TUS_EXTENSIONS, TUS_VERSION, check_tus_resumable};
use fluxbase_storage::{StorageError, TusCreate, TusUpload};

use super::error::{StorageApiError, StorageCaller};
use crate::http::state::AppState;
use crate::http::transfer::upload::{parse_flag, with_body};
use crate::http::transfer::{storage_of, url_for};

/// Where uploads live, for `Location`.
const RESUMABLE_PATH: &str = "/storage/v1/upload/resumable";

/// A header's text value, if present and visible ASCII.
fn text<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A non-negative integer header (`Upload-Length`, `Upload-Offset`), required.
fn number(req: &HttpRequest, name: &'static str) -> Result<u64, StorageApiError> {
    let value = text(req, name).ok_or_else(|| {
        StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "TusError",
            format!("the {name} header is required"),
        )
        .tus()
    })?;
    value.trim().parse::<u64>().map_err(|_| {
        StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "TusError",
            format!("{name} must be a non-negative integer"),
        )
        .tus()
    })
}

/// `Tus-Resumable: 1.0.0` on the request, else 412 (with `Tus-Version`).
fn check_version(req: &HttpRequest) -> Result<(), StorageApiError> {
    check_tus_resumable(text(req, "tus-resumable")).map_err(tus_error)
}

/// A service error, answered by a tus endpoint.
fn tus_error(err: StorageError) -> StorageApiError {
    StorageApiError::from(err).tus()
}

/// A response builder with `Tus-Resumable`.
fn tus_response(status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((HeaderName::from_static("tus-resumable"), TUS_VERSION));
    res
}

/// The state headers of an upload.
fn state_headers(res: &mut HttpResponseBuilder, upload: &TusUpload) {
    let expires = std::time::SystemTime::from(upload.expires_at);
    res.insert_header(("upload-offset", upload.offset.to_string()))
        .insert_header(("upload-length", upload.length.to_string()))
        .insert_header(("upload-expires", HttpDate::from(expires).to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
}

/// `OPTIONS`: what this server speaks.
pub(super) async fn options(state: web::Data<AppState>) -> HttpResponse {
    tus_response(StatusCode::NO_CONTENT)
        .insert_header(("tus-version", TUS_VERSION))
        .insert_header(("tus-extension", TUS_EXTENSIONS))
        .insert_header(("tus-max-size", state.config.server.body_limit.0.to_string()))
        .finish()
}

/// `POST`: creates an upload → 201 with `Location`.
pub(super) async fn create(
    caller: StorageCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    check_version(&req)?;
    if req.headers().contains_key("upload-defer-length") {
        return Err(StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "TusError",
            "Upload-Defer-Length is not supported: send Upload-Length",
        )
        .tus());
    }
    let has_body = text(&req, "content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    if has_body {
        return Err(StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "TusError",
            "creation-with-upload is not supported: send the bytes with PATCH",
        )
        .tus());
    }
    let upload_length = number(&req, "upload-length")?;
    let upsert = match text(&req, "x-upsert") {
        Some(v) => parse_flag(v, "x-upsert").map_err(tus_error)?,
        None => false,
    };
    let upload = storage_of(&state)
        .map_err(|e| StorageApiError::from(e).tus())?
        .tus_create(
            caller.context(),
            TusCreate {
                upload_length,
                upload_metadata: text(&req, "upload-metadata").map(str::to_string),
                upsert,
            },
        )
        .await
        .map_err(tus_error)?;
    let location = url_for(&state, &format!("{RESUMABLE_PATH}/{}", upload.id));
    let mut res = tus_response(StatusCode::CREATED);
    state_headers(&mut res, &upload);
    Ok(res.insert_header((header::LOCATION, location)).finish())
}

/// `HEAD /{id}`: the offset to resume from.
pub(super) async fn status(
    caller: StorageCaller,
    id: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    check_version(&req)?;
    let upload = storage_of(&state)
        .map_err(|e| StorageApiError::from(e).tus())?
        .tus_status(caller.context(), &id)
        .await
        .map_err(tus_error)?;
    let mut res = tus_response(StatusCode::OK);
    state_headers(&mut res, &upload);
    Ok(res.finish())
}

/// `PATCH /{id}`: appends the body at `Upload-Offset` → 204 with the new offset. The last
/// bytes turn the upload into the object.
pub(super) async fn patch(
    caller: StorageCaller,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    check_version(&req)?;
    let offset = number(&req, "upload-offset")?;
    let storage = storage_of(&state).map_err(|e| StorageApiError::from(e).tus())?;
    let content_type = text(&req, "content-type").map(str::to_string);
    let ctx = caller.context().clone();
    let outcome = with_body(payload, |body| async move {
        storage
            .tus_patch(&ctx, &id, offset, content_type.as_deref(), body)
            .await
    })
    .await
    .map_err(tus_error)?;
    let mut res = tus_response(StatusCode::NO_CONTENT);
    state_headers(&mut res, outcome.upload());
    Ok(res.finish())
}

/// `DELETE /{id}`: abandons the upload → 204.
pub(super) async fn terminate(
    caller: StorageCaller,
    id: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    check_version(&req)?;
    storage_of(&state)
        .map_err(|e| StorageApiError::from(e).tus())?
        .tus_terminate(caller.context(), &id)
        .await
        .map_err(tus_error)?;
    Ok(tus_response(StatusCode::NO_CONTENT).finish())
}
