//! Request bodies into uploads. actix's payload is tied to its worker thread (not `Send`),
//! while the storage service streams bodies through `Send` futures (object_store's writers);
//! [`with_body`] pumps the payload's chunks through a small channel into a `Send` stream
//! polled by the same task — no copy, no spawned task, at most [`PUMP_DEPTH`] chunks in
//! flight. [`source`] then finds the bytes: the raw body, or the file part of a
//! `multipart/form-data` body (what storage-js sends for a `Blob`, `File` or `FormData`),
//! whose text fields before the file (`cacheControl`, `metadata`) are read as options.

use std::io;

use actix_web::HttpRequest;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use base64::Engine;
use fluxbase_storage::{StorageError, UploadOptions};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

/// Chunks of a request body in flight between the socket and the upload. actix reads at
/// most 64 KiB at a time, so this bounds the pump's memory to about 1 MiB.
pub const PUMP_DEPTH: usize = 16;

/// Longest text field of an upload form (`cacheControl`, `metadata`).
const MAX_FORM_FIELD: usize = 64 * 1024;

/// Longest `Cache-Control` value kept with an object.
const MAX_CACHE_CONTROL: usize = 255;

/// A request body as a `Send` stream.
pub type Body = BoxStream<'static, io::Result<Bytes>>;

/// Runs `upload` with the request body as a [`Body`], pumping the payload alongside; the
/// pump stops when the upload is done (an early refusal leaves the rest unread: actix then
/// closes the connection after the answer).
pub async fn with_body<T, F, Fut>(mut payload: web::Payload, upload: F) -> T
where
    F: FnOnce(Body) -> Fut,
    Fut: Future<Output = T>,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(PUMP_DEPTH);
    let pump = async move {
        while let Some(item) = payload.next().await {
            let item = item.map_err(payload_error);
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    let work = upload(body);
    let (mut work, pump) = (std::pin::pin!(work), std::pin::pin!(pump));
    match futures_util::future::select(work.as_mut(), pump).await {
        futures_util::future::Either::Left((out, _)) => out,
        futures_util::future::Either::Right(((), _)) => work.await,
    }
}

/// A payload error as the I/O error the storage service reports (a stall past
/// `server.body_timeout` keeps its `TimedOut` kind: the answer is then 408).
fn payload_error(err: PayloadError) -> io::Error {
    match err {
        PayloadError::Io(io) => io,
        PayloadError::Incomplete(_) => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before the body was complete",
        ),
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// The upload options a request's headers give: `Content-Type`, `Cache-Control`,
/// `x-upsert: true`, `x-metadata` (base64 JSON, as storage-js sends user metadata) and
/// `Content-Length` (an over-limit body is refused before a byte is read).
#[derive(Debug, Clone, Default)]
pub struct UploadRequest {
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The options for the stored object.
    pub options: UploadOptions,
}

impl UploadRequest {
    /// Reads the headers; `upsert` is the route's default (PUT replaces, POST creates).
    pub fn from_headers(req: &HttpRequest, upsert: bool) -> Result<UploadRequest, StorageError> {
        let text = |name: header::HeaderName| -> Result<Option<String>, StorageError> {
            match req.headers().get(&name) {
                None => Ok(None),
                Some(value) => value
                    .to_str()
                    .map(|v| Some(v.trim().to_string()))
                    .map_err(|_| StorageError::InvalidInput {
                        field: header_field(&name),
                        reason: "is not visible ASCII".into(),
                    }),
            }
        };
        let content_type = text(header::CONTENT_TYPE)?.filter(|v| !v.is_empty());
        let cache_control = text(header::CACHE_CONTROL)?
            .filter(|v| !v.is_empty())
            .map(|v| cache_control(&v))
            .transpose()?;
        let upsert = match text(header::HeaderName::from_static("x-upsert"))? {
            Some(v) => parse_flag(&v, "x-upsert")?,
            None => upsert,
        };
        let user_metadata = text(header::HeaderName::from_static("x-metadata"))?
            .map(|encoded| metadata_header(&encoded))
            .transpose()?;
        let content_length = match text(header::CONTENT_LENGTH)? {
            Some(v) => Some(v.parse::<u64>().map_err(|_| StorageError::InvalidInput {
                field: "content-length",
                reason: "is not a number".into(),
            })?),
            None => None,
        };
        Ok(UploadRequest {
            options: UploadOptions {
                content_type: content_type.clone(),
                cache_control,
                upsert,
                user_metadata,
                content_length,
            },
            content_type,
        })
    }

    /// Whether the body is a `multipart/form-data` form.
    fn is_form(&self) -> bool {
        self.content_type.as_deref().is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("multipart/form-data"))
        })
    }
}

/// The static name of a header for error messages.
fn header_field(name: &header::HeaderName) -> &'static str {
    match name.as_str() {
        "content-type" => "content-type",
        "cache-control" => "cache-control",
        "x-upsert" => "x-upsert",
        "x-metadata" => "x-metadata",
        "content-length" => "content-length",
        _ => "header",
    }
}

/// `true`/`false` (any case), as storage-js sends `x-upsert`.
pub fn parse_flag(value: &str, field: &'static str) -> Result<bool, StorageError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(StorageError::InvalidInput {
            field,
            reason: "must be true or false".into(),
        }),
    }
}

