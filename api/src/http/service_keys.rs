//! Service keys (`/api/v1/admin/service-keys`, table `auth.service_keys`): create (the key
//! is shown once), list, revoke, rotate (the old key lasts `auth.service_key_rotation_grace`),
//! delete; and [`authenticate`], which turns an `X-Service-Key` into the `service_role`
//! context. Only SHA-256 hashes of keys are stored.

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::AuthContext;
use fluxbase_auth::audit::AuditAction;
use fluxbase_auth::service_keys::{NewServiceKey, lookup_hash};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::auth::AdminOnly;
use super::auth_users::post_resource;
use super::body::read_json;
use crate::error::{ApiError, Code};
use fluxbase_migrations::DbError;

/// Longest key name and revoke reason.
const MAX_NAME: usize = 200;
const MAX_REASON: usize = 500;

/// How often `last_used_at` is written for a busy key: once a minute is precise enough and
/// spares a write per request.
const LAST_USED_RESOLUTION: &str = "1 minute";

/// An RFC 3339 UTC text of a timestamptz column (same format as the user JSON).
macro_rules! iso {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

/// A key as listed (never its hash), from a row aliased `k`.
macro_rules! key_json {
    () => {
        concat!(
            "jsonb_build_object('id', k.id, 'name', k.name, 'prefix', k.key_prefix, ",
            "'created_by', k.created_by, ",
            "'created_at', ", iso!("k.created_at"), ", ",
            "'last_used_at', ", iso!("k.last_used_at"), ", ",
            "'expires_at', ", iso!("k.expires_at"), ", ",
            "'rotated_at', ", iso!("k.rotated_at"), ", ",
            "'previous_key_expires_at', ", iso!("k.previous_key_expires_at"), ", ",
            "'revoked_at', ", iso!("k.revoked_at"), ", ",
            "'revoked_reason', k.revoked_reason, ",
            "'status', CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked' ",
            "  WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired' ELSE 'active' END)"
        )
    };
}

/// Registers `/api/v1/admin/service-keys*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/admin/service-keys")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/admin/service-keys/{id}")
            .route(web::get().to(get_one))
            .route(web::delete().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(post_resource(
        "/api/v1/admin/service-keys/{id}/revoke",
        revoke,
    ))
    .service(post_resource(
        "/api/v1/admin/service-keys/{id}/rotate",
        rotate,
    ));
}

/// The `service_role` context of a presented service key, or 401. Marks the key used.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<AuthContext, ApiError> {
    let invalid = || {
        ApiError::new(
            Code::Unauthorized,
            "invalid, expired or revoked service key",
        )
    };
    let hash = lookup_hash(presented).ok_or_else(invalid)?;
    let sql = concat!(
        "WITH k AS (",
        "  SELECT id, name, last_used_at FROM auth.service_keys",
        "  WHERE (key_hash = $1 OR (previous_key_hash = $1 AND previous_key_expires_at > now()))",
        "    AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        "), u AS (",
        "  UPDATE auth.service_keys s SET last_used_at = now() FROM k",
        "  WHERE s.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - $2::text::interval)",
        ") SELECT id, name FROM k"
    );
    let rows = state.db.query(sql, &[&hash, &LAST_USED_RESOLUTION]).await?;
    let row = rows.first().ok_or_else(invalid)?;
    let (id, name): (Uuid, String) = (row.get(0), row.get(1));
    let mut claims = serde_json::Map::new();
    claims.insert("role".into(), json!("service_role"));
    claims.insert("service_key_id".into(), json!(id.to_string()));
    claims.insert("service_key_name".into(), json!(name));
    Ok(AuthContext::from_claims(claims))
}

/// Key management needs an admin token or a service_role JWT: a service key that could
/// mint keys would outlive its own revocation.
fn manager(admin: &AdminOnly) -> Result<(), ApiError> {
    if admin.0.claim("service_key_id").is_some() {
        return Err(ApiError::new(
            Code::Forbidden,
            "service keys cannot manage service keys: use an admin or service_role token",
        ));
    }
    Ok(())
}

/// Who acted, for the audit trail.
fn actor(admin: &AdminOnly) -> (Option<Uuid>, Value) {
    let sub = admin.0.uid();
    (
        sub.and_then(|s| Uuid::parse_str(s).ok()),
        json!({"role": admin.0.role().as_str(), "sub": sub}),
    )
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no service key with this id")
}

