//! REST over the tables at Fluxbase's paths, with `{"error":{"code","message"}}` errors:
//!
//! | path | resource |
//! |---|---|
//! | `GET /api/v1/tables` | the OpenAPI description of the default schema (`Accept-Profile`) |
//! | `/api/v1/tables/{table}` | a table of the default schema (`rest.schemas`' first) |
//! | `/api/v1/tables/{schema}/{table}` | a table of an exposed schema |
//! | `/api/v1/tables/{schema}/{table}/{key}` | one row by primary key: an object, 404 without it |
//!
//! Every method goes to the REST service, which answers the ones it does not serve.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::rest::{self, RestPath};
use crate::http::state::AppState;
use crate::rest::Flavour;

/// Registers `/api/v1/tables*` as one scope (a static prefix, compared as a string; the
/// app registers it before the other `/api/v1` routes, so a REST request meets no other
/// route's pattern). Paths matching none of these fall through to the app's default
/// service, as before.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/tables")
            .route("", web::route().to(openapi))
            .route("/", web::route().to(openapi))
            .route("/{table}", web::route().to(table))
            .route("/{schema}/{table}", web::route().to(table))
            .route("/{schema}/{table}/{key}", web::route().to(table)),
    );
}

/// A table or one of its rows.
async fn table(
    req: HttpRequest,
    path: web::Path<RestPath>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    rest::serve(req, path, payload, state, Flavour::Fluxbase).await
}

/// The OpenAPI description, paths relative to `/api/v1/tables`.
async fn openapi(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    rest::openapi(req, state, "/api/v1/tables", Flavour::Fluxbase).await
}
