//! Application users (`/api/v1/auth/*`): signup, signin, refresh, signout, and the signed-in
//! user's own record — on `auth.users`, `auth.sessions`, `auth.identities` and
//! `auth.refresh_tokens`. Every event is audited (`audit.rs`) and counted in
//! `fluxbase_auth_attempts_total`.
//!
//! Email verification and password reset by email are not offered (no SMTP): an operator
//! resets a password with the runbook's `crypt(…, gen_salt('bf'))`, which signs in once and
//! is upgraded to argon2id on that sign-in.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::JwtKeys;
use fluxbase_auth::audit::AuditAction;
use fluxbase_auth::password::{self, Verified};
use fluxbase_auth::sessions::{self, RefreshDecision, RefreshToken, StoredRefreshToken};
use fluxbase_auth::tokens::{self, TokenSubject};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::AppState;
use super::audit::{self, count_attempt};
use super::auth::AppUser;
use super::body::read_json;
use crate::error::{ApiError, Code};
use fluxbase_migrations::DbError;

/// Longest password accepted, in bytes: argon2 takes any length, but a megabyte "password"
/// is an attack, not a credential.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Longest `User-Agent` kept on a session.
const MAX_USER_AGENT: usize = 512;

/// An RFC 3339 UTC text of a timestamptz column, as Supabase's JSON shows them.
macro_rules! iso {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

/// The user as clients see it (Supabase's shape), from a row aliased `u`. Never the hash.
macro_rules! user_json {
    () => {
        concat!(
            "jsonb_build_object('id', u.id, 'aud', 'authenticated', 'role', u.role, 'email', u.email, ",
            "'email_confirmed_at', ", iso!("u.email_confirmed_at"), ", ",
            "'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data, ",
            "'created_at', ", iso!("u.created_at"), ", ",
            "'updated_at', ", iso!("u.updated_at"), ", ",
            "'last_sign_in_at', ", iso!("u.last_sign_in_at"), ")"
        )
    };
}

/// Registers `/api/v1/auth/*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    metrics::describe_counter!(
        "fluxbase_auth_attempts_total",
        "Sign-in, signup and refresh attempts by result and reason"
    );
    cfg.service(post_resource("/api/v1/auth/signup", signup))
        .service(post_resource("/api/v1/auth/signin", signin))
        .service(post_resource("/api/v1/auth/refresh", refresh))
        .service(post_resource("/api/v1/auth/signout", signout))
        .service(
            web::resource("/api/v1/auth/user")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user))
                .route(web::put().to(update_user))
                .default_service(web::to(super::method_not_allowed)),
        );
}

/// A POST-only resource whose other methods answer a JSON 405.
pub(crate) fn post_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(super::method_not_allowed))
}

/// `POST /api/v1/auth/signup` and `signin` bodies. Supabase clients' extra fields are
/// accepted and ignored; any other field is refused.
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

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// `PATCH /api/v1/auth/user`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserUpdate {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "user_metadata")]
    data: Option<Value>,
}

/// The signing keys, or 503 when no secret is configured.
fn keys_of(state: &AppState) -> Result<&JwtKeys, ApiError> {
    state.keys.as_ref().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "token signing is not configured (auth.jwt_secret)",
        )
    })
}

fn db_err(err: tokio_postgres::Error) -> ApiError {
    ApiError::from(DbError::from(err))
}

fn is_unique_violation(err: &DbError) -> bool {
    matches!(err, DbError::Query(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION))
}

fn validation(field: &str, what: &str) -> ApiError {
    ApiError::new(
        Code::ValidationFailed,
        format!("invalid field `{field}`: {what}"),
    )
}

