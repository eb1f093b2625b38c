//! Why a REST request failed, and the error response in each flavour.
//!
//! - `/rest/v1` (PostgREST's shape): `{code, details, hint, message}` with PostgREST's
//!   status; a database error carries its SQLSTATE as `code` and PostgreSQL's message,
//!   detail and hint, with PostgREST's status map (unique and foreign-key violations 409,
//!   a refusal by grants or RLS 401 for anon and 403 otherwise, the rest of class 22/23
//!   400…), except that a statement timeout is 504 as Fluxbase promises.
//! - `/api/v1` (Fluxbase's shape): `{"error":{"code","message"}}`, the code from the one
//!   vocabulary by status, the message naming what is wrong and ending with the PostgREST
//!   code or the SQLSTATE.
//!
//! Failures that are the server's own (a statement that does not compile, an internal
//! error) are logged with their cause and answered with a fixed message.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use deadpool_postgres::PoolError;
use fluxbase_migrations::{Code, DbError, ErrorCode};
use serde_json::{Value, json};

use super::error::RestError;
use super::response::RestResponse;
use super::service::Flavour;

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// The request itself: parse, body, schema cache, shape of the result.
    Request(RestError),
    /// The database refused or failed; `authed` when the caller is not anon.
    Database {
        /// The error.
        error: DbError,
        /// Whether the caller had credentials (401 versus 403 for a refusal).
        authed: bool,
    },
    /// The credentials were refused: a bad or expired token, an unknown or revoked service
    /// key, an ended session. PostgREST's PGRST301 (PGRST303 when expired) on `/rest/v1`,
    /// the auth error's own code (`session_not_found`, `token_expired`…) on `/api/v1`.
    Auth(fluxbase_auth::AuthError),
    /// The JWT's role does not exist (401) or the server's login role may not switch to it
    /// (403).
    Role {
        /// The role asked for.
        role: String,
        /// Whether it exists.
        exists: bool,
    },
}

impl From<RestError> for Failure {
    fn from(err: RestError) -> Self {
        Failure::Request(err)
    }
}

