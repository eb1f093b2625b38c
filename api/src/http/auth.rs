//! Permissions in the signature: extractors that verify the caller's JWT before a handler
//! runs, so a route cannot forget its check.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use fluxbase_auth::AuthContext;
use futures_util::future::LocalBoxFuture;

use super::AppState;
use super::middleware::RequestUser;
use crate::error::{ApiError, Code};

/// The token of a request: `Authorization: Bearer`, then the `apikey` header, then the
/// `token` / `apikey` query parameters (for WebSocket clients that cannot set headers).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string());
    }
    if let Some(value) = req.headers().get("apikey").and_then(|v| v.to_str().ok()) {
        return Some(value.trim().to_string());
    }
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()?;
    query.get("token").or_else(|| query.get("apikey")).cloned()
}

/// The service key of a request: the `X-Service-Key` header, or an `sk_…` credential in
/// the `Authorization: Bearer` or `apikey` header (never the query string, which is logged).
pub fn service_key_of(req: &HttpRequest) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(key) = header("x-service-key") {
        return Some(key.trim().to_string());
    }
    let bearer = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    [bearer, header("apikey")]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|t| fluxbase_auth::service_keys::is_service_key(t))
        .map(str::to_string)
}

/// Whether the request carries any credential (a token or a service key).
fn has_credential(req: &HttpRequest) -> bool {
    token_of(req).is_some() || service_key_of(req).is_some()
}

/// The request's context: `service_role` for a valid service key (looked up in
/// `auth.service_keys`), else that of its token (anon without one).
async fn context_of(req: HttpRequest) -> Result<AuthContext, ApiError> {
    if let Some(key) = service_key_of(&req) {
        let state = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| ApiError::new(Code::Internal, "application state missing"))?;
        return super::service_keys::authenticate(&state, &key).await;
    }
    token_context_of(&req)
}

/// Verifies the request's token (anon without one) and records the user for the log.
fn token_context_of(req: &HttpRequest) -> Result<AuthContext, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(Code::Internal, "application state missing"))?;
    let Some(token) = token_of(req) else {
        return Ok(AuthContext::anon());
    };
    let keys = state
        .keys
        .as_ref()
        .ok_or_else(|| ApiError::new(Code::Unauthorized, "token verification is not configured"))?;
    let context = keys.context(&token)?;
    if let Some(uid) = context.uid() {
        req.extensions_mut().insert(RequestUser(uid.to_string()));
    }
    Ok(context)
}

/// A caller acting as `service_role` (a service-role JWT or a service key).
#[derive(Debug)]
pub struct ServiceRole(pub AuthContext);

impl FromRequest for ServiceRole {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let ctx = context_of(req.clone()).await?;
            if ctx.bypasses_rls() {
                Ok(ServiceRole(ctx))
            } else if !has_credential(&req) {
                Err(ApiError::new(
                    Code::Unauthorized,
                    "a service_role token is required",
                ))
            } else {
                Err(ApiError::new(
                    Code::Forbidden,
                    "this endpoint needs a service_role token",
                ))
            }
        })
    }
}

/// An administrator: a dashboard admin's token (role `dashboard_admin`, audience
/// `fluxbase-dashboard`) or the `service_role`.
#[derive(Debug)]
pub struct AdminOnly(pub AuthContext);

impl FromRequest for AdminOnly {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let ctx = context_of(req.clone()).await?;
            // A dashboard token only with its own audience and role: an application user's
            // token (audience "authenticated") never passes, whatever its role claim says.
            let admin = ctx.bypasses_rls() || fluxbase_auth::dashboard::is_admin(&ctx);
            match (admin, has_credential(&req)) {
                (true, _) => Ok(AdminOnly(ctx)),
                (false, false) => Err(ApiError::new(
                    Code::Unauthorized,
                    "admin authentication required",
                )),
                (false, true) => Err(ApiError::new(Code::Forbidden, "admin role required")),
            }
        })
    }
}

/// A signed-in application user: an access token whose role and audience are
/// `authenticated`, with a subject and a session. Dashboard-admin tokens, API keys and
/// service keys are refused: they are not users.
#[derive(Debug)]
pub struct AppUser {
    /// The token's context (role `authenticated`).
    pub context: AuthContext,
    /// `auth.users.id` (`sub`).
    pub user_id: uuid::Uuid,
    /// `auth.sessions.id` (`session_id`).
    pub session_id: uuid::Uuid,
}

impl FromRequest for AppUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(app_user_of(req))
    }
}

fn app_user_of(req: &HttpRequest) -> Result<AppUser, ApiError> {
    if service_key_of(req).is_some() {
        return Err(ApiError::new(
            Code::Unauthorized,
            "a user's access token is required: service keys do not act as a user",
        ));
    }
    if token_of(req).is_none() {
        return Err(ApiError::new(
            Code::Unauthorized,
            "sign in first: no access token",
        ));
    }
    let context = token_context_of(req)?;
    let not_user = || {
        ApiError::new(
            Code::Unauthorized,
            "not an application user's access token (role and audience must be \"authenticated\")",
        )
    };
    if !fluxbase_auth::tokens::is_app_user(context.claims()) {
        return Err(not_user());
    }
    let uuid_claim = |name: &str| {
        context
            .claim(name)
            .and_then(|v| v.as_str())
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
    };
    let (Some(user_id), Some(session_id)) = (uuid_claim("sub"), uuid_claim("session_id")) else {
        return Err(not_user());
    };
    Ok(AppUser {
        context,
        user_id,
        session_id,
    })
}
