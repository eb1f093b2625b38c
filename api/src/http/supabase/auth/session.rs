//! Sessions in GoTrue's shapes: `POST /signup`, `POST /token?grant_type=password|
//! refresh_token`, `GET`/`PUT /user`, `POST /logout?scope=`, and `GET /settings`,
//! `GET /health`.

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::audit::{Attempt, count_attempt};
use fluxbase_auth::{MetadataMerge, Realm, SignOutScope, SignUp, SignedUp, UserUpdate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Context, GoTrueError};
use super::{links, no_pkce, query_param, record_of, with_record};
use crate::http::extract::{Guard, Json, OptionalJson, Peer, User};
use crate::http::resource::{get, post, resource};
use crate::http::state::AppState;

/// Registers the session routes (inside the `/auth/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post("/signup", signup))
        .service(post("/token", token))
        .service(
            resource("/user")
                .route(web::get().to(get_user))
                .route(web::put().to(update_user)),
        )
        .service(post("/logout", logout))
        .service(get("/settings", settings))
        .service(get("/health", health));
}

/// `POST /signup` body (auth-js's fields; others are ignored, as GoTrue does).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignupBody {
    email: Option<String>,
    password: Option<String>,
    phone: Option<String>,
    data: Option<Value>,
    code_challenge: Option<String>,
}

/// `POST /signup` → a session when the address counts as confirmed at once, else the
/// account waiting for its confirmation (the user object itself, as GoTrue answers).
async fn signup(
    req: HttpRequest,
    body: Json<SignupBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    no_pkce(body.code_challenge.as_deref())?;
    if body.phone.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(GoTrueError::no_phone());
    }
    let (email, password) = match (body.email, body.password) {
        (None, None) => {
            return Err(GoTrueError::new(
                422,
                "anonymous_provider_disabled",
                "Anonymous sign-ins are disabled",
            ));
        }
        (Some(e), Some(p)) => (e, p),
        (None, Some(_)) => return Err(GoTrueError::validation("invalid field `email`: required")),
        (Some(_), None) => {
            return Err(GoTrueError::validation(
                "invalid field `password`: required",
            ));
        }
    };
    let links = links(&req, &state, query_param(&req, "redirect_to").as_deref());
    let request = SignUp {
        email,
        password,
        data: body.data,
    };
    let outcome = state
        .auth
        .register(request, &links, &peer.0)
        .await
        .map_err(|e| GoTrueError::from_auth(e, Context::Signup))?;
    match outcome {
        SignedUp::Session(grant) => Ok(HttpResponse::Ok().json(with_record(&state, grant).await?)),
        SignedUp::Pending { user } => Ok(HttpResponse::Ok().json(record_of(&state, user).await?)),
    }
}

/// `POST /token` body: the fields of both grants.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

/// `POST /token?grant_type=password|refresh_token` → a session.
async fn token(
    req: HttpRequest,
    body: OptionalJson<TokenBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    let grant = match query_param(&req, "grant_type").as_deref() {
        Some("password") => {
            if body.phone.as_deref().is_some_and(|p| !p.is_empty()) {
                return Err(GoTrueError::no_phone());
            }
            let email = body
                .email
                .ok_or_else(|| GoTrueError::validation("missing email or phone"))?;
            let password = body
                .password
                .ok_or_else(|| GoTrueError::validation("invalid field `password`: required"))?;
            let email = fluxbase_auth::email::presented(&email)?;
            fluxbase_auth::password::check_presented(&password)?;
            if let Err(err) = state.limiters.check_login(peer.0.ip, &email) {
                count_attempt(Attempt::Failure, "rate_limited");
                return Err(err.into());
            }
            state.auth.sign_in(&email, password, &peer.0).await?
        }
        Some("refresh_token") => {
            let presented = body
                .refresh_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| GoTrueError::validation("refresh_token required"))?;
            state.auth.refresh(Realm::App, &presented, &peer.0).await?
        }
        Some("pkce") => {
            return Err(GoTrueError::validation(
                "the PKCE flow is not supported: create the client with flowType 'implicit'",
            ));
        }
        _ => {
            return Err(GoTrueError::new(
                400,
                "invalid_credentials",
                "unsupported_grant_type: use grant_type=password or grant_type=refresh_token",
            ));
        }
    };
    Ok(HttpResponse::Ok().json(with_record(&state, grant).await?))
}

/// `GET /user` → the signed-in user.
async fn get_user(
    user: Guard<User>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    // The session check is the guard's; the record may have gone since.
    let record = state.auth.user_record(user.user_id).await?.ok_or_else(|| {
        GoTrueError::new(
            403,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        )
    })?;
    Ok(HttpResponse::Ok().json(record))
}

/// `PUT /user` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Value>,
    phone: Option<String>,
    app_metadata: Option<Value>,
    code_challenge: Option<String>,
}

/// `PUT /user {email?, password?, data?}` → the updated user. `data` is merged key by key (a
/// `null` removes the key); a new password ends the user's other sessions; with
/// `auth.email_confirmation` on, a new address waits for the link sent to it (`new_email`).
async fn update_user(
    req: HttpRequest,
    user: Guard<User>,
    body: Json<UserBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    no_pkce(body.code_challenge.as_deref())?;
    if body.app_metadata.is_some() {
        return Err(GoTrueError::new(
            403,
            "not_admin",
            "Updating app_metadata requires admin privileges",
        ));
    }
    if body.phone.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(GoTrueError::no_phone());
    }
    let links = links(&req, &state, query_param(&req, "redirect_to").as_deref());
    let update = UserUpdate {
        email: body.email,
        password: body.password,
        data: body.data,
    };
    let updated = state
        .auth
        .update_profile(&user, update, MetadataMerge::NullDeletes, &links, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(record_of(&state, updated).await?))
}

/// `POST /logout?scope=global|local|others` (GoTrue's default: global) → 204.
async fn logout(
    req: HttpRequest,
    user: Guard<User>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let scope = match query_param(&req, "scope") {
        None => SignOutScope::Global,
        Some(text) => SignOutScope::parse(&text)
            .ok_or_else(|| GoTrueError::validation(format!("Unsupported logout scope {text:?}")))?,
    };
    state.auth.sign_out(&user, scope, &peer.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /settings`: what this server offers.
async fn settings(state: web::Data<AppState>) -> HttpResponse {
    let autoconfirm = !state.auth.settings().email.confirmation_required;
    HttpResponse::Ok().json(json!({
        "external": {
            "email": true,
            "phone": false,
            "anonymous_users": false,
            "apple": false, "azure": false, "bitbucket": false, "discord": false,
            "facebook": false, "figma": false, "github": false, "gitlab": false,
            "google": false, "keycloak": false, "kakao": false, "linkedin_oidc": false,
            "notion": false, "slack_oidc": false, "spotify": false, "twitch": false,
            "twitter": false, "workos": false, "zoom": false,
        },
        "disable_signup": false,
        "mailer_autoconfirm": autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
    }))
}

/// `GET /health`.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "Fluxbase's GoTrue-compatible auth API over its one auth service",
    }))
}