/// The pieces of an error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorParts {
    /// PostgREST's status.
    pub status: StatusCode,
    /// `PGRSTnnn` or the SQLSTATE.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// More about it (text, or JSON for an ambiguous embed).
    pub details: Option<Value>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// The error's pieces, in PostgREST's terms.
    pub fn parts(&self) -> ErrorParts {
        match self {
            Failure::Request(err) => {
                let body = err.postgrest_body();
                ErrorParts {
                    status: err.status(),
                    code: err.code().to_owned(),
                    message: err.to_string(),
                    details: body.get("details").filter(|d| !d.is_null()).cloned(),
                    hint: err.hint(),
                }
            }
            Failure::Role {
                role,
                exists: false,
            } => ErrorParts {
                status: StatusCode::UNAUTHORIZED,
                code: "22023".to_owned(),
                message: format!("role \"{}\" does not exist", super::snippet(role)),
                details: None,
                hint: None,
            },
            Failure::Role { role, exists: true } => ErrorParts {
                status: StatusCode::FORBIDDEN,
                code: "42501".to_owned(),
                message: format!("permission denied to set role \"{}\"", super::snippet(role)),
                details: None,
                hint: Some("grant the role to the server's login role".to_owned()),
            },
            Failure::Database { error, authed } => database_parts(error, *authed),
            Failure::Auth(fluxbase_auth::AuthError::Database(error)) => {
                database_parts(error, false)
            }
            Failure::Auth(err) => {
                let code = err.code();
                let status =
                    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                let pgrst = match (code, status) {
                    (Code::TokenExpired, _) => "PGRST303",
                    (_, StatusCode::UNAUTHORIZED) => "PGRST301",
                    _ => code.as_str(),
                };
                ErrorParts {
                    status,
                    code: pgrst.to_owned(),
                    message: err.client_message(),
                    details: Some(Value::String(code.as_str().to_owned())),
                    hint: None,
                }
            }
        }
    }

    /// The cause for the server log: PostgreSQL's code and message, or the request error.
    fn cause(&self) -> String {
        match self {
            Failure::Request(err) => err.to_string(),
            Failure::Database { error, .. } => error.to_string(),
            Failure::Role { exists, .. } => format!("custom role refused (exists: {exists})"),
            Failure::Auth(err) => err.to_string(),
        }
    }

    /// The error response in `flavour`'s shape.
    pub fn response(&self, flavour: Flavour) -> RestResponse {
        let parts = self.parts();
        if parts.status.is_server_error() && parts.status != StatusCode::GATEWAY_TIMEOUT {
            // The cause's code and message only: a detail may quote row values.
            tracing::error!(code = %parts.code, error = %self.cause(), "rest request failed");
        }
        let (status, body) = match flavour {
            Flavour::PostgRest => (
                parts.status,
                json!({
                    "code": parts.code,
                    "details": parts.details,
                    "hint": parts.hint,
                    "message": parts.message,
                }),
            ),
            Flavour::Fluxbase => {
                // A refused credential keeps its own code (`session_not_found`…).
                let code = match self {
                    Failure::Auth(err) => err.code(),
                    _ => vocabulary(parts.status),
                };
                let message = match self {
                    Failure::Auth(err) => err.client_message(),
                    _ if code.is_private() => {
                        format!("{} ({})", code.private_message(), parts.code)
                    }
                    _ => fluxbase_message(&parts),
                };
                let status = StatusCode::from_u16(code.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (
                    status,
                    json!({"error": {"code": code.as_str(), "message": message}}),
                )
            }
        };
        let mut headers = vec![("Content-Type", "application/json; charset=utf-8".to_owned())];
        if status == StatusCode::UNAUTHORIZED {
            headers.push(("WWW-Authenticate", "Bearer".to_owned()));
        }
        RestResponse {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }
}

/// `message: details. hint (CODE)`, with the SQLSTATE spelled as such.
fn fluxbase_message(parts: &ErrorParts) -> String {
    let mut message = parts.message.clone();
    match &parts.details {
        Some(Value::String(details)) => {
            message.push_str(": ");
            message.push_str(details);
        }
        Some(other) => {
            message.push_str(": ");
            message.push_str(&other.to_string());
        }
        None => {}
    }
    if let Some(hint) = &parts.hint {
        message.push_str(". ");
        message.push_str(hint);
    }
    if parts.code.starts_with("PGRST") {
        message.push_str(&format!(" ({})", parts.code));
    } else {
        message.push_str(&format!(" (SQLSTATE {})", parts.code));
    }
    message
}

/// The vocabulary entry of a status.
fn vocabulary(status: StatusCode) -> Code {
    match status.as_u16() {
        300 | 400 => Code::BadRequest,
        401 => Code::Unauthorized,
        403 => Code::Forbidden,
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        406 => Code::NotAcceptable,
        408 => Code::RequestTimeout,
        409 => Code::Conflict,
        413 => Code::PayloadTooLarge,
        415 => Code::UnsupportedMediaType,
        416 => Code::RangeNotSatisfiable,
        503 => Code::DatabaseUnavailable,
        504 => Code::Timeout,
        _ => Code::Internal,
    }
}

/// The pieces of a database error.
fn database_parts(error: &DbError, authed: bool) -> ErrorParts {
    let unavailable = |status, code: &str, message: &str| ErrorParts {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
        details: None,
        hint: None,
    };
    match error {
        DbError::Pool(PoolError::Timeout(_)) | DbError::TimedOut(_) => unavailable(
            StatusCode::GATEWAY_TIMEOUT,
            "PGRST003",
            "Timed out acquiring connection from connection pool.",
        ),
        DbError::Pool(_) => unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            "Database connection error. Retrying the connection.",
        ),
        DbError::Query(_) => match error.db_error() {
            None => unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
                "PGRST001",
                "Database client error. Retrying the connection.",
            ),
            Some(db) => {
                let code = db.code().code();
                let status = pg_status(code, db.message(), authed);
                if status == StatusCode::INTERNAL_SERVER_ERROR || builder_fault(code) {
                    return ErrorParts {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        code: code.to_owned(),
                        message: "internal error".to_owned(),
                        details: None,
                        hint: None,
                    };
                }
                ErrorParts {
                    status,
                    code: code.to_owned(),
                    message: db.message().to_owned(),
                    details: db.detail().map(|d| Value::String(d.to_owned())),
                    hint: db.hint().map(str::to_owned),
                }
            }
        },
    }
}

