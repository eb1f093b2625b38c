//! GoTrue's admin API for the service role (a `service_role` JWT as supabase-js's admin
//! client sends it, or a service key): `GET`/`POST /admin/users`,
//! `GET`/`PUT`/`DELETE /admin/users/{id}`, `POST /admin/generate_link`, `POST /invite`.

use actix_web::http::header::{HeaderName, HeaderValue, LINK};
use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::user_admin::MAX_PER_PAGE;
use fluxbase_auth::{AdminAttributes, LinkKind};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::GoTrueError;
use super::{links, query_param};
use crate::http::extract::{Guard, Json, OptionalJson, Peer, ServiceRole};
use crate::http::resource::{post, resource};
use crate::http::state::AppState;

/// Default page size of `GET /admin/users` (GoTrue's).
const DEFAULT_PER_PAGE: u32 = 50;

/// Registers the admin routes (inside the `/auth/v1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/admin/users")
            .route(web::get().to(list_users))
            .route(web::post().to(create_user)),
    )
    .service(
        resource("/admin/users/{id}")
            .route(web::get().to(get_user))
            .route(web::put().to(update_user))
            .route(web::delete().to(delete_user)),
    )
    .service(post("/admin/generate_link", generate_link))
    .service(post("/invite", invite));
}

/// A whole number query parameter, at least 1.
fn page_param(req: &HttpRequest, name: &str, default: u32) -> Result<u32, GoTrueError> {
    match query_param(req, name) {
        None => Ok(default),
        Some(text) => text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            GoTrueError::validation(format!(
                "Bad Pagination Parameters: `{name}` must be a whole number from 1"
            ))
        }),
    }
}

