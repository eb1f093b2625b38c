//! The Fluxbase paths (`/api/v1/…`, `/dashboard/auth/…`, `/realtime`), one module per
//! surface.

pub mod auth;
pub mod dashboard;
pub mod jobs;
pub mod realtime;
pub mod rpc;
pub mod service_keys;
pub mod storage;
pub mod tables;

use actix_web::web;

/// Registers every v1 surface but REST's (`tables`, `rpc`: see [`rest_routes`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(realtime::routes)
        .configure(auth::routes)
        .configure(service_keys::routes)
        .configure(dashboard::routes)
        .configure(storage::routes)
        .configure(jobs::routes);
}

/// Registers the REST surfaces (`/api/v1/tables`, `/api/v1/rpc`): the app registers them
/// first, as the busiest routes, so their requests are not matched against every other
/// route's pattern first.
pub fn rest_routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(tables::routes).configure(rpc::routes);
}