/// A `Cache-Control` to keep with an object: a bare number of seconds (storage-js's form
/// field `cacheControl: "3600"`) means `max-age=3600`.
fn cache_control(value: &str) -> Result<String, StorageError> {
    let value = value.trim();
    if value.len() > MAX_CACHE_CONTROL || value.chars().any(|c| c.is_control()) {
        return Err(StorageError::InvalidInput {
            field: "cache-control",
            reason: format!("must be at most {MAX_CACHE_CONTROL} printable characters"),
        });
    }
    Ok(
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            format!("max-age={value}")
        } else {
            value.to_string()
        },
    )
}

/// User metadata: a JSON object.
fn metadata_json(json: &str, field: &'static str) -> Result<Value, StorageError> {
    match serde_json::from_str::<Value>(json) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(StorageError::InvalidInput {
            field,
            reason: "must be a JSON object".into(),
        }),
        Err(err) => Err(StorageError::InvalidInput {
            field,
            reason: format!("is not JSON: {err}"),
        }),
    }
}

/// `x-metadata`: base64 of a JSON object.
fn metadata_header(encoded: &str) -> Result<Value, StorageError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| StorageError::InvalidInput {
            field: "x-metadata",
            reason: "is not base64".into(),
        })?;
    let json = String::from_utf8(bytes).map_err(|_| StorageError::InvalidInput {
        field: "x-metadata",
        reason: "is not UTF-8 JSON".into(),
    })?;
    metadata_json(&json, "x-metadata")
}

/// The options and bytes of an upload: the raw body, or the first file part of a form
/// (its own `Content-Type` is the object's; text fields before it set `cacheControl` and
/// `metadata`; fields after it are not read).
pub async fn source(
    request: UploadRequest,
    body: Body,
) -> Result<(UploadOptions, Body), StorageError> {
    if !request.is_form() {
        return Ok((request.options, body));
    }
    let content_type = request.content_type.as_deref().unwrap_or_default();
    let boundary =
        multer::parse_boundary(content_type).map_err(|_| StorageError::InvalidInput {
            field: "content-type",
            reason: "multipart/form-data needs a boundary parameter".into(),
        })?;
    let mut form = multer::Multipart::new(body, boundary);
    let mut options = request.options;
    // The form's length is not the file's.
    options.content_length = None;
    options.content_type = None;
    loop {
        let field = form.next_field().await.map_err(form_error)?;
        let Some(field) = field else {
            return Err(StorageError::InvalidInput {
                field: "multipart/form-data",
                reason: "the form has no file part".into(),
            });
        };
        let name = field.name().unwrap_or_default().to_string();
        if field.file_name().is_some() || name.is_empty() || name == "file" {
            if let Some(mime) = field.content_type() {
                options.content_type = Some(mime.to_string());
            }
            let bytes = field.map_err(field_error).boxed();
            return Ok((options, bytes));
        }
        let value = read_text(field, &name).await?;
        match name.as_str() {
            "cacheControl" => options.cache_control = Some(cache_control(&value)?),
            "metadata" => options.user_metadata = Some(metadata_json(&value, "metadata")?),
            // Other fields (contentEncoding, a path) are not kept.
            _ => {}
        }
    }
}

/// A text field of at most [`MAX_FORM_FIELD`] bytes.
async fn read_text(mut field: multer::Field<'static>, name: &str) -> Result<String, StorageError> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        if out.len() + chunk.len() > MAX_FORM_FIELD {
            return Err(StorageError::InvalidInput {
                field: "multipart/form-data",
                reason: format!("the field {name:?} is longer than {MAX_FORM_FIELD} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).map_err(|_| StorageError::InvalidInput {
        field: "multipart/form-data",
        reason: format!("the field {name:?} is not UTF-8"),
    })
}

/// A form that does not parse is the client's error; a body that failed underneath keeps
/// its own error (a stall, a closed connection).
fn form_error(err: multer::Error) -> StorageError {
    match underlying_io(&err) {
        Some(io) => StorageError::Body(io),
        None => StorageError::InvalidInput {
            field: "multipart/form-data",
            reason: err.to_string(),
        },
    }
}

/// The file part's errors, as the body's.
fn field_error(err: multer::Error) -> io::Error {
    underlying_io(&err).unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// The I/O error under a multer error, if the body itself failed.
fn underlying_io(err: &multer::Error) -> Option<io::Error> {
    match err {
        multer::Error::StreamReadFailed(source) => {
            let io = source.downcast_ref::<io::Error>()?;
            Some(io::Error::new(io.kind(), io.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_numbers_are_max_age() {
        assert_eq!(cache_control("3600").unwrap(), "max-age=3600");
        assert_eq!(cache_control("no-cache").unwrap(), "no-cache");
        assert!(cache_control("a\u{7}b").is_err());
        assert!(cache_control(&"x".repeat(300)).is_err());
    }

    #[test]
    fn metadata_must_be_an_object() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"a":1}"#);
        assert_eq!(
            metadata_header(&encoded).unwrap(),
            serde_json::json!({"a": 1})
        );
        let list = base64::engine::general_purpose::STANDARD.encode("[1]");
        assert!(metadata_header(&list).is_err());
        assert!(metadata_header("%%%").is_err());
    }

    #[test]
    fn flags() {
        assert!(parse_flag("TRUE", "x").unwrap());
        assert!(!parse_flag("false", "x").unwrap());
        assert!(parse_flag("yes please", "x").is_err());
    }
}
