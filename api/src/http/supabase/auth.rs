//! `/auth/v1`: GoTrue's API (the one `@supabase/auth-js` speaks) over the one auth service —
//! the same users, sessions, refresh rotation, password policy, audit and tokens as
//! `/api/v1/auth/*`, in GoTrue's paths, bodies, statuses and error codes.
//!
//! - [`session`]: `/signup`, `/token?grant_type=password|refresh_token`, `/user`,
//!   `/logout`, `/settings`, `/health`;
//! - [`email`]: `/recover`, `/otp`, `/resend`, `/verify` (POST, and the GET of links);
//! - [`admin`]: `/admin/users[/{id}]`, `/admin/generate_link`, `/invite` (service role);
//! - [`error`] and [`shape`]: GoTrue's error bodies, in the API version asked for.
//!
//! Bodies are read like GoTrue reads them: unknown fields are ignored (auth-js sends
//! `gotrue_meta_security`, `code_challenge`…), wrong types and NUL characters are refused
//! naming the field. Only the implicit flow is offered: a PKCE request is refused with a
//! clear `validation_failed`; phone numbers are not offered (`phone_provider_disabled`).

mod admin;
mod email;
pub mod error;
mod session;
pub mod shape;

pub use shape::gotrue_errors;

use actix_web::{HttpRequest, web};
use fluxbase_auth::{Grant, Links};
use serde_json::Value;
use uuid::Uuid;

use self::error::GoTrueError;
use crate::http::resource;
use crate::http::state::AppState;

/// Registers `/auth/v1/*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    metrics::describe_counter!(
        "fluxbase_auth_emails_total",
        "Emails of the auth flow by kind and result (sent, failed, dropped, logged)"
    );
    cfg.service(
        web::scope("/auth/v1")
            .configure(session::routes)
            .configure(email::routes)
            .configure(admin::routes)
            .default_service(web::to(resource::not_found)),
    );
}

/// A query parameter.
fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()?
        .get(name)
        .filter(|v| !v.is_empty())
        .cloned()
}

/// The links of the emails a request causes: `/auth/v1/verify` under `server.base_url`
/// (or, unset, this request's scheme and host), landing on `redirect_to` when allowed.
fn links(req: &HttpRequest, state: &AppState, redirect_to: Option<&str>) -> Links {
    let info = req.connection_info();
    let fallback = format!("{}://{}/auth/v1/verify", info.scheme(), info.host());
    state.auth.links(Some(&fallback), redirect_to)
}

/// Refuses a PKCE request (`code_challenge` set): only the implicit flow is offered.
fn no_pkce(code_challenge: Option<&str>) -> Result<(), GoTrueError> {
    match code_challenge {
        Some(c) if !c.is_empty() => Err(GoTrueError::validation(
            "the PKCE flow is not supported: create the client with flowType 'implicit'",
        )),
        _ => Ok(()),
    }
}

/// GoTrue's full JSON of the account `user` describes (itself when it has no such account:
/// the look-alike of a repeated sign-up).
async fn record_of(state: &AppState, user: Value) -> Result<Value, GoTrueError> {
    let id = user["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
    match id {
        Some(id) => Ok(state.auth.user_record(id).await?.unwrap_or(user)),
        None => Ok(user),
    }
}

/// A grant with GoTrue's full JSON of its user.
async fn with_record(state: &AppState, mut grant: Grant) -> Result<Grant, GoTrueError> {
    let user = std::mem::take(&mut grant.user);
    grant.user = record_of(state, user).await?;
    Ok(grant)
}
