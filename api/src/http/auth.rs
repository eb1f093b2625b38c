//! Permissions in the signature: extractors that verify the caller's JWT before a handler
//! runs, so a route cannot forget its check.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use fluxbase_auth::AuthContext;

use super::AppState;
use super::middleware::RequestUser;
use crate::error::{ApiError, ErrorCode};

/// The token of a request: `Authorization: Bearer`, then the `apikey` header, then the
/// `token` / `apikey` query parameters (for WebSocket clients that cannot set headers).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(token.trim().to_string());
        }
    }
    if let Some(value) = req.headers().get("apikey").and_then(|v| v.to_str().ok()) {
        return Some(value.trim().to_string());
    }
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string()).ok()?;
    query.get("token").or_else(|| query.get("apikey")).cloned()
}

/// Verifies the request's token (anon without one) and records the user for the log.
fn context_of(req: &HttpRequest) -> Result<AuthContext, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "application state missing"))?;
    let Some(token) = token_of(req) else {
        return Ok(AuthContext::anon());
    };
    let keys = state
        .keys
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "token verification is not configured"))?;
    let context = keys.context(&token).map_err(|err| {
        ApiError::new(
            match err {
                fluxbase_auth::JwtError::Expired => ErrorCode::TokenExpired,
                fluxbase_auth::JwtError::Invalid(_) => ErrorCode::Unauthorized,
            },
            err.to_string(),
        )
    })?;
    if let Some(uid) = context.uid() {
        req.extensions_mut().insert(RequestUser(uid.to_string()));
    }
    Ok(context)
}

/// A caller acting as `service_role` (a service-role JWT).
#[derive(Debug)]
pub struct ServiceRole(pub AuthContext);

impl FromRequest for ServiceRole {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context_of(req).and_then(|ctx| {
            if ctx.bypasses_rls() {
                Ok(ServiceRole(ctx))
            } else if token_of(req).is_none() {
                Err(ApiError::new(ErrorCode::Unauthorized, "a service_role token is required"))
            } else {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this endpoint needs a service_role token",
                ))
            }
        }))
    }
}

/// An administrator: a `dashboard_admin` token or the `service_role`.
#[derive(Debug)]
pub struct AdminOnly(pub AuthContext);

impl FromRequest for AdminOnly {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context_of(req).and_then(|ctx| {
            let admin = ctx.bypasses_rls() || ctx.role().as_str() == "dashboard_admin";
            match (admin, token_of(req).is_some()) {
                (true, _) => Ok(AdminOnly(ctx)),
                (false, false) => Err(ApiError::new(ErrorCode::Unauthorized, "admin authentication required")),
                (false, true) => Err(ApiError::new(ErrorCode::Forbidden, "admin role required")),
            }
        }))
    }
}
