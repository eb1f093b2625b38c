//! Object bytes over HTTP, shared by the two storage surfaces (`/api/v1/storage`, Fluxbase's
//! shapes, and `/storage/v1`, Supabase storage-api's): request bodies flowing into an upload
//! ([`upload`]) and stored objects flowing out as responses with `Range`, `ETag`,
//! `If-None-Match`, `Last-Modified` and `Repr-Digest` ([`download`]). Neither ever holds a
//! whole object in memory.

pub mod download;
pub mod upload;

use actix_web::{HttpRequest, web};
use fluxbase_storage::{Storage, StorageError};

use crate::error::{ApiError, Code};
use crate::http::state::AppState;

/// The storage service, or 503 when the server runs without one (in-process tests of other
/// surfaces).
pub fn storage_of(state: &web::Data<AppState>) -> Result<Storage, ApiError> {
    state.storage.clone().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "the storage service is not running on this server",
        )
    })
}

/// The query string mapped onto `T` (a bad value is a 400 naming the parameter, in the
/// caller's error shape rather than actix's plain text).
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, StorageError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|err| StorageError::InvalidInput {
            field: "query string",
            reason: err.to_string(),
        })
}

/// An object name as a URL path: each segment percent-encoded (RFC 3986 unreserved
/// characters kept), `/` between them.
pub fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path` (absolute, from `/`) as a URL for clients: under `server.base_url` when it is set,
/// else relative to this server (what the client called).
pub fn url_for(state: &AppState, path: &str) -> String {
    match state.config.server.base_url.as_deref() {
        Some(base) if !base.is_empty() => format!("{}{path}", base.trim_end_matches('/')),
        _ => path.to_string(),
    }
}

/// A storage error as Fluxbase's error: a body that stalled past `server.body_timeout` is
/// a 408, like every other body of the server; the rest keeps its own code.
pub fn api_error(err: StorageError) -> ApiError {
    match &err {
        StorageError::Body(io) if io.kind() == std::io::ErrorKind::TimedOut => ApiError::new(
            Code::RequestTimeout,
            format!("the request body stalled: {io}"),
        ),
        _ => ApiError::from(err),
    }
}
