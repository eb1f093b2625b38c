//! Errors in storage-api's shape, `{"statusCode":"404","code":"NoSuchKey","error":"NoSuchKey",
//! "message":"…"}`: storage-js reads `message` (and `code`: `exists()` relies on `NoSuchKey`),
//! and surfaces `statusCode` and the HTTP status. The HTTP status is the true one (404,
//! 409, 413, 416…), where storage-api answers most errors with a 400. The extractors here
//! wrap the server's own ([`Guard`], [`Json`]) so that their refusals take this shape too.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use fluxbase_auth::Caller;
use fluxbase_storage::StorageError;
use fluxbase_storage::tus::TUS_VERSION;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::http::extract::{Anyone, Guard, Json};
use crate::http::transfer::api_error;

/// An error answer of `/storage/v1`.
#[derive(Debug, Clone)]
pub struct StorageApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// storage-api's error code (`NoSuchKey`, `InvalidJWT`…).
    pub code: &'static str,
    /// For the client: never SQL, a path on disk or a stack trace.
    pub message: String,
    /// The object's size, for `Content-Range: bytes */size` on a 416.
    pub size: Option<u64>,
    /// Add `Tus-Resumable` (the tus endpoints answer with it, errors included).
    pub tus: bool,
}

impl std::fmt::Display for StorageApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl StorageApiError {
    /// An error of `status` and storage-api `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        StorageApiError {
            status,
            code,
            message: message.into(),
            size: None,
            tus: false,
        }
    }

    /// A feature this server does not offer (image transformations, analytics buckets).
    pub fn not_supported(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotSupported",
            format!("{what} is not supported by this server"),
        )
    }

    /// The same error, answered by a tus endpoint.
    pub fn tus(mut self) -> Self {
        self.tus = true;
        self
    }
}

impl From<ApiError> for StorageApiError {
    fn from(err: ApiError) -> Self {
        let code = match err.code {
            Code::Unauthorized
            | Code::InvalidToken
            | Code::TokenExpired
            | Code::SessionNotFound => "InvalidJWT",
            Code::Forbidden => "AccessDenied",
            Code::NotFound => "NotFound",
            Code::PayloadTooLarge => "EntityTooLarge",
            Code::UnsupportedMediaType => "InvalidMimeType",
            Code::RangeNotSatisfiable => "InvalidRange",
            Code::Conflict => "ResourceAlreadyExists",
            Code::RateLimited => "SlowDown",
            Code::DatabaseUnavailable => "DatabaseConnectionLimit",
            Code::Timeout => "DatabaseTimeout",
            code if code.status() >= 500 => "InternalError",
            _ => "InvalidRequest",
        };
        let status =
            StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        StorageApiError::new(status, code, err.message)
    }
}

impl From<StorageError> for StorageApiError {
    fn from(err: StorageError) -> Self {
        let code = match &err {
            StorageError::InvalidName {
                field: "bucket id", ..
            } => "InvalidBucketName",
            StorageError::InvalidName { .. } => "InvalidKey",
            StorageError::InvalidInput { .. } | StorageError::Body(_) => "InvalidRequest",
            StorageError::BucketNotFound => "NoSuchBucket",
            StorageError::ObjectNotFound => "NoSuchKey",
            StorageError::UploadNotFound => "NoSuchUpload",
            StorageError::BucketExists => "BucketAlreadyExists",
            StorageError::ObjectExists => "KeyAlreadyExists",
            StorageError::BucketNotEmpty => "ResourceNotEmpty",
            StorageError::Forbidden(_) => "AccessDenied",
            StorageError::TooLarge { .. } => "EntityTooLarge",
            StorageError::MimeTypeNotAllowed { .. } => "InvalidMimeType",
            StorageError::RangeNotSatisfiable { .. } => "InvalidRange",
            StorageError::InvalidSignature => "InvalidSignature",
            StorageError::SignatureExpired => "ExpiredToken",
            StorageError::OffsetMismatch { .. }
            | StorageError::WrongContentType { .. }
            | StorageError::TusVersion(_) => "TusError",
            StorageError::Db(_) => "DatabaseError",
            _ => "InternalError",
        };
        let size = match &err {
            StorageError::RangeNotSatisfiable { size } => Some(*size),
            _ => None,
        };
        // The server's own mapping decides status and message (and logs private errors).
        let api = api_error(err);
        let mut out = StorageApiError::from(api);
        out.code = code;
        out.size = size;
        out
    }
}

impl ResponseError for StorageApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status).json(json!({
            "statusCode": self.status.as_u16().to_string(),
            "code": self.code,
            "error": self.code,
            "message": self.message,
        }));
        if let Some(size) = self.size
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            res.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        if self.tus {
            let headers = res.headers_mut();
            headers.insert(
                header::HeaderName::from_static("tus-resumable"),
                HeaderValue::from_static(TUS_VERSION),
            );
            if self.status == StatusCode::PRECONDITION_FAILED {
                headers.insert(
                    header::HeaderName::from_static("tus-version"),
                    HeaderValue::from_static(TUS_VERSION),
                );
            }
        }
        res
    }
}

/// The caller (anon without a credential), refused in storage-api's shape.
pub struct StorageCaller(pub Caller);

impl std::ops::Deref for StorageCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequest for StorageCaller {
    type Error = StorageApiError;
    type Future = LocalBoxFuture<'static, Result<Self, StorageApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let guard = Guard::<Anyone>::from_request(req, payload);
        Box::pin(async move {
            guard
                .await
                .map(|g| StorageCaller(g.into_inner()))
                .map_err(StorageApiError::from)
        })
    }
}

/// A small JSON body (64 KiB at most; an empty body is `{}`), refused in storage-api's shape.
pub struct StorageJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for StorageJson<T> {
    type Error = StorageApiError;
    type Future = LocalBoxFuture<'static, Result<Self, StorageApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = Json::<T, { crate::http::extract::json::SMALL_BODY_LIMIT }, true>::from_request(
            req, payload,
        );
        Box::pin(async move {
            json.await
                .map(|j| StorageJson(j.into_inner()))
                .map_err(StorageApiError::from)
        })
    }
}

/// The answer to a path no route takes, in this surface's shape.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, StorageApiError> {
    Err(StorageApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// The answer to a known path with another method.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, StorageApiError> {
    Err(StorageApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "InvalidRequest",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// A resource of this surface: other methods answer a 405 in storage-api's shape.
pub fn resource(path: &str) -> actix_web::Resource {
    actix_web::web::resource(path).default_service(actix_web::web::to(method_not_allowed))
}
