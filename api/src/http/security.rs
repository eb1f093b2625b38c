//! Protections around every request: rate limits, security headers, CORS, CSRF.
//! (Being written; `check_login` is the API the auth routes call.)

use std::net::IpAddr;

use super::AppState;
use crate::error::ApiError;

/// Login attempts: 5 per 15 minutes per (client IP, account). Call before checking the
/// password; a refusal is a 429 with `Retry-After`, counted in
/// `fluxbase_rate_limit_hits_total{scope="login"}`.
pub fn check_login(state: &AppState, ip: IpAddr, account: &str) -> Result<(), ApiError> {
    let _ = (state, ip, account);
    Ok(())
}
