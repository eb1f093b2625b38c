//! `Json<T>`: the JSON body of every route. It reads the body with a size limit (413
//! before reading when `Content-Length` says so) and within `server.body_timeout` (408),
//! parses it, refuses text PostgreSQL cannot store (a NUL character, in any string or key,
//! at any depth), then maps it onto `T`. Every error is our JSON shape and names the field,
//! never echoing its value (it may be a password).
//!
//! The `Content-Type` is not checked: a body is JSON whatever the header says, including
//! none (`curl -d`). No route here reads cookies or other ambient credentials, so a
//! cross-site "simple" request (text/plain, form) can only carry the attacker's own data
//! and its answer is unreadable to the attacker's page (CORS); see the README.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Config;
use crate::error::{ApiError, Code};

/// Largest body of the auth and admin endpoints: credentials and a little metadata.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// A `LIMIT` meaning "`server.body_limit`".
pub const SERVER_LIMIT: usize = usize::MAX;

/// Longest error detail sent back (an unknown field's name is the client's text).
const MAX_DETAIL: usize = 200;

/// A JSON object body mapped onto `T`, at most `LIMIT` bytes; with `EMPTY_IS_OBJECT` an
/// empty body reads as `{}` (routes whose fields are all optional).
#[derive(Debug)]
pub struct Json<T, const LIMIT: usize = SMALL_BODY_LIMIT, const EMPTY_IS_OBJECT: bool = false>(
    pub T,
);

/// A body whose fields are all optional: an empty body is `{}`.
pub type OptionalJson<T> = Json<T, SMALL_BODY_LIMIT, true>;

impl<T, const L: usize, const E: bool> Json<T, L, E> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, const L: usize, const E: bool> std::ops::Deref for Json<T, L, E> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static, const L: usize, const E: bool> FromRequest for Json<T, L, E> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let limit = if L == SERVER_LIMIT {
                req.app_data::<web::Data<Config>>()
                    .map_or(SMALL_BODY_LIMIT, |c| {
                        usize::try_from(c.server.body_limit.0).unwrap_or(usize::MAX)
                    })
            } else {
                L
            };
            let bytes = read_limited(&req, payload, limit).await?;
            parse(&bytes, E).map(Json)
        })
    }
}

/// Reads at most `limit` bytes (413 beyond, before reading when `Content-Length` says so).
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
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
        let chunk = chunk.map_err(|err| match err {
            PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ApiError::new(
                Code::RequestTimeout,
                format!("the request body stalled: {io}"),
            ),
            PayloadError::Overflow => too_large(),
            _ => ApiError::new(Code::BadRequest, "could not read the request body"),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JSON object body into `T`.
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
    // Syntax (including lone surrogates, numbers out of range, nesting past serde_json's
    // recursion limit) is checked here, with the position.
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::new(Code::BadRequest, format!("invalid JSON body: {err}")))?;
    if let Some(path) = nul_at(&value, &mut String::new()) {
        return Err(ApiError::new(
            Code::BadRequest,
            format!(
                "invalid field `{path}`: text must not contain a NUL character (\\u0000), which PostgreSQL cannot store"
            ),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|err| describe(&err))
}

/// The path of the first string or key holding a NUL, if any (`data.nick`, `tags[2]`).
fn nul_at(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(display_path(path)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_at(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            if key.contains('\0') {
                // The key itself cannot be shown: name where it is.
                let at = display_path(&path[..len]);
                return Some(format!("{at} (a key)"));
            }
            path.push_str(key);
            let found = nul_at(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// A path for a message: `.` for the body itself, cut to a readable length.
fn display_path(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    truncated(path.to_string())
}

/// `text` cut to [`MAX_DETAIL`] bytes on a character boundary (client text in messages).
fn truncated(mut text: String) -> String {
    if text.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A client message for a data error: the field's path and the expected type, never the
/// value.
fn describe(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let text = err.inner().to_string();
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
    let text = truncated(text);
    let path = err.path().to_string();
    let message = if path == "." || path.is_empty() {
        format!("invalid request body: {text}")
    } else {
        format!("invalid field `{}`: {text}", truncated(path))
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
        #[serde(default)]
        data: Option<Value>,
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

    #[test]
    fn text_postgres_cannot_store_is_refused_naming_the_field() {
        assert_eq!(
            err(r#"{"email":"a@b.co","password":"x","data":{"nick":"a\u0000b"}}"#),
            "invalid field `data.nick`: text must not contain a NUL character (\\u0000), which PostgreSQL cannot store"
        );
        assert!(err(r#"{"email":"a\u0000@b.co","password":"x"}"#).contains("`email`"));
        assert!(
            err(r#"{"email":"a@b.co","password":"x","data":{"l":[1,{"k":"\u0000"}]}}"#)
                .contains("`data.l[1].k`")
        );
        assert!(
            err(r#"{"email":"a@b.co","password":"x","data":{"a\u0000":1}}"#)
                .contains("`data (a key)`")
        );
        // Lone surrogates, numbers out of range and deep nesting are syntax errors.
        for body in [
            r#"{"email":"\ud800","password":"x"}"#.to_string(),
            r#"{"email":"a@b.co","password":"x","data":{"n":1e999}}"#.to_string(),
            format!(
                r#"{{"email":"a@b.co","password":"x","data":{}1{}}}"#,
                "[".repeat(500),
                "]".repeat(500)
            ),
        ] {
            assert!(
                err(&body).starts_with("invalid JSON body"),
                "{}",
                err(&body)
            );
        }
    }
}