/// SQLSTATEs that can only mean the builder wrote bad SQL: never the client's doing.
fn builder_fault(code: &str) -> bool {
    matches!(code, "42601" | "42P18" | "42P08" | "08P01")
}

/// PostgREST's status of a SQLSTATE (`mapSQLtoHTTP`), with 57014 (statement timeout) as
/// 504.
pub fn pg_status(code: &str, message: &str, authed: bool) -> StatusCode {
    let class = &code[..code.len().min(2)];
    match code {
        "23503" | "23505" => StatusCode::CONFLICT,
        "25006" => StatusCode::METHOD_NOT_ALLOWED,
        "21000" if message.ends_with("requires a WHERE clause") => StatusCode::BAD_REQUEST,
        "21000" => StatusCode::INTERNAL_SERVER_ERROR,
        "22023" if message.starts_with("role") && message.ends_with("does not exist") => {
            StatusCode::UNAUTHORIZED
        }
        "53400" => StatusCode::INTERNAL_SERVER_ERROR,
        "57014" => StatusCode::GATEWAY_TIMEOUT,
        "57P01" => StatusCode::SERVICE_UNAVAILABLE,
        "P0001" => StatusCode::BAD_REQUEST,
        "42883" => StatusCode::NOT_FOUND,
        "42P01" => StatusCode::NOT_FOUND,
        "42P17" => StatusCode::INTERNAL_SERVER_ERROR,
        "42501" if authed => StatusCode::FORBIDDEN,
        "42501" => StatusCode::UNAUTHORIZED,
        _ => match class {
            "08" => StatusCode::SERVICE_UNAVAILABLE,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
            | "HV" | "P0" | "XX" => StatusCode::INTERNAL_SERVER_ERROR,
            "0L" | "0P" | "28" => StatusCode::FORBIDDEN,
            "53" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgrest_status_map() {
        let cases = [
            ("23505", "", false, 409),
            ("23503", "", true, 409),
            ("23502", "", true, 400),
            ("23514", "", true, 400),
            ("22P02", "", true, 400),
            ("42501", "", false, 401),
            ("42501", "", true, 403),
            ("57014", "", true, 504),
            ("25006", "", true, 405),
            ("42P01", "", true, 404),
            ("42883", "", true, 404),
            ("42703", "", true, 400),
            ("P0001", "", true, 400),
            ("22023", "role \"x\" does not exist", true, 401),
            ("22023", "invalid value for parameter", true, 400),
            ("08006", "", true, 503),
            ("XX000", "", true, 500),
            ("40001", "", true, 500),
        ];
        for (code, message, authed, status) in cases {
            assert_eq!(pg_status(code, message, authed).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn request_errors_render_in_both_flavours() {
        let err = Failure::Request(RestError::LimitWithoutOrder);
        let pgrst = err.response(Flavour::PostgRest);
        assert_eq!(pgrst.status, StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_slice(&pgrst.body).unwrap();
        assert_eq!(body["code"], "PGRST109");
        assert!(body["details"].as_str().unwrap().contains("order="));
        let flux = err.response(Flavour::Fluxbase);
        let body: Value = serde_json::from_slice(&flux.body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.ends_with("(PGRST109)"), "{message}");
    }

    #[test]
    fn an_ambiguous_embed_is_300_on_rest_v1_and_400_on_api_v1() {
        let err = Failure::Request(
            crate::rest::CatalogError::AmbiguousRelationship {
                parent: "a".into(),
                child: "b".into(),
                candidates: vec![json!({"cardinality": "many-to-one"})],
                hints: vec!["'b!fk'".into()],
            }
            .into(),
        );
        assert_eq!(err.response(Flavour::PostgRest).status.as_u16(), 300);
        let body: Value = serde_json::from_slice(&err.response(Flavour::PostgRest).body).unwrap();
        assert!(body["details"].is_array());
        assert_eq!(err.response(Flavour::Fluxbase).status.as_u16(), 400);
    }
}
