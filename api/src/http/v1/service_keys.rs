//! Service keys, `/api/v1/admin/service-keys[/{id}[/revoke|/rotate]]`: a dashboard admin
//! or a service_role token manages them ([`KeyAdmin`]); a service key never does.

use actix_web::{HttpResponse, web};
use fluxbase_auth::service_keys::NewKey;
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::extract::{Guard, Json, KeyAdmin, OptionalJson, Peer};
use crate::http::resource::{post, resource};
use crate::http::state::AppState;

/// Registers `/api/v1/admin/service-keys*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/admin/service-keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/api/v1/admin/service-keys/{id}")
            .route(web::get().to(get_one))
            .route(web::delete().to(delete)),
    )
    .service(post("/api/v1/admin/service-keys/{id}/revoke", revoke))
    .service(post("/api/v1/admin/service-keys/{id}/rotate", rotate));
}

/// `POST /api/v1/admin/service-keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// `POST …/{id}/revoke` body (optional: the runbook's call may send none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Creates a key → 201 with the key, shown once.
async fn create(
    admin: Guard<KeyAdmin>,
    body: Json<CreateBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = NewKey {
        name: body.name,
        expires_at: body.expires_at,
    };
    let key = state
        .auth
        .create_service_key(&admin, request, &peer.0)
        .await?;
    Ok(HttpResponse::Created().json(key))
}

/// Every key, newest first.
async fn list(
    admin: Guard<KeyAdmin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.auth.list_service_keys(&admin).await?))
}

/// One key.
async fn get_one(
    admin: Guard<KeyAdmin>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.auth.service_key(&admin, &path).await?))
}

/// Revokes a key at once.
async fn revoke(
    admin: Guard<KeyAdmin>,
    path: web::Path<String>,
    body: OptionalJson<RevokeBody>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = state
        .auth
        .revoke_service_key(&admin, &path, body.0.reason.as_deref(), &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(key))
}

/// Rotates a key → the new key, shown once.
async fn rotate(
    admin: Guard<KeyAdmin>,
    path: web::Path<String>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = state
        .auth
        .rotate_service_key(&admin, &path, &peer.0)
        .await?;
    Ok(HttpResponse::Ok().json(key))
}

/// Deletes a key → 204.
async fn delete(
    admin: Guard<KeyAdmin>,
    path: web::Path<String>,
    peer: Peer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .delete_service_key(&admin, &path, &peer.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
