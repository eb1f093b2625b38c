//! Dashboard administrators, `/dashboard/auth/*`: signup (the first admin without
//! credentials, later ones by an admin), login (with lockout, and 2FA's second step),
//! refresh, logout, me, and TOTP enrolment. Thin: the rules live in the auth service.

use actix_web::{HttpResponse, web};
use fluxbase_auth::{AdminSignUp, LoginOutcome, Realm};
use serde::Deserialize;
use serde_json::json;

use super::auth::RefreshBody;
use crate::error::ApiError;
use crate::http::extract::{Anyone, DashboardAdmin, Guard, Json, Peer};
use crate::http::resource::{get, post};
use crate::http::state::AppState;

/// Registers the dashboard auth routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post("/dashboard/auth/signup", signup))
        .service(post("/dashboard/auth/login", login))
        .service(post("/dashboard/auth/refresh", refresh))
        .service(post("/dashboard/auth/logout", logout))
        .service(get("/dashboard/auth/me", me))
        .service(post("/dashboard/auth/2fa/setup", setup))
        .service(post("/dashboard/auth/2fa/enable", enable))
        .service(post("/dashboard/auth/2fa/verify", verify))
        .service(post("/dashboard/auth/2fa/disable", disable));
}

/// `signup` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    full_name: Option<String>,
}

/// `login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

/// `2fa/enable` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnableBody {
    code: String,
}

/// `2fa/verify` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    mfa_token: String,
    code: String,
}

/// `2fa/disable` body: the password, a code, or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Creates an admin → 201 `{user}`.
async fn signup(
    body: Json<SignupBody>,
    caller: Guard<Anyone>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = AdminSignUp {
        email: body.email,
        password: body.password,
        full_name: body.full_name,
    };
    let user = state.auth.admin_sign_up(&caller, request, &peer.0).await?;
    Ok(HttpResponse::Created().json(json!({"user": user})))
}

/// Email + password → tokens, or `{requires_2fa, mfa_token, expires_in}`.
async fn login(
    body: Json<LoginBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = fluxbase_auth::email::presented(&body.email)?;
    fluxbase_auth::password::check_presented(&body.password)?;
    state.limiters.check_login(peer.0.ip, &email)?;
    Ok(
        match state
            .auth
            .admin_login(&email, body.password, &peer.0)
            .await?
        {
            LoginOutcome::Granted(grant) => HttpResponse::Ok().json(grant),
            LoginOutcome::TwoFactorRequired {
                mfa_token,
                expires_in,
            } => HttpResponse::Ok().json(json!({
                "requires_2fa": true,
                "mfa_token": mfa_token,
                "expires_in": expires_in,
            })),
        },
    )
}

/// Rotates a refresh token.
async fn refresh(
    body: Json<RefreshBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let grant = state
        .auth
        .refresh(Realm::Dashboard, &body.0.refresh_token, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(grant))
}

/// Ends the caller's session → 204.
async fn logout(
    admin: Guard<DashboardAdmin>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin_logout(&admin, &peer.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account → `{user}`.
async fn me(
    admin: Guard<DashboardAdmin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = state.auth.admin_me(&admin).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Starts TOTP enrolment → secret and `otpauth://` URL.
async fn setup(
    admin: Guard<DashboardAdmin>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.auth.two_factor_setup(&admin, &peer.0).await?))
}

/// Confirms enrolment → the backup codes, shown once.
async fn enable(
    admin: Guard<DashboardAdmin>,
    body: Json<EnableBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let answer = state
        .auth
        .two_factor_enable(&admin, &body.0.code, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The second login step → tokens.
async fn verify(
    body: Json<VerifyBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let grant = state
        .auth
        .two_factor_verify(&body.mfa_token, &body.code, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(grant))
}

/// Turns 2FA off.
async fn disable(
    admin: Guard<DashboardAdmin>,
    body: Json<DisableBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let answer = state
        .auth
        .two_factor_disable(&admin, body.password, body.code.as_deref(), &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}
