//! What the jobs routes read from a request besides the caller: a job's or schedule's id in
//! the path, the listing's query string, and bodies that carry a job payload (bounded by
//! `jobs.max_payload_size`, not the small limit of other admin bodies). Every error names
//! the field or parameter.

use actix_web::{HttpRequest, web};
use fluxbase_engine::jobs::{JobError, JobQuery};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{ApiError, Code};
use crate::http::extract::json::{parse, read_limited};

/// Bytes a body may hold beyond its payload's limit: the other fields, and whitespace.
const ENVELOPE: usize = 64 * 1024;

/// A 400 naming `field`, in the words of the JSON extractor's errors.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        Code::BadRequest,
        format!("invalid field `{field}`: {message}"),
    )
}

/// A job service error as an answer; a refused field is named as the JSON extractor names
/// it (`invalid field `payload`: …`).
pub fn job_error(err: JobError) -> ApiError {
    match err {
        JobError::Invalid { field, message } => invalid(field, message),
        other => other.into(),
    }
}

/// The `{id}` of a path, a UUID.
pub fn id(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| invalid("id", "must be a UUID"))
}

/// Parameters a listing takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET /api/v1/jobs`: `status`, `name`, `limit`, `offset`.
    Jobs,
    /// The dead letters: `name`, `limit`, `offset` (their status is `failed`).
    DeadLetters,
}

/// Parses a listing's query string: known parameters once each, numbers where numbers go,
/// no NUL (PostgreSQL cannot compare it).
pub fn listing(req: &HttpRequest, listing: Listing) -> Result<JobQuery, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|err| ApiError::new(Code::BadRequest, format!("invalid query string: {err}")))?
        .into_inner();
    let mut query = JobQuery::default();
    for (key, value) in pairs {
        let param = |message: &str| {
            ApiError::new(
                Code::BadRequest,
                format!("invalid query parameter `{key}`: {message}"),
            )
        };
        if value.contains('\0') {
            return Err(param("must not contain a NUL character"));
        }
        let number = || {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| param("must be a whole number"))
        };
        let slot_taken = match key.as_str() {
            "status" if listing == Listing::Jobs => query.status.replace(value.clone()).is_some(),
            "name" => query.name.replace(value.clone()).is_some(),
            "limit" => query.limit.replace(number()?).is_some(),
            "offset" => query.offset.replace(number()?).is_some(),
            _ => {
                let known = match listing {
                    Listing::Jobs => "status, name, limit, offset",
                    Listing::DeadLetters => "name, limit, offset",
                };
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!(
                        "unknown query parameter `{}`: use {known}",
                        key.chars().take(100).collect::<String>()
                    ),
                ));
            }
        };
        if slot_taken {
            return Err(param("given more than once"));
        }
    }
    Ok(query)
}

/// Reads a JSON body that carries a job payload: up to twice `jobs.max_payload_size` plus
/// an envelope (whitespace costs nothing); beyond, 413 naming `payload` and the key.
pub async fn body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    max_payload_size: usize,
) -> Result<T, ApiError> {
    let limit = max_payload_size.saturating_mul(2).saturating_add(ENVELOPE);
    let bytes = read_limited(req, payload.into_inner(), limit)
        .await
        .map_err(|err| match err.code {
            Code::PayloadTooLarge => ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "request body is larger than {limit} bytes: a job's `payload` may be at most \
                     {max_payload_size} bytes (jobs.max_payload_size)"
                ),
            ),
            _ => err,
        })?;
    parse(&bytes, false)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn list(uri: &str, which: Listing) -> Result<JobQuery, String> {
        listing(&TestRequest::get().uri(uri).to_http_request(), which).map_err(|e| e.message)
    }

    #[test]
    fn query_parameters_are_checked_by_name() {
        let q = list(
            "/x?status=failed&name=a%20b&limit=10&offset=20",
            Listing::Jobs,
        )
        .unwrap();
        assert_eq!(q.status.as_deref(), Some("failed"));
        assert_eq!(q.name.as_deref(), Some("a b"));
        assert_eq!((q.limit, q.offset), (Some(10), Some(20)));
        assert!(
            list("/x?limit=ten", Listing::Jobs)
                .unwrap_err()
                .contains("`limit`")
        );
        assert!(
            list("/x?name=a&name=b", Listing::Jobs)
                .unwrap_err()
                .contains("more than once")
        );
        assert!(
            list("/x?sort=id", Listing::Jobs)
                .unwrap_err()
                .contains("unknown query parameter `sort`")
        );
        assert!(
            list("/x?status=failed", Listing::DeadLetters)
                .unwrap_err()
                .contains("`status`")
        );
        assert!(
            list("/x?name=a%00b", Listing::Jobs)
                .unwrap_err()
                .contains("NUL")
        );
        assert_eq!(
            id("nope").unwrap_err().message,
            "invalid field `id`: must be a UUID"
        );
    }
}
