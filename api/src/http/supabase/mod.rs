//! The Supabase surfaces: the same services in the shapes of Supabase's servers, so
//! `@supabase/supabase-js` works unchanged. One module per surface (`rest` at `/rest/v1`,
//! `storage` at `/storage/v1`, `auth` at `/auth/v1`, `realtime` at `/realtime/v1`), each
//! registering its own scope.

pub mod auth;
pub mod errors;
pub mod realtime;
pub mod rest;
pub mod storage;

use actix_web::web;

/// Registers every Supabase surface but REST's (`rest::configure`, which the app registers
/// first).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(storage::routes)
        .configure(auth::routes)
        .configure(realtime::routes);
}