/// `POST /api/v1/admin/service-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// `POST /api/v1/admin/service-keys/{id}/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let bad = |what: &str| {
        ApiError::new(
            Code::ValidationFailed,
            format!("invalid field `{field}`: {what}"),
        )
    };
    if value.is_empty() {
        return Err(bad("must not be empty"));
    }
    if value.chars().count() > max {
        return Err(bad(&format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    Ok(value.to_string())
}

/// Checks `expires_at` (an RFC 3339 time in the future) and returns it as PostgreSQL parsed it.
async fn check_expiry(state: &AppState, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = |what: &str| {
        ApiError::new(
            Code::ValidationFailed,
            format!("invalid field `expires_at`: {what}"),
        )
    };
    // Only the RFC 3339 alphabet: PostgreSQL would also take 'now', 'epoch', 'infinity'.
    let shape = raw.len() <= 40
        && raw.len() >= 10
        && raw.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && raw.as_bytes()[4] == b'-'
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-:.+TtZz ".contains(&b));
    if !shape {
        return Err(bad(
            "expected an RFC 3339 time such as 2030-01-01T00:00:00Z",
        ));
    }
    let rows = state
        .db
        .query("SELECT $1::text::timestamptz > now()", &[&raw])
        .await
        .map_err(|err| match &err {
            DbError::Query(e) if e.code().is_some_and(|c| c.code().starts_with("22")) => {
                bad("expected an RFC 3339 time such as 2030-01-01T00:00:00Z")
            }
            _ => ApiError::from(err),
        })?;
    if !rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
        return Err(bad("must be in the future"));
    }
    Ok(Some(raw.to_string()))
}

/// `POST /api/v1/admin/service-keys {name, expires_at?}` → 201 with the key, shown once.
async fn create(
    req: HttpRequest,
    admin: AdminOnly,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manager(&admin)?;
    let body: CreateBody = read_json(&req, payload, false).await?;
    let name = check_text("name", &body.name, MAX_NAME)?;
    let expires_at = check_expiry(&state, body.expires_at.as_deref()).await?;
    let key = NewServiceKey::generate();
    let (actor_id, actor_json) = actor(&admin);
    let created_by = admin
        .0
        .uid()
        .map(str::to_string)
        .or_else(|| Some(admin.0.role().as_str().to_string()));
    let sql = concat!(
        "WITH k AS (",
        "  INSERT INTO auth.service_keys (name, key_prefix, key_hash, expires_at, created_by)",
        "  VALUES ($1, $2, $3, $4::text::timestamptz, $5) RETURNING *",
        ") SELECT k.id, ",
        key_json!(),
        " FROM k"
    );
    let rows = state
        .db
        .query(
            sql,
            &[&name, &key.prefix, &key.hash, &expires_at, &created_by],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::new(Code::Internal, "internal error"))?;
    let (id, mut listed): (Uuid, Value) = (row.get(0), row.get(1));
    listed["key"] = json!(key.key);
    super::audit::record(
        &state,
        AuditAction::ServiceKeyCreated,
        actor_id,
        super::security::client_ip_of(&req),
        json!({"key_id": id, "name": name, "prefix": key.prefix, "actor": actor_json}),
    )
    .await;
    Ok(HttpResponse::Created().json(listed))
}

/// `GET /api/v1/admin/service-keys` → every key, newest first (never a key or hash).
async fn list(admin: AdminOnly, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    manager(&admin)?;
    let sql = concat!(
        "SELECT ",
        key_json!(),
        " FROM auth.service_keys k ORDER BY k.created_at DESC, k.id"
    );
    let rows = state.db.query(sql, &[]).await?;
    let keys: Vec<Value> = rows.iter().map(|r| r.get(0)).collect();
    Ok(HttpResponse::Ok().json(keys))
}

/// `GET /api/v1/admin/service-keys/{id}`.
async fn get_one(
    admin: AdminOnly,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manager(&admin)?;
    let id = parse_id(&path)?;
    let sql = concat!(
        "SELECT ",
        key_json!(),
        " FROM auth.service_keys k WHERE k.id = $1"
    );
    let rows = state.db.query(sql, &[&id]).await?;
    let row = rows.first().ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(row.get::<_, Value>(0)))
}

