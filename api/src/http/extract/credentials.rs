//! The credential readers: where a request may carry a token or a service key.

use actix_web::{HttpRequest, web};
use fluxbase_auth::Credentials;

/// The value of `Authorization: Bearer …` (either case of `Bearer`).
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The `apikey` header (Supabase clients send their key there).
fn apikey(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The token of a request: `Authorization: Bearer`, then the `apikey` header, then the
/// `token` / `apikey` query parameters (for WebSocket clients that cannot set headers).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(token) = bearer(req).or_else(|| apikey(req)) {
        return Some(token.to_string());
    }
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()?;
    query.get("token").or_else(|| query.get("apikey")).cloned()
}

/// The service key of a request: the `X-Service-Key` header, or an `sk_…` credential in
/// the `Authorization: Bearer` or `apikey` header (never the query string, which is logged).
pub fn service_key_of(req: &HttpRequest) -> Option<String> {
    if let Some(key) = req
        .headers()
        .get("x-service-key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(key.trim().to_string());
    }
    [bearer(req), apikey(req)]
        .into_iter()
        .flatten()
        .find(|t| fluxbase_auth::service_keys::is_service_key(t))
        .map(str::to_string)
}

/// Everything the request presented: a service key wins over a token (an `sk_…` bearer is a
/// key, not a JWT).
pub fn credentials_of(req: &HttpRequest) -> Credentials {
    match service_key_of(req) {
        Some(key) => Credentials {
            token: None,
            service_key: Some(key),
        },
        None => Credentials {
            token: token_of(req),
            service_key: None,
        },
    }
}

/// [`credentials_of`] from the headers only: on the REST routes the query string holds
/// filters (`?token=eq.…` names a column), never a credential.
pub fn header_credentials_of(req: &HttpRequest) -> Credentials {
    match service_key_of(req) {
        Some(key) => Credentials {
            token: None,
            service_key: Some(key),
        },
        None => Credentials {
            token: bearer(req).or_else(|| apikey(req)).map(str::to_string),
            service_key: None,
        },
    }
}
