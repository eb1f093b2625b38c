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

/// Registers every v1 surface.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(realtime::routes)
        .configure(auth::routes)
        .configure(service_keys::routes)
        .configure(dashboard::routes)
        .configure(tables::routes)
        .configure(rpc::routes)
        .configure(storage::routes)
        .configure(jobs::routes);
}