/// `GET /admin/users?page=&per_page=&filter=` → `{users, aud}`, with `X-Total-Count` and
/// the `Link` header of the next and last pages.
async fn list_users(
    req: HttpRequest,
    _admin: Guard<ServiceRole>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let page = page_param(&req, "page", 1)?;
    let per_page = page_param(&req, "per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let filter = query_param(&req, "filter");
    let listed = state
        .auth
        .list_users(page, per_page, filter.as_deref())
        .await?;
    let last = u64::try_from(listed.total)
        .unwrap_or(0)
        .div_ceil(u64::from(per_page))
        .max(1);
    let mut links = Vec::new();
    if u64::from(page) < last {
        links.push(format!(
            "</auth/v1/admin/users?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "</auth/v1/admin/users?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    let mut res = HttpResponse::Ok();
    res.insert_header((
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(listed.total),
    ));
    res.insert_header((LINK, links.join(", ")));
    Ok(res.json(json!({"users": listed.users, "aud": "authenticated"})))
}

/// The body of `POST /admin/users` and `PUT /admin/users/{id}` (auth-js's
/// `AdminUserAttributes`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttributesBody {
    id: Option<String>,
    email: Option<String>,
    password: Option<String>,
    password_hash: Option<String>,
    email_confirm: Option<bool>,
    phone: Option<String>,
    user_metadata: Option<Value>,
    app_metadata: Option<Value>,
    role: Option<String>,
    ban_duration: Option<String>,
}

impl AttributesBody {
    /// The service's attributes; refuses what is not offered, naming the field.
    fn attributes(self) -> Result<AdminAttributes, GoTrueError> {
        if self.phone.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(GoTrueError::no_phone());
        }
        if self.role.as_deref().is_some_and(|r| r != "authenticated") {
            return Err(GoTrueError::validation(
                "invalid field `role`: custom roles are not supported (tokens carry `authenticated`)",
            ));
        }
        if self.ban_duration.as_deref().is_some_and(|b| b != "none") {
            return Err(GoTrueError::validation(
                "invalid field `ban_duration`: bans are not supported (delete the user, or end its sessions)",
            ));
        }
        let id = self
            .id
            .as_deref()
            .map(|text| {
                Uuid::parse_str(text)
                    .map_err(|_| GoTrueError::validation("invalid field `id`: must be a UUID"))
            })
            .transpose()?;
        Ok(AdminAttributes {
            id,
            email: self.email,
            password: self.password,
            password_hash: self.password_hash,
            email_confirm: self.email_confirm,
            user_metadata: self.user_metadata,
            app_metadata: self.app_metadata,
        })
    }
}

/// The `{id}` of a path (GoTrue answers 404 for one that is no UUID).
fn user_id(path: &str) -> Result<Uuid, GoTrueError> {
    Uuid::parse_str(path)
        .map_err(|_| GoTrueError::new(404, "validation_failed", "user_id must be an UUID"))
}

/// `POST /admin/users` → the new user (no email is sent).
async fn create_user(
    _admin: Guard<ServiceRole>,
    body: Json<AttributesBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let attributes = body.into_inner().attributes()?;
    if attributes.id.is_none() && attributes.email.is_none() {
        return Err(GoTrueError::validation("invalid field `email`: required"));
    }
    let user = state.auth.create_user(attributes, &peer.0).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `GET /admin/users/{id}` → the user, or 404 `user_not_found`.
async fn get_user(
    path: web::Path<String>,
    _admin: Guard<ServiceRole>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let id = user_id(&path)?;
    let user = state
        .auth
        .user_record(id)
        .await?
        .ok_or_else(|| GoTrueError::new(404, "user_not_found", "User not found"))?;
    Ok(HttpResponse::Ok().json(user))
}

/// `PUT /admin/users/{id}` → the changed user.
async fn update_user(
    path: web::Path<String>,
    _admin: Guard<ServiceRole>,
    body: Json<AttributesBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let id = user_id(&path)?;
    let attributes = body.into_inner().attributes()?;
    if attributes.id.is_some_and(|new| new != id) {
        return Err(GoTrueError::validation(
            "invalid field `id`: an id cannot change",
        ));
    }
    let user = state
        .auth
        .admin_update_user(id, attributes, &peer.0)
        .await?
        .ok_or_else(|| GoTrueError::new(404, "user_not_found", "User not found"))?;
    Ok(HttpResponse::Ok().json(user))
}

/// `DELETE /admin/users/{id}` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeleteBody {
    should_soft_delete: Option<bool>,
}

/// `DELETE /admin/users/{id}` → `{}`; the user's sessions end and its sockets close.
async fn delete_user(
    path: web::Path<String>,
    _admin: Guard<ServiceRole>,
    body: OptionalJson<DeleteBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let id = user_id(&path)?;
    if body.should_soft_delete == Some(true) {
        return Err(GoTrueError::validation(
            "invalid field `should_soft_delete`: only hard deletion is supported",
        ));
    }
    if !state.auth.delete_user(id, &peer.0).await? {
        return Err(GoTrueError::new(404, "user_not_found", "User not found"));
    }
    Ok(HttpResponse::Ok().json(json!({})))
}

/// `POST /admin/generate_link` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LinkBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    password: Option<String>,
    data: Option<Value>,
    redirect_to: Option<String>,
}

/// `POST /admin/generate_link {type, email, password?, data?, redirect_to?}` → the user's
/// fields with `action_link`, `email_otp`, `hashed_token`, `redirect_to`,
/// `verification_type`; nothing is sent.
async fn generate_link(
    req: HttpRequest,
    _admin: Guard<ServiceRole>,
    body: Json<LinkBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    let kind = match body.kind.as_deref() {
        Some(text) => LinkKind::parse(text).ok_or_else(|| {
            GoTrueError::validation(format!(
                "invalid field `type`: {text:?} is not one of signup, invite, magiclink, recovery"
            ))
        })?,
        None => return Err(GoTrueError::validation("invalid field `type`: required")),
    };
    let email = body
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| GoTrueError::validation("invalid field `email`: required"))?;
    let redirect = body
        .redirect_to
        .or_else(|| query_param(&req, "redirect_to"));
    let links = links(&req, &state, redirect.as_deref());
    let link = state
        .auth
        .generate_link(kind, &email, body.password, body.data, &links, &peer.0)
        .await?;
    let mut answer = link.user;
    if let Value::Object(map) = &mut answer {
        map.insert("action_link".into(), json!(link.action_link));
        map.insert("email_otp".into(), json!(link.email_otp));
        map.insert("hashed_token".into(), json!(link.hashed_token));
        map.insert("redirect_to".into(), json!(link.redirect_to));
        map.insert("verification_type".into(), json!(link.verification_type));
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /invite {email, data?}` → the invited user; an invitation is emailed.
async fn invite(
    req: HttpRequest,
    _admin: Guard<ServiceRole>,
    body: Json<LinkBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GoTrueError> {
    let body = body.into_inner();
    let email = body
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| GoTrueError::validation("invalid field `email`: required"))?;
    let links = links(&req, &state, query_param(&req, "redirect_to").as_deref());
    let user = state
        .auth
        .invite_user(&email, body.data, &links, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(user))
}
