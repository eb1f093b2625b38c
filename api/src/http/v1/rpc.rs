//! Function calls at Fluxbase's paths: `/api/v1/rpc/{function}` (the default schema) and
//! `/api/v1/rpc/{schema}/{function}`; GET with query-string arguments for functions that
//! do not write, POST with named JSON arguments (or one unnamed JSON argument).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::rest::{self, RestPath};
use crate::http::state::AppState;
use crate::rest::Flavour;

/// Registers `/api/v1/rpc/*` as one scope (a static prefix, compared as a string; the app
/// registers it before the other `/api/v1` routes).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/rpc")
            .route("/{function}", web::route().to(call))
            .route("/{schema}/{function}", web::route().to(call)),
    );
}

/// A function call.
async fn call(
    req: HttpRequest,
    path: web::Path<RestPath>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    rest::serve(req, path, payload, state, Flavour::Fluxbase).await
}
