//! Supabase's paths over the same services and guards, so supabase-js works unchanged.

pub mod rest;

use actix_web::web;

/// Registers every Supabase surface.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(rest::configure);
}
