//! Signed URLs in storage-api's shapes: `createSignedUrl(s)` (`{"signedURL":
//! "/object/sign/{bucket}/{path}?token=…"}`, relative to `/storage/v1`, the name unencoded
//! because storage-js passes it through `encodeURI`), `createSignedUploadUrl` (`{"url",
//! "token"}`) and `uploadToSignedUrl`. Using a URL needs no session.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_storage::{DownloadOptions, SignedAction, StorageError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{StorageApiError, StorageCaller, StorageJson};
use super::object::uploaded;
use crate::http::state::AppState;
use crate::http::transfer::download::{
    DownloadQuery, head as head_response, not_modified, respond,
};
use crate::http::transfer::upload::{UploadRequest, parse_flag, source, with_body};
use crate::http::transfer::{query, storage_of};

/// Lifetime of a signed upload URL (storage-api's default: two hours).
const UPLOAD_TTL: Duration = Duration::from_secs(2 * 3600);

/// What storage-api says for a name of `createSignedUrls` that cannot be signed.
const NOT_SIGNED: &str = "Either the object does not exist or you do not have access to it";

/// `POST /object/sign/{bucket}/{path}` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignBody {
    expires_in: u64,
    #[serde(default)]
    transform: Option<Map<String, Value>>,
}

/// `POST /object/sign/{bucket}` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignManyBody {
    expires_in: u64,
    paths: Vec<String>,
}

/// The `token` of a signed URL's query.
#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `/object/sign/{bucket}/{path}?token=…`, relative to `/storage/v1`.
fn signed_url(bucket: &str, name: &str, token: &str) -> String {
    format!("/object/sign/{bucket}/{name}?token={token}")
}

/// `createSignedUrl`: a signed download URL for an object the caller may read.
pub(super) async fn sign_one(
    caller: StorageCaller,
    path: web::Path<(String, String)>,
    body: StorageJson<SignBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    if body.0.transform.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(StorageApiError::not_supported("image transformation"));
    }
    let url = storage_of(&state)?
        .sign_download(
            caller.context(),
            &bucket,
            &name,
            Duration::from_secs(body.0.expires_in),
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "signedURL": signed_url(&bucket, &name, &url.token) })))
}

/// `createSignedUrls`: one entry per name, with an error instead of a URL for those the
/// caller may not read.
pub(super) async fn sign_many(
    caller: StorageCaller,
    bucket: web::Path<String>,
    body: StorageJson<SignManyBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let storage = storage_of(&state)?;
    let body = body.0;
    if body.paths.is_empty() {
        return Err(StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "paths must name at least one object",
        ));
    }
    let ttl = Duration::from_secs(body.expires_in);
    let mut out = Vec::with_capacity(body.paths.len());
    for name in &body.paths {
        let entry = match storage
            .sign_download(caller.context(), &bucket, name, ttl)
            .await
        {
            Ok(url) => json!({
                "error": null,
                "path": name,
                "signedURL": signed_url(&bucket, name, &url.token),
            }),
            Err(StorageError::ObjectNotFound | StorageError::InvalidName { .. }) => {
                json!({ "error": NOT_SIGNED, "path": name, "signedURL": null })
            }
            Err(err) => return Err(err.into()),
        };
        out.push(entry);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `GET /object/sign/{bucket}/{path}?token=…`: the bytes, no session needed.
pub(super) async fn download(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let token: TokenQuery = query(&req)?;
    let params: DownloadQuery = query(&req)?;
    let options = params.options(&req)?;
    let download = storage_of(&state)?
        .download_signed(&bucket, &name, &token.token, options)
        .await?;
    Ok(not_modified(&req, &download.info)
        .unwrap_or_else(|| respond(download, params.download.as_deref())))
}

/// `HEAD /object/sign/{bucket}/{path}?token=…`.
pub(super) async fn head(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let token: TokenQuery = query(&req)?;
    let download = storage_of(&state)?
        .download_signed(&bucket, &name, &token.token, DownloadOptions::default())
        .await?;
    Ok(not_modified(&req, &download.info).unwrap_or_else(|| head_response(&download.info)))
}

/// `createSignedUploadUrl` (`x-upsert: true` lets the upload replace) → `{"url", "token"}`.
pub(super) async fn sign_upload(
    caller: StorageCaller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let (bucket, name) = path.into_inner();
    let upsert = match req.headers().get("x-upsert").and_then(|v| v.to_str().ok()) {
        Some(v) => parse_flag(v, "x-upsert")?,
        None => false,
    };
    let url = storage_of(&state)?
        .sign_upload(caller.context(), &bucket, &name, upsert, UPLOAD_TTL)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "url": format!("/object/upload/sign/{bucket}/{name}?token={}", url.token),
        "token": url.token,
    })))
}

/// `uploadToSignedUrl`: `PUT /object/upload/sign/{bucket}/{path}?token=…` → `{"Id",
/// "Key"}`. The token is checked before a byte of the body is read.
pub(super) async fn upload(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, StorageApiError> {
    let storage = storage_of(&state)?;
    let (bucket, name) = path.into_inner();
    let token: TokenQuery = query(&req)?;
    storage.verify_token(SignedAction::Upload, &bucket, &name, &token.token)?;
    // The token decides whether the upload may replace (`x-upsert` of the signer).
    let request = UploadRequest::from_headers(&req, false)?;
    let info = with_body(payload, |body| async move {
        let (options, bytes) = source(request, body).await?;
        storage
            .upload_signed(&bucket, &name, &token.token, options, bytes)
            .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(uploaded(&info)))
}
