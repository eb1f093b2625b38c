//! The REST service over HTTP, shared by its two mounts: Fluxbase's paths (`v1::tables`,
//! `v1::rpc`) and PostgREST's (`supabase::rest`). A route only names its [`Flavour`] and
//! the shape of its path; everything else happens here:
//!
//! - **the caller**, from the headers only (`Authorization: Bearer`, `apikey`,
//!   `X-Service-Key`; the query string holds filters, never a credential). An application
//!   user's token is verified here (signature, `exp`, `nbf`) and its session is asserted by
//!   the request's own transaction ([`SessionCheck::InTransaction`]): a user's request stays
//!   one round trip, and an ended session is still refused (401 `session_not_found`) before
//!   its statement runs. A token naming no session is verified once, here. Every other
//!   credential (service keys, admin tokens, none) goes through the auth service whole, as
//!   on every other route;
//! - **the path**, percent-decoded whole (`%2F` included) by actix's path deserializer;
//! - **the body**, read up to `rest.body_limit` (413 beyond, 408 when it stalls);
//! - **the answer**, success or error, in the flavour's shape.

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use fluxbase_auth::{AuthContext, AuthError, AuthService};
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

use super::extract::credentials::header_credentials_of;
use super::middleware::observe::RequestUser;
use super::state::AppState;
use crate::rest::{Failure, Flavour, Resource, RestCall, RestError, RestResponse, SessionCheck};

/// The named segments of a REST route, percent-decoded; which are present depends on the
/// route (`/rest/v1/{table}`, `/api/v1/tables/{schema}/{table}/{key}`, `…/rpc/{function}`).
#[derive(Debug, Deserialize)]
pub struct RestPath {
    /// `{schema}` (Fluxbase paths only).
    schema: Option<String>,
    /// `{table}`.
    table: Option<String>,
    /// `{key}`: a primary-key value.
    key: Option<String>,
    /// `{function}`.
    function: Option<String>,
}

impl RestPath {
    /// The resource the path names.
    fn resource(&self) -> Resource<'_> {
        match (&self.function, &self.table) {
            (Some(name), _) => Resource::Function {
                schema: self.schema.as_deref(),
                name,
            },
            (None, table) => Resource::Table {
                schema: self.schema.as_deref(),
                name: table.as_deref().unwrap_or_default(),
                key: self.key.as_deref(),
            },
        }
    }
}

/// Answers a request on a table or function route.
pub async fn serve(
    req: HttpRequest,
    path: web::Path<RestPath>,
    payload: web::Payload,
    state: web::Data<AppState>,
    flavour: Flavour,
) -> HttpResponse {
    let Some(rest) = &state.rest else {
        return not_running(flavour);
    };
    let (auth, session) = match caller(&req, &state.auth).await {
        Ok(found) => found,
        Err(err) => return Failure::Auth(err).response(flavour).into_http(),
    };
    let limit = state.config.rest_body_limit();
    let body = match read_body(&req, payload, limit).await {
        Ok(body) => body,
        Err(err) => return Failure::Request(err).response(flavour).into_http(),
    };
    let call = RestCall::from_http(&req, path.resource(), &body);
    rest.handle_checked(call, &auth, session, flavour)
        .await
        .into_http()
}

/// Answers `GET`/`HEAD` on an API's root with the OpenAPI description of the schema
/// `Accept-Profile` names; other methods are PGRST117. The credential is checked whole
/// (the description itself does not depend on it, a refused credential is still refused).
pub async fn openapi(
    req: HttpRequest,
    state: web::Data<AppState>,
    base_path: &str,
    flavour: Flavour,
) -> HttpResponse {
    let Some(rest) = &state.rest else {
        return not_running(flavour);
    };
    if let Err(err) = state.auth.identify(&header_credentials_of(&req)).await {
        return Failure::Auth(err).response(flavour).into_http();
    }
    let method = req.method().as_str();
    if !matches!(method, "GET" | "HEAD") {
        let err = RestError::UnsupportedMethod {
            method: crate::rest::snippet(method),
        };
        return Failure::Request(err).response(flavour).into_http();
    }
    let profile = req
        .headers()
        .get("accept-profile")
        .and_then(|v| v.to_str().ok());
    let mut response = rest.openapi(profile, base_path, flavour);
    if method == "HEAD" {
        response.body = Bytes::new();
    }
    response.into_http()
}

/// Who the request runs as, and whether its transaction still has to assert the session.
async fn caller(
    req: &HttpRequest,
    auth: &AuthService,
) -> Result<(AuthContext, SessionCheck), AuthError> {
    let credentials = header_credentials_of(req);
    let found = match (&credentials.service_key, &credentials.token) {
        (None, Some(token)) => {
            let context = auth.keys()?.context(token)?;
            if app_user(&context) {
                Some((context, SessionCheck::InTransaction))
            } else if fluxbase_auth::dashboard::is_admin(&context) {
                // An admin token's session is checked by the auth service.
                None
            } else {
                // A token naming no session (`sub` and `role` only, or minted with the
                // secret): the auth service would verify it again and return this same
                // context (`identify_token`); verified once is enough.
                Some((context, SessionCheck::Done))
            }
        }
        _ => None,
    };
    let (context, session) = match found {
        Some(found) => found,
        // Service keys, admin tokens, API keys, anon: the auth service's whole check.
        None => (
            auth.identify(&credentials).await?.context().clone(),
            SessionCheck::Done,
        ),
    };
    if let Some(uid) = context.uid() {
        req.extensions_mut().insert(RequestUser(uid.to_owned()));
    }
    Ok((context, session))
}

/// An application user's token as the auth service issues them (role and audience
/// `authenticated`, uuid `sub` and `session_id`): the tokens whose session the auth
/// service would look up, and the request's transaction asserts instead.
fn app_user(context: &AuthContext) -> bool {
    let uuid = |name: &str| {
        context
            .claim(name)
            .and_then(|v| v.as_str())
            .is_some_and(|s| Uuid::parse_str(s).is_ok())
    };
    fluxbase_auth::tokens::is_app_user(context.claims()) && uuid("sub") && uuid("session_id")
}

/// The body, at most `limit` bytes: refused at once when `Content-Length` says more,
/// else as soon as more arrives.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
) -> Result<Bytes, RestError> {
    let too_large = RestError::PayloadTooLarge { limit };
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let capacity = announced.unwrap_or(0).min(limit);
    let mut body = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| match err {
            actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                RestError::BodyTimeout
            }
            other => RestError::InvalidBody {
                reason: format!("the request body could not be read: {other}"),
            },
        })?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// 503 when the server runs without a schema cache (in-process tests of other surfaces).
fn not_running(flavour: Flavour) -> HttpResponse {
    let message = "the REST API is not running: no schema cache";
    let body = match flavour {
        Flavour::PostgRest => serde_json::json!({
            "code": "PGRST002",
            "details": null,
            "hint": null,
            "message": message,
        }),
        Flavour::Fluxbase => {
            serde_json::json!({"error": {"code": "service_unavailable", "message": message}})
        }
    };
    RestResponse {
        status: StatusCode::SERVICE_UNAVAILABLE,
        headers: vec![("Content-Type", "application/json; charset=utf-8".to_owned())],
        body: Bytes::from(body.to_string()),
    }
    .into_http()
}