/// Lower-cases and checks an email address (a practical subset of RFC 5322: dot-atoms
/// of ASCII, a domain of at least two labels).
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let invalid = || validation("email", "not a valid email address");
    let email = raw.trim().to_ascii_lowercase();
    if email.is_empty() || email.len() > 254 {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// Checks a new password against `auth.password_min_length` and [`MAX_PASSWORD_BYTES`].
fn check_new_password(state: &AppState, password: &str) -> Result<(), ApiError> {
    let min = state.config.auth.password_min_length.max(1) as usize;
    if password.chars().count() < min {
        return Err(ApiError::new(
            Code::WeakPassword,
            format!(
                "invalid field `password`: must be at least {min} characters (auth.password_min_length)"
            ),
        ));
    }
    check_password_size(password)
}

fn check_password_size(password: &str) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(validation(
            "password",
            &format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// `user_metadata` must be a JSON object.
fn check_metadata(data: Option<Value>) -> Result<Option<Value>, ApiError> {
    match data {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(validation("data", "must be a JSON object")),
    }
}

/// Runs CPU-heavy password work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|_| ApiError::new(Code::Internal, "internal error"))
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    blocking(move || password::hash(&password))
        .await?
        .map_err(|err| {
            tracing::error!(error = %err, "password hashing failed");
            ApiError::new(Code::Internal, "internal error")
        })
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    let ua = req.headers().get("user-agent")?.to_str().ok()?;
    let mut end = ua.len().min(MAX_USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    Some(ua[..end].to_string())
}

/// The session answer: `{access_token, token_type, expires_in, expires_at, refresh_token, user}`.
fn session_body(
    state: &AppState,
    keys: &JwtKeys,
    user: Value,
    session_id: Uuid,
    refresh: &RefreshToken,
) -> Value {
    let user_id = user["id"].as_str().unwrap_or_default().to_string();
    let session = session_id.to_string();
    let access = tokens::issue_access_token(
        keys,
        &TokenSubject {
            user_id: &user_id,
            email: user["email"].as_str(),
            session_id: &session,
            app_metadata: &user["app_metadata"],
            user_metadata: &user["user_metadata"],
        },
        state.config.auth.access_token_ttl.get(),
        tokens::now_secs(),
    );
    json!({
        "access_token": access.token,
        "token_type": "bearer",
        "expires_in": access.expires_in,
        "expires_at": access.expires_at,
        "refresh_token": refresh.token,
        "user": user,
    })
}

/// `POST /api/v1/auth/signup {email, password, data?}` → a signed-in session.
async fn signup(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: Credentials = read_json(&req, payload, false).await?;
    let keys = keys_of(&state)?;
    let email = normalize_email(&body.email)?;
    check_new_password(&state, &body.password)?;
    let metadata = check_metadata(body.data)?.unwrap_or_else(|| json!({}));
    let ip = super::security::client_ip_of(&req);
    let hash = hash_password(body.password).await?;
    let refresh = RefreshToken::generate();
    let app_metadata = json!({"provider": "email", "providers": ["email"]});
    let sql = concat!(
        "WITH u AS (",
        "  INSERT INTO auth.users (email, encrypted_password, raw_app_meta_data, raw_user_meta_data, last_sign_in_at)",
        "  SELECT $1, $2, $3, $4, now()",
        "  WHERE NOT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = $1)",
        "  RETURNING *",
        "), i AS (",
        "  INSERT INTO auth.identities (user_id, provider, provider_id, identity_data)",
        "  SELECT id, 'email', id::text, jsonb_build_object('sub', id::text, 'email', email) FROM u",
        "), s AS (",
        "  INSERT INTO auth.sessions (user_id, user_agent, ip) SELECT id, $5, $6 FROM u RETURNING id",
        "), t AS (",
        "  INSERT INTO auth.refresh_tokens (session_id, token_hash) SELECT id, $7 FROM s",
        ") SELECT u.id, s.id, ",
        user_json!(),
        " FROM u, s"
    );
    let ua = user_agent(&req);
    let rows = state
        .db
        .query(
            sql,
            &[
                &email,
                &hash,
                &app_metadata,
                &metadata,
                &ua,
                &ip,
                &refresh.hash,
            ],
        )
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(err) if is_unique_violation(&err) => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    let Some(row) = rows.first() else {
        count_attempt(false, "user_already_exists");
        return Err(ApiError::new(
            Code::UserAlreadyExists,
            "invalid field `email`: a user with this email address already exists",
        ));
    };
    let (user_id, session_id, user): (Uuid, Uuid, Value) = (row.get(0), row.get(1), row.get(2));
    count_attempt(true, "signup");
    audit::record(
        &state,
        AuditAction::Signup,
        Some(user_id),
        ip,
        json!({"email": email, "session_id": session_id, "provider": "email"}),
    )
    .await;
    Ok(HttpResponse::Ok().json(session_body(&state, keys, user, session_id, &refresh)))
}

/// The one answer to a wrong email or password.
fn invalid_credentials() -> ApiError {
    ApiError::new(Code::InvalidCredentials, "invalid email or password")
}

async fn signin_failed(
    state: &AppState,
    ip: IpAddr,
    actor: Option<Uuid>,
    email: &str,
    reason: &'static str,
) -> ApiError {
    count_attempt(false, reason);
    audit::record(
        state,
        AuditAction::LoginFailed,
        actor,
        ip,
        json!({"email": email, "reason": reason}),
    )
    .await;
    invalid_credentials()
}

/// `POST /api/v1/auth/signin {email, password}` → a new session. Unknown accounts cost the
/// same password check as known ones and get the same answer.
async fn signin(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: Credentials = read_json(&req, payload, false).await?;
    if body.data.is_some() {
        return Err(ApiError::new(
            Code::BadRequest,
            "invalid request body: unknown field `data` (metadata is set at signup or with PATCH /api/v1/auth/user)",
        ));
    }
    let keys = keys_of(&state)?;
    let email = normalize_email(&body.email)?;
    check_password_size(&body.password)?;
    let ip = super::security::client_ip_of(&req);
    if let Err(err) = super::security::check_login(&state, ip, &email) {
        count_attempt(false, "rate_limited");
        return Err(err);
    }

    let rows = state
        .db
        .query(
            "SELECT id, encrypted_password FROM auth.users WHERE lower(email) = $1 \
             ORDER BY (email = $1) DESC, created_at LIMIT 1",
            &[&email],
        )
        .await?;
    let found: Option<(Uuid, Option<String>)> = rows.first().map(|r| (r.get(0), r.get(1)));
    let password = body.password;
    let (user_id, stored) = match found {
        Some((id, Some(stored))) => (id, stored),
        Some((id, None)) => {
            blocking(move || password::dummy_verify(&password)).await?;
            return Err(signin_failed(&state, ip, Some(id), &email, "no_password").await);
        }
        None => {
            blocking(move || password::dummy_verify(&password)).await?;
            return Err(signin_failed(&state, ip, None, &email, "unknown_email").await);
        }
    };
    let (verified, password) =
        blocking(move || (password::verify(&password, &stored), password)).await?;
    let rehash = match verified {
        Ok(Verified::Yes) => None,
        Ok(Verified::YesRehash) => Some(hash_password(password).await?),
        Ok(Verified::No) => {
            return Err(signin_failed(&state, ip, Some(user_id), &email, "wrong_password").await);
        }
        Err(err) => {
            tracing::error!(error = %err, user_id = %user_id, "stored password hash is unreadable");
            return Err(signin_failed(&state, ip, Some(user_id), &email, "unsupported_hash").await);
        }
    };

    let refresh = RefreshToken::generate();
    let sql = concat!(
        "WITH u AS (",
        "  UPDATE auth.users SET last_sign_in_at = now(),",
        "    encrypted_password = coalesce($2, encrypted_password)",
        "  WHERE id = $1 RETURNING *",
        "), s AS (",
        "  INSERT INTO auth.sessions (user_id, user_agent, ip) SELECT id, $3, $4 FROM u RETURNING id",
        "), t AS (",
        "  INSERT INTO auth.refresh_tokens (session_id, token_hash) SELECT id, $5 FROM s",
        ") SELECT s.id, ",
        user_json!(),
        " FROM u, s"
    );
    let ua = user_agent(&req);
    let rows = state
        .db
        .query(sql, &[&user_id, &rehash, &ua, &ip, &refresh.hash])
        .await?;
    // Deleted between the two statements.
    let Some(row) = rows.first() else {
        return Err(signin_failed(&state, ip, None, &email, "unknown_email").await);
    };
    let (session_id, user): (Uuid, Value) = (row.get(0), row.get(1));
    let reason = if rehash.is_some() {
        "password_rehashed"
    } else {
        "password"
    };
    count_attempt(true, reason);
    audit::record(
        &state,
        AuditAction::Login,
        Some(user_id),
        ip,
        json!({"email": email, "session_id": session_id, "method": reason}),
    )
    .await;
    Ok(HttpResponse::Ok().json(session_body(&state, keys, user, session_id, &refresh)))
}

/// `POST /api/v1/auth/refresh {refresh_token}` → the session with a new access token and a
/// new refresh token; the presented one stops working. A replay of a rotated token revokes
/// the whole session.
async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: RefreshBody = read_json(&req, payload, false).await?;
    let keys = keys_of(&state)?;
    let ip = super::security::client_ip_of(&req);
    if !RefreshToken::is_well_formed(&body.refresh_token) {
        return Err(refresh_failed(
            &state,
            ip,
            None,
            None,
            "malformed",
            "refresh token not found or revoked",
        )
        .await);
    }
    let hash = sessions::hash_secret(&body.refresh_token);

    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await.map_err(db_err)?;
    // The row lock serializes two refreshes of one token: the second sees it revoked.
    let row = tx
        .query_opt(
            "SELECT rt.id, rt.revoked, rt.session_id, s.user_id, \
                    extract(epoch FROM now() - rt.created_at)::float8 \
             FROM auth.refresh_tokens rt JOIN auth.sessions s ON s.id = rt.session_id \
             WHERE rt.token_hash = $1 FOR UPDATE OF rt",
            &[&hash],
        )
        .await
        .map_err(db_err)?;
    let Some(row) = row else {
        drop(tx);
        // The audit insert takes its own connection: give this one back first.
        drop(conn);
        return Err(refresh_failed(
            &state,
            ip,
            None,
            None,
            "not_found",
            "refresh token not found or revoked",
        )
        .await);
    };
    let (token_id, revoked, session_id, user_id, age): (i64, bool, Uuid, Uuid, f64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let stored = StoredRefreshToken {
        revoked,
        age: Duration::from_secs_f64(age.max(0.0)),
    };
    match sessions::decide(stored, state.config.auth.refresh_token_ttl.get()) {
        RefreshDecision::ReuseDetected | RefreshDecision::Expired => {
            let reused = revoked;
            // The session is over: its row (and, by cascade, every token of the family) goes.
            tx.execute("DELETE FROM auth.sessions WHERE id = $1", &[&session_id])
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            drop(conn);
            return Err(if reused {
                count_attempt(false, "refresh_token_reused");
                audit::record(
                    &state,
                    AuditAction::TokenReuseDetected,
                    Some(user_id),
                    ip,
                    json!({"session_id": session_id, "reason": "refresh_token_reused"}),
                )
                .await;
                ApiError::new(
                    Code::InvalidRefreshToken,
                    "refresh token already used: the session has been revoked",
                )
            } else {
                refresh_failed(
                    &state,
                    ip,
                    Some(user_id),
                    Some(session_id),
                    "expired",
                    "refresh token expired",
                )
                .await
            });
        }
        RefreshDecision::Rotate => {}
    }
    let next = RefreshToken::generate();
    let sql = concat!(
        "WITH old AS (UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = $1), ",
        "new AS (INSERT INTO auth.refresh_tokens (session_id, token_hash, parent_id) VALUES ($2, $3, $1)), ",
        "s AS (UPDATE auth.sessions SET updated_at = now() WHERE id = $2) ",
        "SELECT ",
        user_json!(),
        " FROM auth.users u WHERE u.id = $4"
    );
    let row = tx
        .query_opt(sql, &[&token_id, &session_id, &next.hash, &user_id])
        .await
        .map_err(db_err)?;
    let Some(row) = row else {
        drop(tx);
        // The audit insert takes its own connection: give this one back first.
        drop(conn);
        return Err(refresh_failed(
            &state,
            ip,
            None,
            Some(session_id),
            "not_found",
            "refresh token not found or revoked",
        )
        .await);
    };
    let user: Value = row.get(0);
    tx.commit().await.map_err(db_err)?;
    drop(conn);
    count_attempt(true, "refresh_token");
    audit::record(
        &state,
        AuditAction::TokenRefreshed,
        Some(user_id),
        ip,
        json!({"session_id": session_id}),
    )
    .await;
    Ok(HttpResponse::Ok().json(session_body(&state, keys, user, session_id, &next)))
}

async fn refresh_failed(
    state: &AppState,
    ip: IpAddr,
    actor: Option<Uuid>,
    session_id: Option<Uuid>,
    reason: &'static str,
    message: &str,
) -> ApiError {
    let label = match reason {
        "expired" => "refresh_token_expired",
        _ => "invalid_refresh_token",
    };
    count_attempt(false, label);
    audit::record(
        state,
        AuditAction::TokenRefreshFailed,
        actor,
        ip,
        json!({"reason": reason, "session_id": session_id}),
    )
    .await;
    ApiError::new(Code::InvalidRefreshToken, message)
}

/// `POST /api/v1/auth/signout[?scope=local|global|others]` → 204. Deletes the session row
/// (`local`, the default), every session of the user (`global`) or the others (`others`):
/// their refresh tokens stop at once and the realtime engine closes the user's sockets.
async fn signout(
    req: HttpRequest,
    user: AppUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map_err(|_| ApiError::new(Code::BadRequest, "invalid query string"))?;
    let scope = query.get("scope").map(String::as_str).unwrap_or("local");
    let sql = match scope {
        "local" => "DELETE FROM auth.sessions WHERE user_id = $1 AND id = $2",
        "global" => "DELETE FROM auth.sessions WHERE user_id = $1 AND $2::uuid IS NOT NULL",
        "others" => "DELETE FROM auth.sessions WHERE user_id = $1 AND id <> $2",
        _ => {
            return Err(ApiError::new(
                Code::BadRequest,
                "invalid parameter `scope`: expected local, global or others",
            ));
        }
    };
    state
        .db
        .query(sql, &[&user.user_id, &user.session_id])
        .await?;
    audit::record(
        &state,
        AuditAction::Logout,
        Some(user.user_id),
        super::security::client_ip_of(&req),
        json!({"session_id": user.session_id, "scope": scope}),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/auth/user` → the signed-in user, while their session lasts.
async fn get_user(user: AppUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sql = concat!(
        "SELECT ",
        user_json!(),
        " FROM auth.users u ",
        "WHERE u.id = $1 AND EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = $2 AND s.user_id = u.id)"
    );
    let rows = state
        .db
        .query(sql, &[&user.user_id, &user.session_id])
        .await?;
    let row = rows.first().ok_or_else(session_gone)?;
    Ok(HttpResponse::Ok().json(row.get::<_, Value>(0)))
}

fn session_gone() -> ApiError {
    ApiError::new(
        Code::SessionNotFound,
        "the session has ended: sign in again",
    )
}

/// `PATCH /api/v1/auth/user {email?, password?, data?}` → the updated user. Metadata is
/// merged key by key; a new password ends the user's other sessions.
async fn update_user(
    req: HttpRequest,
    user: AppUser,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: UserUpdate = read_json(&req, payload, false).await?;
    let email = body.email.as_deref().map(normalize_email).transpose()?;
    if let Some(p) = &body.password {
        check_new_password(&state, p)?;
    }
    let metadata = check_metadata(body.data)?;
    if email.is_none() && body.password.is_none() && metadata.is_none() {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "nothing to update: give at least one of `email`, `password`, `data`",
        ));
    }
    let changed: Vec<&str> = [
        email.as_ref().map(|_| "email"),
        body.password.as_ref().map(|_| "password"),
        metadata.as_ref().map(|_| "user_metadata"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let hash = match body.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let sql = concat!(
        "WITH cur AS (SELECT 1 FROM auth.sessions WHERE id = $2 AND user_id = $1), ",
        "u AS (",
        "  UPDATE auth.users SET",
        "    email_confirmed_at = CASE WHEN $3::text IS NOT NULL AND $3 IS DISTINCT FROM email",
        "      THEN NULL ELSE email_confirmed_at END,",
        "    email = coalesce($3, email),",
        "    encrypted_password = coalesce($4, encrypted_password),",
        "    raw_user_meta_data = CASE WHEN $5::jsonb IS NULL THEN raw_user_meta_data",
        "      ELSE raw_user_meta_data || $5::jsonb END,",
        "    updated_at = now()",
        "  WHERE id = $1 AND EXISTS (SELECT 1 FROM cur)",
        "    AND ($3::text IS NULL OR NOT EXISTS",
        "      (SELECT 1 FROM auth.users o WHERE lower(o.email) = $3 AND o.id <> $1))",
        "  RETURNING *",
        "), i AS (",
        "  UPDATE auth.identities SET identity_data = identity_data || jsonb_build_object('email', $3::text),",
        "    updated_at = now()",
        "  WHERE user_id = $1 AND provider = 'email' AND $3::text IS NOT NULL AND EXISTS (SELECT 1 FROM u)",
        "), d AS (",
        "  DELETE FROM auth.sessions WHERE user_id = $1 AND id <> $2 AND $4::text IS NOT NULL",
        "    AND EXISTS (SELECT 1 FROM u)",
        ") SELECT (SELECT ",
        user_json!(),
        " FROM u), EXISTS (SELECT 1 FROM cur)"
    );
    let result = state
        .db
        .query(
            sql,
            &[&user.user_id, &user.session_id, &email, &hash, &metadata],
        )
        .await;
    let rows = match result {
        Ok(rows) => rows,
        Err(err) if is_unique_violation(&err) => return Err(email_taken()),
        Err(err) => return Err(err.into()),
    };
    let row = rows.first().ok_or_else(session_gone)?;
    let (updated, session_ok): (Option<Value>, bool) = (row.get(0), row.get(1));
    if !session_ok {
        return Err(session_gone());
    }
    let updated = updated.ok_or_else(email_taken)?;
    audit::record(
        &state,
        AuditAction::UserUpdated,
        Some(user.user_id),
        super::security::client_ip_of(&req),
        json!({"session_id": user.session_id, "fields": changed}),
    )
    .await;
    Ok(HttpResponse::Ok().json(updated))
}

fn email_taken() -> ApiError {
    ApiError::new(
        Code::UserAlreadyExists,
        "invalid field `email`: a user with this email address already exists",
    )
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            normalize_email("o'brien+x@mail.example.org").unwrap(),
            "o'brien+x@mail.example.org"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@@example.com",
            "a b@example.com",
            "admin@example.com' OR '1'='1",
            "x'; DROP TABLE auth.users; --@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "é@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}
