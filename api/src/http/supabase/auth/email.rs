//! The email flow in GoTrue's shapes: `POST /recover`, `POST /otp`, `POST /resend`,
//! `POST /verify` (code or `token_hash`, answers a session) and `GET /verify` (the link in
//! an email: a 303 to the allowed `redirect_to` or `auth.site_url` with the session — or
//! the error — in the URL fragment, as auth-js's `detectSessionInUrl` reads it).

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::verification::encode;
use fluxbase_auth::{Grant, Proof, VerifyType};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Context, GoTrueError};
use super::{links, no_pkce, query_param, with_record};
use crate::http::extract::{Json, Peer};
use crate::http::resource::{post, resource};
use crate::http::state::AppState;

/// Registers the email-flow routes (inside the `/auth/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post("/recover", recover))
        .service(post("/otp", otp))
        .service(post("/resend", resend))
        .service(
            resource("/verify")
                .route(web::post().to(verify_post))
                .route(web::get().to(verify_get)),
        );
}

/// The body of `/recover`, `/otp` and `/resend`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmailBody {
    email: Option<String>,
    phone: Option<String>,
    data: Option<Value>,
    create_user: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code_challenge: Option<String>,
}

impl EmailBody {
    /// The address (phone numbers are not offered).
    fn address(&self) -> Result<&str, GoTrueError> {
        if self.phone.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(GoTrueError::no_phone());
        }
        no_pkce(self.code_challenge.as_deref())?;
        self.email
            .as_deref()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| GoTrueError::validation("invalid field `email`: required"))
    }
}

/// `POST /recover {email}` → `{}`; a recovery link and code are emailed to an existing
/// account (an unknown address gets the same answer and nothing is sent).
async fn recover(
    req: HttpRequest,
    body: Json<EmailBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let address = body.address()?;
    let links = links(&req, &state, query_param(&req, "redirect_to").as_deref());
    state
        .auth
        .request_recovery(address, &links, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// `POST /otp {email, create_user?, data?}` → `{}`; a magic link and code are emailed (a
/// confirmation to an unconfirmed or new account; a new one is created unless
/// `create_user` is false, which answers 422 `otp_disabled` for an unknown address).
async fn otp(
    req: HttpRequest,
    body: Json<EmailBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    let address = body.address()?.to_string();
    let links = links(&req, &state, query_param(&req, "redirect_to").as_deref());
    state
        .auth
        .request_magic_link(
            &address,
            body.create_user.unwrap_or(true),
            body.data,
            &links,
            &peer.0,
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// `POST /resend {type: "signup", email}` → `{}`; the confirmation is sent again to an
/// unconfirmed account.
async fn resend(
    req: HttpRequest,
    body: Json<EmailBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let address = body.address()?;
    if body.kind.as_deref() != Some("signup") {
        return Err(GoTrueError::validation(
            "invalid field `type`: only `signup` confirmations can be re-sent",
        ));
    }
    let links = links(&req, &state, query_param(&req, "redirect_to").as_deref());
    state
        .auth
        .resend_confirmation(address, &links, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// `POST /verify` body: `{type, email, token}` (a code) or `{type, token_hash}` (a link).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
    token_hash: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// The verification type of `text`.
fn verify_type(text: Option<&str>) -> Result<VerifyType, GoTrueError> {
    match text {
        None | Some("") => Err(GoTrueError::validation(
            "Verify requires a verification type",
        )),
        Some("sms" | "phone_change") => Err(GoTrueError::no_phone()),
        Some(t) => VerifyType::parse(t)
            .ok_or_else(|| GoTrueError::validation(format!("Unsupported verification type {t:?}"))),
    }
}

/// `POST /verify` → a session (`PASSWORD_RECOVERY` / `SIGNED_IN` in auth-js), or 403
/// `otp_expired` for a wrong, spent or expired token.
async fn verify_post(
    body: Json<VerifyBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    let kind = verify_type(body.kind.as_deref())?;
    if body.phone.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(GoTrueError::no_phone());
    }
    let token = body.token.filter(|t| !t.is_empty());
    let token_hash = body.token_hash.filter(|t| !t.is_empty());
    let (proof, context) = match (&token, &token_hash) {
        (Some(code), None) => {
            let email = body
                .email
                .as_deref()
                .filter(|e| !e.is_empty())
                .ok_or_else(|| {
                    GoTrueError::validation(
                        "a `token` (code) is verified with the `email` it was sent to",
                    )
                })?;
            (Proof::Code { email, code }, Context::General)
        }
        (None, Some(hash)) => (Proof::Link { token: hash }, Context::Link),
        _ => {
            return Err(GoTrueError::validation(
                "Verify requires either a token or a token hash",
            ));
        }
    };
    let grant = state
        .auth
        .verify(kind, proof, &peer.0)
        .await
        .map_err(|e| GoTrueError::from_auth(e, context))?;
    Ok(HttpResponse::Ok().json(with_record(&state, grant).await?))
}

/// `target#key=value&…`, the values percent-encoded.
fn fragment_url(target: &str, pairs: &[(&str, String)]) -> String {
    let fragment: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{target}#{}", fragment.join("&"))
}

/// The fragment of a session, as GoTrue writes it (`AsRedirectURL`).
fn session_fragment(grant: &Grant, kind: VerifyType) -> Vec<(&'static str, String)> {
    vec![
        ("access_token", grant.access_token.clone()),
        ("expires_at", grant.expires_at.to_string()),
        ("expires_in", grant.expires_in.to_string()),
        ("refresh_token", grant.refresh_token.clone()),
        ("token_type", grant.token_type.to_string()),
        ("type", kind.as_str().to_string()),
    ]
}

/// `GET /verify?token=…&type=…&redirect_to=…` (the link in an email) → 303 to the landing
/// page with the session in the fragment, or with `error`, `error_code`,
/// `error_description`. Without any landing page (no allowed `redirect_to`, no
/// `auth.site_url`) the answer is the session (or the error) as JSON.
async fn verify_get(
    req: HttpRequest,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let kind = verify_type(query_param(&req, "type").as_deref())?;
    let token = query_param(&req, "token")
        .ok_or_else(|| GoTrueError::validation("Verify requires a token or a token hash"))?;
    let target = state
        .auth
        .redirect_target(query_param(&req, "redirect_to").as_deref());
    let result = state
        .auth
        .verify(kind, Proof::Link { token: &token }, &peer.0)
        .await
        .map_err(|e| GoTrueError::from_auth(e, Context::Link));
    let location = match (result, target) {
        (Ok(grant), Some(target)) => fragment_url(&target, &session_fragment(&grant, kind)),
        (Err(err), Some(target)) => fragment_url(
            &target,
            &[
                ("error", "access_denied".to_string()),
                ("error_code", err.code.to_string()),
                ("error_description", err.msg.clone()),
            ],
        ),
        (Ok(grant), None) => {
            return Ok(HttpResponse::Ok().json(with_record(&state, grant).await?));
        }
        (Err(err), None) => return Err(err),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish())
}
