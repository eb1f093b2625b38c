//! Application users, `/api/v1/auth/*`: signup, signin, refresh, signout and the signed-in
//! user's record. Each handler parses, calls [`AuthService`](fluxbase_auth::AuthService) and
//! shapes the answer; the login rate limit is applied here, before the password is checked.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::audit::{Attempt, count_attempt};
use fluxbase_auth::{Realm, SignOutScope, SignUp, UserUpdate};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, Code};
use crate::http::extract::{Guard, Json, Peer, User};
use crate::http::resource::{post, resource};
use crate::http::state::AppState;

/// Registers `/api/v1/auth/*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    metrics::describe_counter!(
        "fluxbase_auth_attempts_total",
        "Sign-in, signup and refresh attempts by result and reason"
    );
    cfg.service(post("/api/v1/auth/signup", signup))
        .service(post("/api/v1/auth/signin", signin))
        .service(post("/api/v1/auth/refresh", refresh))
        .service(post("/api/v1/auth/signout", signout))
        .service(
            resource("/api/v1/auth/user")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user))
                .route(web::put().to(update_user)),
        );
}

/// `signup` and `signin` bodies. Supabase clients' extra fields are accepted and ignored;
/// any other field is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
    /// `user_metadata` at signup (Supabase calls it `data`).
    #[serde(default, alias = "user_metadata")]
    data: Option<Value>,
    /// Sent by supabase-js (captcha); unused.
    #[serde(default)]
    #[allow(dead_code)]
    gotrue_meta_security: Option<Value>,
}

/// `refresh` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    pub(crate) refresh_token: String,
}

/// `PATCH /api/v1/auth/user` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserUpdateBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "user_metadata")]
    data: Option<Value>,
}

/// `POST /api/v1/auth/signup {email, password, data?}` → a signed-in session.
async fn signup(
    body: Json<Credentials>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = SignUp {
        email: body.email,
        password: body.password,
        data: body.data,
    };
    let grant = state.auth.sign_up(request, &peer.0).await?;
    Ok(HttpResponse::Ok().json(grant))
}

/// `POST /api/v1/auth/signin {email, password}` → a new session.
async fn signin(
    body: Json<Credentials>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.data.is_some() {
        return Err(ApiError::new(
            Code::BadRequest,
            "invalid request body: unknown field `data` (metadata is set at signup or with PATCH /api/v1/auth/user)",
        ));
    }
    let email = fluxbase_auth::email::presented(&body.email)?;
    fluxbase_auth::password::check_presented(&body.password)?;
    if let Err(err) = state.limiters.check_login(peer.0.ip, &email) {
        count_attempt(Attempt::Failure, "rate_limited");
        return Err(err);
    }
    let grant = state.auth.sign_in(&email, body.password, &peer.0).await?;
    Ok(HttpResponse::Ok().json(grant))
}

/// `POST /api/v1/auth/refresh {refresh_token}` → new tokens; the presented one is spent.
async fn refresh(
    body: Json<RefreshBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let grant = state
        .auth
        .refresh(Realm::App, &body.0.refresh_token, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(grant))
}

/// `POST /api/v1/auth/signout[?scope=local|global|others]` → 204.
async fn signout(
    req: HttpRequest,
    user: Guard<User>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::new(Code::BadRequest, "invalid query string"))?;
    let scope = match query.get("scope") {
        None => SignOutScope::Local,
        Some(text) => SignOutScope::parse(text).ok_or_else(|| {
            ApiError::new(
                Code::BadRequest,
                "invalid parameter `scope`: expected local, global or others",
            )
        })?,
    };
    state.auth.sign_out(&user, scope, &peer.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/auth/user` → the signed-in user.
async fn get_user(user: Guard<User>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.auth.user(&user).await?))
}

/// `PATCH /api/v1/auth/user {email?, password?, data?}` → the updated user.
async fn update_user(
    user: Guard<User>,
    body: Json<UserUpdateBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let update = UserUpdate {
        email: body.email,
        password: body.password,
        data: body.data,
    };
    let updated = state.auth.update_user(&user, update, &peer.0).await?;
    Ok(HttpResponse::Ok().json(updated))
}
