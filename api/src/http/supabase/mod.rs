//! Supabase's shapes over the same services, so `@supabase/supabase-js` works unchanged:
//! one module per surface, each registering its own scope.

pub mod auth;

use actix_web::web;

/// Registers every Supabase surface.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(auth::routes);
}
