//! Signed URLs: made by a caller who may read (download) or write (upload) the object, then
//! used without a session until they expire. The token is bound to the bucket and name of
//! the URL it was made for.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_storage::{DownloadOptions, SignedUrl};
use serde::Deserialize;
use serde_json::json;

use super::objects::served;
use crate::error::ApiError;
use crate::http::extract::{Anyone, Guard, OptionalJson};
use crate::http::state::AppState;
use crate::http::transfer::download::{
    DownloadQuery, head as head_response, not_modified, respond,
};
use crate::http::transfer::upload::{UploadRequest, source, with_body};
use crate::http::transfer::{api_error, encode_path, query, storage_of, url_for};

/// Default lifetime of a signed download URL.
const DEFAULT_DOWNLOAD_TTL: u64 = 3600;
/// Default lifetime of a signed upload URL (Supabase's: two hours).
const DEFAULT_UPLOAD_TTL: u64 = 2 * 3600;

/// `POST …/sign/{path}` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignBody {
    /// Seconds the URL works (default one hour, at most a week).
    #[serde(default)]
    expires_in: Option<u64>,
    /// Make the URL serve an attachment with this name (empty: the object's own).
    #[serde(default)]
    download: Option<String>,
}

/// `POST …/upload-url/{path}` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadUrlBody {
    /// Seconds the URL works (default two hours, at most a week).
    #[serde(default)]
    expires_in: Option<u64>,
    /// Whether the upload may replace an existing object.
    #[serde(default)]
    upsert: bool,
}

/// The query of a signed URL.
#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The answer carrying a signed URL.
fn signed(state: &AppState, bucket: &str, name: &str, url: SignedUrl, extra: &str) -> HttpResponse {
    let path = format!(
        "/api/v1/storage/signed/{}/{}?token={}{extra}",
        encode_path(bucket),
        encode_path(name),
        url.token
    );
    HttpResponse::Ok().json(json!({
        "url": url_for(state, &path),
        "token": url.token,
        "expires_at": url.expires_at,
    }))
}

/// A signed download URL for an object the caller may read.
pub(super) async fn sign_download(
    caller: Guard<Anyone>,
    path: web::Path<(String, String)>,
    body: OptionalJson<SignBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let ttl = Duration::from_secs(body.expires_in.unwrap_or(DEFAULT_DOWNLOAD_TTL));
    let url = storage_of(&state)?
        .sign_download(caller.context(), &bucket, &name, ttl)
        .await?;
    let extra = match &body.download {
        Some(file) => format!("&download={}", encode_path(file).replace('/', "%2F")),
        None => String::new(),
    };
    Ok(signed(&state, &bucket, &name, url, &extra))
}

/// A signed upload URL for a name the caller may write.
pub(super) async fn sign_upload(
    caller: Guard<Anyone>,
    path: web::Path<(String, String)>,
    body: OptionalJson<UploadUrlBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let ttl = Duration::from_secs(body.expires_in.unwrap_or(DEFAULT_UPLOAD_TTL));
    let url = storage_of(&state)?
        .sign_upload(caller.context(), &bucket, &name, body.upsert, ttl)
        .await?;
    Ok(signed(&state, &bucket, &name, url, ""))
}

/// `GET /signed/{bucket}/{path}?token=`: the bytes, no session needed.
pub(super) async fn download(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let token: TokenQuery = query(&req).map_err(api_error)?;
    let params: DownloadQuery = query(&req).map_err(api_error)?;
    let options = params.options(&req).map_err(api_error)?;
    let result = storage_of(&state)?
        .download_signed(&bucket, &name, &token.token, options)
        .await;
    served(result.map(|d| {
        not_modified(&req, &d.info).unwrap_or_else(|| respond(d, params.download.as_deref()))
    }))
}

/// `HEAD /signed/{bucket}/{path}?token=`.
pub(super) async fn head(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bucket, name) = path.into_inner();
    let token: TokenQuery = query(&req).map_err(api_error)?;
    let download = storage_of(&state)?
        .download_signed(&bucket, &name, &token.token, DownloadOptions::default())
        .await?;
    Ok(not_modified(&req, &download.info).unwrap_or_else(|| head_response(&download.info)))
}

/// `PUT /signed/{bucket}/{path}?token=`: uploads as the URL's signer → 200 with the
/// object.
pub(super) async fn upload(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage_of(&state)?;
    let (bucket, name) = path.into_inner();
    let token: TokenQuery = query(&req).map_err(api_error)?;
    // Refused before a byte of the body is read.
    storage
        .verify_token(
            fluxbase_storage::SignedAction::Upload,
            &bucket,
            &name,
            &token.token,
        )
        .map_err(api_error)?;
    let request = UploadRequest::from_headers(&req, false).map_err(api_error)?;
    let info = with_body(payload, |body| async move {
        let (options, bytes) = source(request, body).await?;
        storage
            .upload_signed(&bucket, &name, &token.token, options, bytes)
            .await
    })
    .await
    .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(info))
}
