//! PostgREST's paths, so `@supabase/postgrest-js` (and supabase-js's `.from()` and
//! `.rpc()`) work unchanged: `/rest/v1/{table}`, `/rest/v1/rpc/{function}`, the schema by
//! `Accept-Profile` / `Content-Profile`, PostgREST's error body `{code, details, hint,
//! message}` and statuses, and `GET /rest/v1/` serving the OpenAPI description.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::rest::{self, RestPath};
use crate::http::state::AppState;
use crate::rest::Flavour;

/// Where the API is mounted (the OpenAPI `basePath`).
const BASE: &str = "/rest/v1";

/// Registers `/rest/v1*` as one scope: its static prefix is compared as a string, so the
/// app's router skips it for every other path, and a REST request meets no other route's
/// pattern (the app registers this scope before the others). `/{table}` comes first: a
/// table request is matched by one pattern (`/rpc/{function}` never matches a single
/// segment, so the order decides nothing else). Paths matching none of these fall through
/// to the app's default service, as before.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(BASE)
            .route("", web::route().to(openapi))
            .route("/", web::route().to(openapi))
            .route("/{table}", web::route().to(table))
            .route("/rpc/{function}", web::route().to(call)),
    );
}

/// A table.
async fn table(
    req: HttpRequest,
    path: web::Path<RestPath>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    rest::serve(req, path, payload, state, Flavour::PostgRest).await
}

/// A function call.
async fn call(
    req: HttpRequest,
    path: web::Path<RestPath>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    rest::serve(req, path, payload, state, Flavour::PostgRest).await
}

/// The OpenAPI description.
async fn openapi(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    rest::openapi(req, state, BASE, Flavour::PostgRest).await
}
