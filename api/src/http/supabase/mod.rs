//! The Supabase surfaces: the same services in the shapes of Supabase's servers, so
//! `@supabase/supabase-js` works unchanged. One module per surface (`storage` at
//! `/storage/v1`; `rest`, `auth` and `realtime` to come).

pub mod storage;

use actix_web::web;

/// Registers every Supabase surface.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(storage::routes);
}