/// `POST /api/v1/admin/service-keys/{id}/revoke {reason?}` → the key, revoked at once.
/// Revoking a revoked key keeps its first time and reason.
async fn revoke(
    req: HttpRequest,
    admin: AdminOnly,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manager(&admin)?;
    let id = parse_id(&path)?;
    let body: RevokeBody = read_json(&req, payload, true).await?;
    let reason = body
        .reason
        .as_deref()
        .map(|r| check_text("reason", r, MAX_REASON))
        .transpose()?;
    let sql = concat!(
        "WITH k AS (",
        "  UPDATE auth.service_keys SET revoked_at = coalesce(revoked_at, now()),",
        "    revoked_reason = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_reason END,",
        "    updated_at = now()",
        "  WHERE id = $1 RETURNING *",
        ") SELECT k.name, ",
        key_json!(),
        " FROM k"
    );
    let rows = state.db.query(sql, &[&id, &reason]).await?;
    let row = rows.first().ok_or_else(not_found)?;
    let (name, listed): (String, Value) = (row.get(0), row.get(1));
    let (actor_id, actor_json) = actor(&admin);
    super::audit::record(
        &state,
        AuditAction::ServiceKeyRevoked,
        actor_id,
        super::security::client_ip_of(&req),
        json!({"key_id": id, "name": name, "reason": reason, "actor": actor_json}),
    )
    .await;
    Ok(HttpResponse::Ok().json(listed))
}

/// `POST /api/v1/admin/service-keys/{id}/rotate` → the new key, shown once; the old one
/// works for `auth.service_key_rotation_grace` more.
async fn rotate(
    req: HttpRequest,
    admin: AdminOnly,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manager(&admin)?;
    let id = parse_id(&path)?;
    let key = NewServiceKey::generate();
    let grace = state
        .config
        .auth
        .service_key_rotation_grace
        .get()
        .as_secs_f64();
    let sql = concat!(
        "WITH k AS (",
        "  UPDATE auth.service_keys SET previous_key_hash = key_hash,",
        "    previous_key_expires_at = now() + make_interval(secs => $4),",
        "    key_hash = $2, key_prefix = $3, rotated_at = now(), updated_at = now()",
        "  WHERE id = $1 AND revoked_at IS NULL RETURNING *",
        ") SELECT k.name, ",
        key_json!(),
        " FROM k"
    );
    let rows = state
        .db
        .query(sql, &[&id, &key.hash, &key.prefix, &grace])
        .await?;
    let Some(row) = rows.first() else {
        let exists = state
            .db
            .query("SELECT 1 FROM auth.service_keys WHERE id = $1", &[&id])
            .await?;
        return Err(if exists.is_empty() {
            not_found()
        } else {
            ApiError::new(
                Code::Conflict,
                "a revoked service key cannot be rotated: create a new one",
            )
        });
    };
    let (name, mut listed): (String, Value) = (row.get(0), row.get(1));
    listed["key"] = json!(key.key);
    let (actor_id, actor_json) = actor(&admin);
    super::audit::record(
        &state,
        AuditAction::ServiceKeyRotated,
        actor_id,
        super::security::client_ip_of(&req),
        json!({"key_id": id, "name": name, "prefix": key.prefix, "grace_seconds": grace, "actor": actor_json}),
    )
    .await;
    Ok(HttpResponse::Ok().json(listed))
}

/// `DELETE /api/v1/admin/service-keys/{id}` → 204; the key stops working at once.
async fn delete(
    req: HttpRequest,
    admin: AdminOnly,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manager(&admin)?;
    let id = parse_id(&path)?;
    let rows = state
        .db
        .query(
            "DELETE FROM auth.service_keys WHERE id = $1 RETURNING name",
            &[&id],
        )
        .await?;
    let row = rows.first().ok_or_else(not_found)?;
    let name: String = row.get(0);
    let (actor_id, actor_json) = actor(&admin);
    super::audit::record(
        &state,
        AuditAction::ServiceKeyDeleted,
        actor_id,
        super::security::client_ip_of(&req),
        json!({"key_id": id, "name": name, "actor": actor_json}),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}
