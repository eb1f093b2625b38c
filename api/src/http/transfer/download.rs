//! Stored objects out as HTTP responses: 200 or 206 (`Range`, single or suffix) streamed
//! with their exact `Content-Length`; `ETag`, `Last-Modified`, `Cache-Control`,
//! `Content-Type`, `Accept-Ranges` and `Repr-Digest` (RFC 9530, the whole object's SHA-256,
//! also on a 206); 304 for `If-None-Match` / `If-Modified-Since`; `Content-Disposition:
//! attachment` for `?download[=name]`. User content is served under a sandboxing CSP: an
//! uploaded HTML page cannot run script on the API's origin.

use std::time::SystemTime;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue, HttpDate};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use fluxbase_storage::{ByteRange, Download, DownloadOptions, ObjectInfo, StorageError};
use serde::Deserialize;

use super::upload::parse_flag;

/// The CSP of object responses: nothing loads, and the document is its own origin.
pub const OBJECT_CSP: &str = "default-src 'none'; sandbox";

/// `Cache-Control` of an object uploaded without one.
const DEFAULT_CACHE_CONTROL: &str = "no-cache";

/// The query of a download: `?download[=name]`, `?verify=true`. Other parameters (a
/// client's `cacheNonce`, `versionId`) are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct DownloadQuery {
    /// Serve as an attachment, named this (empty: the object's own file name).
    pub download: Option<String>,
    /// Hash the stored bytes before serving them; refuse on a mismatch.
    pub verify: Option<String>,
}

impl DownloadQuery {
    /// The service's options: the `Range` header (a malformed or multi-range header is
    /// ignored and the whole object served, as RFC 9110 allows) and `verify`.
    pub fn options(&self, req: &HttpRequest) -> Result<DownloadOptions, StorageError> {
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(ByteRange::parse);
        let verify = match &self.verify {
            Some(v) => parse_flag(v, "verify")?,
            None => false,
        };
        Ok(DownloadOptions { range, verify })
    }
}

/// Whether the request carries a validator a 304 could answer (then the object's row is
/// read first, and its bytes opened only when the client's copy is stale).
pub fn is_conditional(req: &HttpRequest) -> bool {
    let h = req.headers();
    h.contains_key(header::IF_NONE_MATCH) || h.contains_key(header::IF_MODIFIED_SINCE)
}

/// 304 when the client's copy is current: `If-None-Match` against the ETag, else (RFC 9110
/// §13.1.3) `If-Modified-Since` against `Last-Modified`.
pub fn not_modified(req: &HttpRequest, info: &ObjectInfo) -> Option<HttpResponse> {
    let headers = req.headers();
    let fresh = if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
        tags.to_str()
            .is_ok_and(|tags| info.matches_if_none_match(tags))
    } else if let Some(since) = headers.get(header::IF_MODIFIED_SINCE) {
        let since = since
            .to_str()
            .ok()
            .and_then(|s| s.parse::<HttpDate>().ok())
            .map(SystemTime::from);
        since.is_some_and(|since| last_modified(info) <= since)
    } else {
        false
    };
    fresh.then(|| {
        let mut res = HttpResponse::build(StatusCode::NOT_MODIFIED);
        validators(&mut res, info);
        res.finish()
    })
}

/// The streaming response of a download: 206 with `Content-Range` for a range, else 200.
pub fn respond(download: Download, attachment: Option<&str>) -> HttpResponse {
    let status = if download.range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut res = HttpResponse::build(status);
    representation(&mut res, &download.info);
    if let Some(range) = download.content_range() {
        res.insert_header((header::CONTENT_RANGE, range));
    }
    if let Some(name) = attachment {
        let name = if name.is_empty() {
            download.file_name()
        } else {
            name
        };
        res.insert_header((header::CONTENT_DISPOSITION, content_disposition(name)));
    }
    let length = download.content_length();
    res.body(SizedStream::new(length, download.body))
}

/// The answer to `HEAD`: the headers a `GET` would carry, no body.
pub fn head(info: &ObjectInfo) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    representation(&mut res, info);
    // The length a GET would send; actix writes no body for a HEAD request.
    let nothing = futures_util::stream::empty::<Result<actix_web::web::Bytes, std::io::Error>>();
    res.body(SizedStream::new(info.size, nothing))
}

/// `Content-Range: bytes */size` for a 416 answer.
pub fn unsatisfiable(mut res: HttpResponse, size: u64) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        res.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    res
}

/// Headers describing the stored representation.
fn representation(res: &mut HttpResponseBuilder, info: &ObjectInfo) {
    validators(res, info);
    res.insert_header((header::CONTENT_TYPE, info.mime_type.as_str()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_SECURITY_POLICY, OBJECT_CSP));
    if let Some(digest) = info.repr_digest() {
        res.insert_header(("repr-digest", digest));
    }
}

/// `ETag`, `Last-Modified` and `Cache-Control` (also on a 304).
fn validators(res: &mut HttpResponseBuilder, info: &ObjectInfo) {
    res.insert_header((header::ETAG, info.etag.as_str()))
        .insert_header((header::LAST_MODIFIED, HttpDate::from(last_modified(info))))
        .insert_header((
            header::CACHE_CONTROL,
            info.cache_control
                .as_deref()
                .unwrap_or(DEFAULT_CACHE_CONTROL),
        ));
}

/// `Last-Modified`, at HTTP's one-second resolution.
fn last_modified(info: &ObjectInfo) -> SystemTime {
    let secs = info.updated_at.timestamp().max(0) as u64;
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// `attachment` with an ASCII `filename` for old clients and the exact name in
/// `filename*` (RFC 6266, RFC 8187).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_quote_and_encode() {
        assert_eq!(
            content_disposition("a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            content_disposition("é\"x\r\n.png"),
            "attachment; filename=\"__x__.png\"; filename*=UTF-8''%C3%A9%22x%0D%0A.png"
        );
    }
}
