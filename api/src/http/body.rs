//! Small JSON request bodies (auth, admin): read with a tight size limit and parsed so that
//! every error is our JSON shape and names the offending field, without echoing its value
//! (it may be a password).

use actix_web::web;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

/// Largest body of the auth and admin endpoints: credentials and a little metadata.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// Longest error detail sent back (an unknown field's name is the client's text).
const MAX_DETAIL: usize = 200;

/// Reads at most `limit` bytes (413 beyond, before reading when `Content-Length` says so).
pub async fn read_limited(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::new(Code::BadRequest, "could not read the request body"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JSON body into `T`. An empty body parses as `{}` when `empty_is_object`
/// (endpoints whose fields are all optional; `curl -d` without a body).
pub fn parse<T: DeserializeOwned>(bytes: &[u8], empty_is_object: bool) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        if empty_is_object {
            b"{}"
        } else {
            return Err(ApiError::new(
                Code::BadRequest,
                "request body is empty: expected a JSON object",
            ));
        }
    } else {
        bytes
    };
    // serde would also read a struct from an array (by position): only objects are bodies.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let syntax_ok = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        return Err(ApiError::new(
            Code::BadRequest,
            if syntax_ok {
                "invalid request body: expected a JSON object"
            } else {
                "invalid JSON body: expected a JSON object"
            },
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| describe(&err))?;
    de.end().map_err(|_| {
        ApiError::new(
            Code::BadRequest,
            "invalid JSON body: trailing characters after the object",
        )
    })?;
    Ok(value)
}

/// Reads and parses in one step.
pub async fn read_json<T: DeserializeOwned>(
    req: &actix_web::HttpRequest,
    payload: web::Payload,
    empty_is_object: bool,
) -> Result<T, ApiError> {
    let bytes = read_limited(req, payload, SMALL_BODY_LIMIT).await?;
    parse(&bytes, empty_is_object)
}

/// A client message for a parse error: syntax errors with their position; data errors
/// with the field's path, the expected type, never the value.
fn describe(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    let text = inner.to_string();
    // serde_json appends " at line L column C"; the position helps only for syntax errors.
    let text = match text.rfind(" at line ") {
        Some(i) if !inner.is_syntax() && !inner.is_eof() => text[..i].to_string(),
        _ => text,
    };
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::new(Code::BadRequest, format!("invalid JSON body: {text}"));
    }
    // "invalid type: string \"hunter2\", expected …" → "invalid type: string, expected …".
    let text = match (
        text.strip_prefix("invalid type: "),
        text.find(", expected "),
    ) {
        (Some(rest), Some(at)) => {
            let kind = rest.split([' ', ',']).next().unwrap_or("value");
            let kind = if rest.starts_with("floating point") {
                "floating point"
            } else {
                kind
            };
            format!("invalid type: {kind}{}", &text[at..])
        }
        _ if text.starts_with("invalid value: ") => match text.find(", expected ") {
            Some(at) => format!("invalid value{}", &text[at..]),
            None => "invalid value".to_string(),
        },
        _ => text,
    };
    let mut text = text;
    if text.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    let path = err.path().to_string();
    let message = if path == "." || path.is_empty() {
        format!("invalid request body: {text}")
    } else {
        format!("invalid field `{path}`: {text}")
    };
    ApiError::new(Code::BadRequest, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Creds {
        email: String,
        password: String,
    }

    fn err(body: &str) -> String {
        parse::<Creds>(body.as_bytes(), false).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field_and_never_echo_values() {
        assert_eq!(
            err(r#"{"email":"a@b.co","password":12345678}"#),
            "invalid field `password`: invalid type: integer, expected a string"
        );
        let m = err(r#"{"email":"a@b.co","password":["hunter2"]}"#);
        assert!(m.contains("`password`") && !m.contains("hunter2"), "{m}");
        assert!(err(r#"{"email":"a@b.co"}"#).contains("missing field `password`"));
        assert!(
            err(r#"{"email":"a@b.co","password":"x","admin":true}"#)
                .contains("unknown field `admin`")
        );
        assert!(err(r#"{"email":"#).starts_with("invalid JSON body"));
        assert!(err("").contains("empty"));
        assert_eq!(err("[]"), "invalid request body: expected a JSON object");
        assert!(err("not json").starts_with("invalid JSON body"));
        assert!(err(r#"{"email":"a@b.co","password":"x"} trailing"#).contains("trailing"));
    }
}
