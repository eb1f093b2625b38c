//! `/dashboard/auth/*`: dashboard administrators, apart from application users.
//!
//! - `signup` creates the first admin without auth (the runbook's call); once an admin
//!   exists, only an admin (or `service_role`) creates more.
//! - `login` checks the password under the login rate limit and the account lockout
//!   (`dashboard.max_failed_logins` failures lock for `dashboard.lockout_duration`); with
//!   2FA on it answers a short-lived `mfa_token` for `2fa/verify` instead of tokens.
//! - `refresh` rotates the session's refresh token (reuse revokes the session), `logout`
//!   revokes the session, `me` returns the account.
//! - 2FA setup / enable / verify / disable live in [`two_factor`].
//!
//! Every login, failure, lockout and 2FA change becomes a `dashboard.activity_log` row and a
//! `log_type=audit` log line, and counts in `fluxbase_auth_attempts_total{result,reason}`.

mod account;
mod two_factor;

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use fluxbase_auth::password::{self, Verified};
use fluxbase_auth::sessions::{RefreshDecision, RefreshToken, StoredRefreshToken, decide};
use fluxbase_auth::tokens::now_secs;
use fluxbase_auth::{JwtKeys, dashboard};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use self::account::{
    Account, MAX_NAME_CHARS, USER_JSON, check_password, email_of, hash_password, verify_password,
};
use super::AppState;
use super::auth::AdminOnly;
use super::body::read_json;
use crate::error::{ApiError, Code};
use fluxbase_migrations::DbError;

/// Longest `User-Agent` kept in sessions and the activity log.
const MAX_USER_AGENT: usize = 512;

/// Registers the dashboard auth routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post("/dashboard/auth/signup", signup))
        .service(post("/dashboard/auth/login", login))
        .service(post("/dashboard/auth/refresh", refresh))
        .service(post("/dashboard/auth/logout", logout))
        .service(super::get_resource("/dashboard/auth/me", me))
        .service(post("/dashboard/auth/2fa/setup", two_factor::setup))
        .service(post("/dashboard/auth/2fa/enable", two_factor::enable))
        .service(post("/dashboard/auth/2fa/verify", two_factor::verify))
        .service(post("/dashboard/auth/2fa/disable", two_factor::disable));
}

/// A POST-only resource whose other methods answer a JSON 405.
fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(super::method_not_allowed))
}

/// A dashboard admin's access token: [`AdminOnly`], and then a dashboard identity
/// (`service_role` passes `AdminOnly` but has no account here).
#[derive(Debug)]
pub struct DashboardAdmin {
    /// `dashboard.users.id`.
    pub user_id: Uuid,
    /// The login session the token was issued for.
    pub session_id: Option<Uuid>,
}

impl FromRequest for DashboardAdmin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = AdminOnly::from_request(req, payload);
        Box::pin(async move {
            let AdminOnly(ctx) = admin.await?;
            if !dashboard::is_admin(&ctx) {
                return Err(ApiError::new(
                    Code::Forbidden,
                    "this endpoint needs a dashboard admin's token (service_role has no dashboard account)",
                ));
            }
            let user_id = ctx
                .uid()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        Code::Unauthorized,
                        "token subject is not a dashboard user id",
                    )
                })?;
            let session_id = ctx
                .claim("session_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            Ok(DashboardAdmin {
                user_id,
                session_id,
            })
        })
    }
}

/// Who is calling, for sessions and the activity log.
#[derive(Debug, Clone)]
struct Client {
    ip: IpAddr,
    user_agent: Option<String>,
}

impl Client {
    fn of(req: &HttpRequest) -> Client {
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
        Client {
            ip: super::security::client_ip_of(req),
            user_agent,
        }
    }
}

/// The token keys, or 503 when no secret is configured.
fn keys(state: &AppState) -> Result<&JwtKeys, ApiError> {
    state.keys.as_ref().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "token signing is not configured (FLUXBASE_JWT_SECRET)",
        )
    })
}

/// The keys of 2FA material at rest, derived from the JWT secret.
fn two_factor_keys(state: &AppState) -> Result<fluxbase_auth::totp::TwoFactorKeys, ApiError> {
    let secret = state.config.auth.jwt_secret.as_deref().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "token signing is not configured (FLUXBASE_JWT_SECRET)",
        )
    })?;
    Ok(fluxbase_auth::totp::TwoFactorKeys::new(secret.as_bytes()))
}

/// One security event: a `dashboard.activity_log` row and a `log_type=audit` line. The
/// line carries no details (they may hold what the client typed); the row does. A failed
/// insert is logged, not returned.
async fn activity(
    state: &AppState,
    user: Option<Uuid>,
    action: &'static str,
    success: bool,
    client: &Client,
    details: Value,
) {
    let reason = details.get("reason").and_then(Value::as_str).unwrap_or("");
    let user_text = user.map(|u| u.to_string()).unwrap_or_default();
    if success {
        tracing::info!(log_type = "audit", scope = "dashboard", action, success, user_id = %user_text, ip = %client.ip, "dashboard auth event");
    } else {
        tracing::warn!(log_type = "audit", scope = "dashboard", action, success, reason, user_id = %user_text, ip = %client.ip, "dashboard auth event");
    }
    let result = state
        .db
        .query(
            "INSERT INTO dashboard.activity_log (user_id, action, success, ip, user_agent, details)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &user,
                &action,
                &success,
                &client.ip,
                &client.user_agent,
                &details,
            ],
        )
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, action, "could not write the dashboard activity log");
    }
}

/// Counts a dashboard authentication attempt.
fn attempt(result: &'static str, reason: &'static str) {
    metrics::counter!("fluxbase_auth_attempts_total", "result" => result, "reason" => reason)
        .increment(1);
}

/// The 423 of a locked account, with the time left.
fn locked(secs: i64) -> ApiError {
    let secs = secs.max(1) as u64;
    ApiError::new(
        Code::AccountLocked,
        format!("account locked after too many failed logins; try again in {secs} seconds"),
    )
    .with_retry_after(secs)
}

/// Refuses a login step on a locked account: counted, logged to the activity log, 423.
async fn refuse_locked(state: &AppState, user: Uuid, client: &Client, secs: i64) -> ApiError {
    attempt("failure", "account_locked");
    activity(
        state,
        Some(user),
        "login_failed",
        false,
        client,
        json!({"reason": "account_locked"}),
    )
    .await;
    locked(secs)
}

/// Counts a failed password or 2FA code against the account; locks it when the count
/// reaches `dashboard.max_failed_logins`. Returns the lock's seconds when this failure
/// locked it (and records the lockout).
async fn record_failure(
    state: &AppState,
    account: Uuid,
    client: &Client,
) -> Result<Option<i64>, ApiError> {
    let cfg = &state.config.dashboard;
    let max = i32::try_from(cfg.max_failed_logins).unwrap_or(i32::MAX);
    let duration = cfg.lockout_duration.get().as_secs_f64();
    let rows = state
        .db
        .query(
            "UPDATE dashboard.users SET
                 failed_login_attempts = CASE WHEN failed_login_attempts + 1 >= $2 THEN 0
                                              ELSE failed_login_attempts + 1 END,
                 locked_until = CASE WHEN failed_login_attempts + 1 >= $2
                                     THEN now() + make_interval(secs => $3) ELSE locked_until END
             WHERE id = $1
             RETURNING CASE WHEN locked_until > now()
                            THEN ceil(extract(epoch FROM locked_until - now()))::bigint END",
            &[&account, &max, &duration],
        )
        .await?;
    let locked_secs: Option<i64> = rows.first().and_then(|r| r.get(0));
    if let Some(secs) = locked_secs {
        attempt("failure", "account_locked");
        activity(
            state,
            Some(account),
            "account_locked",
            false,
            client,
            json!({"reason": "too_many_failures", "failed_logins": cfg.max_failed_logins, "locked_for_secs": secs}),
        )
        .await;
    }
    Ok(locked_secs)
}

/// Ends a successful login (password, or password + 2FA): resets the failure count, opens a
/// session with its first refresh token, and answers the tokens.
async fn complete_login(
    state: &AppState,
    account: &Account,
    client: &Client,
    method: &'static str,
) -> Result<HttpResponse, ApiError> {
    let keys = keys(state)?;
    let refresh = RefreshToken::generate();
    let sql = format!(
        "WITH u AS (
             UPDATE dashboard.users SET failed_login_attempts = 0, locked_until = NULL, last_login_at = now()
             WHERE id = $1 RETURNING *),
         s AS (
             INSERT INTO dashboard.sessions (user_id, ip, user_agent)
             SELECT id, $2, $3 FROM u RETURNING id),
         r AS (
             INSERT INTO dashboard.refresh_tokens (session_id, token_hash) SELECT id, $4 FROM s)
         SELECT s.id, {USER_JSON} FROM s, u"
    );
    let rows = state
        .db
        .query(
            &sql,
            &[&account.id, &client.ip, &client.user_agent, &refresh.hash],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::new(Code::InvalidCredentials, "invalid email or password"))?;
    let session: Uuid = row.get(0);
    let user: Value = row.get(1);
    attempt("success", method);
    activity(
        state,
        Some(account.id),
        "login",
        true,
        client,
        json!({"method": method, "session_id": session.to_string()}),
    )
    .await;
    Ok(HttpResponse::Ok().json(tokens(
        state,
        keys,
        account.id,
        &account.email,
        session,
        &refresh.token,
        user,
    )))
}

/// The token response: a short-lived admin access token and the refresh token.
fn tokens(
    state: &AppState,
    keys: &JwtKeys,
    user_id: Uuid,
    email: &str,
    session: Uuid,
    refresh: &str,
    user: Value,
) -> Value {
    let now = now_secs();
    let ttl = state
        .config
        .dashboard
        .access_token_ttl
        .get()
        .as_secs()
        .max(1);
    let claims =
        dashboard::access_claims(&user_id.to_string(), email, &session.to_string(), now, ttl);
    json!({
        "access_token": keys.sign(&claims),
        "token_type": "bearer",
        "expires_in": ttl,
        "expires_at": now + ttl,
        "refresh_token": refresh,
        "user": user,
    })
}

/// `POST /dashboard/auth/signup` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    full_name: Option<String>,
}

/// Creates an admin: the first one without auth, later ones only by an admin.
async fn signup(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    caller: Result<AdminOnly, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let body: SignupBody = read_json(&req, payload, false).await?;
    let client = Client::of(&req);
    let any_admin =
        |rows: Vec<tokio_postgres::Row>| rows.first().is_some_and(|r| r.get::<_, bool>(0));
    let exists_sql = "SELECT EXISTS (SELECT 1 FROM dashboard.users)";
    let first = !any_admin(state.db.query(exists_sql, &[]).await?);
    let creator = if first { None } else { Some(caller?.0) };

    let email = email_of(&body.email)?;
    check_password(
        &body.password,
        state.config.dashboard.password_min_length as usize,
    )?;
    let full_name = body
        .full_name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if let Some(name) = &full_name
        && (name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control))
    {
        return Err(ApiError::new(
            Code::ValidationFailed,
            format!(
                "full_name: must be at most {MAX_NAME_CHARS} characters, without control characters"
            ),
        ));
    }
    let hash = hash_password(body.password).await?;

    // The "no admin yet" decision and the insert under one lock: two concurrent first
    // signups cannot both create an admin without auth.
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await.map_err(DbError::from)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('fluxbase.dashboard.signup'))",
        &[],
    )
    .await
    .map_err(DbError::from)?;
    if creator.is_none() && any_admin(tx.query(exists_sql, &[]).await.map_err(DbError::from)?) {
        return Err(ApiError::new(
            Code::Unauthorized,
            "an admin already exists: creating another needs an admin token",
        ));
    }
    let sql = format!(
        "INSERT INTO dashboard.users AS u (email, encrypted_password, full_name)
         VALUES ($1, $2, $3) RETURNING u.id, {USER_JSON}"
    );
    let row = match tx.query_one(&sql, &[&email, &hash, &full_name]).await {
        Ok(row) => row,
        Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(ApiError::new(
                Code::UserAlreadyExists,
                "email: an admin with this email already exists",
            ));
        }
        Err(err) => return Err(DbError::from(err).into()),
    };
    tx.commit().await.map_err(DbError::from)?;
    let id: Uuid = row.get(0);
    let user: Value = row.get(1);
    let created_by = match &creator {
        None => Value::Null,
        Some(ctx) => ctx
            .uid()
            .map_or_else(|| json!(ctx.role().as_str()), |uid| json!(uid)),
    };
    activity(
        &state,
        Some(id),
        "signup",
        true,
        &client,
        json!({"first_admin": first, "created_by": created_by}),
    )
    .await;
    Ok(HttpResponse::Created().json(json!({"user": user})))
}

/// `POST /dashboard/auth/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

/// Email + password → tokens, or the 2FA challenge.
async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: LoginBody = read_json(&req, payload, false).await?;
    let client = Client::of(&req);
    let email = email_of(&body.email)?;
    check_password(&body.password, 0)?;
    super::security::check_login(&state, client.ip, &email)?;

    let Some(account) = Account::by_email(&state, &email).await? else {
        // The same work and answer as a wrong password: no enumeration by time or text.
        web::block(move || password::dummy_verify(&body.password))
            .await
            .ok();
        attempt("failure", "invalid_credentials");
        activity(
            &state,
            None,
            "login_failed",
            false,
            &client,
            json!({"reason": "unknown_email", "email": email}),
        )
        .await;
        return Err(ApiError::new(
            Code::InvalidCredentials,
            "invalid email or password",
        ));
    };
    if let Some(secs) = account.locked_secs {
        return Err(refuse_locked(&state, account.id, &client, secs).await);
    }
    let verified =
        verify_password(body.password.clone(), account.encrypted_password.clone()).await?;
    match verified {
        Verified::No => {
            attempt("failure", "invalid_credentials");
            activity(
                &state,
                Some(account.id),
                "login_failed",
                false,
                &client,
                json!({"reason": "wrong_password"}),
            )
            .await;
            if let Some(secs) = record_failure(&state, account.id, &client).await? {
                return Err(locked(secs));
            }
            return Err(ApiError::new(
                Code::InvalidCredentials,
                "invalid email or password",
            ));
        }
        Verified::YesRehash => {
            // A bcrypt hash (set with the runbook's crypt()): store argon2id from now on.
            let hash = hash_password(body.password).await?;
            state
                .db
                .query(
                    "UPDATE dashboard.users SET encrypted_password = $2, updated_at = now() WHERE id = $1",
                    &[&account.id, &hash],
                )
                .await?;
        }
        Verified::Yes => {}
    }
    if account.totp_enabled {
        // The failure count is kept until the second step succeeds: knowing the password
        // must not reset the lockout of someone guessing codes.
        let ttl = two_factor::MFA_TOKEN_TTL_SECS;
        let claims =
            dashboard::mfa_claims(&account.id.to_string(), &account.email, now_secs(), ttl);
        attempt("challenge", "2fa_required");
        activity(
            &state,
            Some(account.id),
            "login_2fa_required",
            true,
            &client,
            json!({}),
        )
        .await;
        return Ok(HttpResponse::Ok().json(json!({
            "requires_2fa": true,
            "mfa_token": keys(&state)?.sign(&claims),
            "expires_in": ttl,
        })));
    }
    complete_login(&state, &account, &client, "password").await
}

/// `POST /dashboard/auth/refresh` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Rotates a refresh token: the presented one is spent, a new one is issued. A spent
/// token presented again revokes its whole session.
async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: RefreshBody = read_json(&req, payload, false).await?;
    let client = Client::of(&req);
    let invalid = |msg: &str| ApiError::new(Code::InvalidRefreshToken, msg.to_string());
    if !RefreshToken::is_well_formed(&body.refresh_token) {
        return Err(invalid("refresh_token: invalid refresh token"));
    }
    let keys = keys(&state)?;
    let presented = fluxbase_auth::sessions::hash_secret(&body.refresh_token);
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await.map_err(DbError::from)?;
    let sql = format!(
        "SELECT rt.id, rt.revoked, extract(epoch FROM now() - rt.created_at)::float8,
                s.id, s.revoked_at IS NOT NULL, u.id, u.email, {USER_JSON}
         FROM dashboard.refresh_tokens rt
         JOIN dashboard.sessions s ON s.id = rt.session_id
         JOIN dashboard.users u ON u.id = s.user_id
         WHERE rt.token_hash = $1
         FOR UPDATE OF rt"
    );
    let row = tx
        .query_opt(&sql, &[&presented])
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| invalid("refresh_token: invalid refresh token"))?;
    let (token_id, revoked, age): (i64, bool, f64) = (row.get(0), row.get(1), row.get(2));
    let (session, session_revoked, user_id, email, user): (Uuid, bool, Uuid, String, Value) =
        (row.get(3), row.get(4), row.get(5), row.get(6), row.get(7));
    if session_revoked {
        return Err(invalid(
            "refresh_token: this session has ended: log in again",
        ));
    }
    let stored = StoredRefreshToken {
        revoked,
        age: std::time::Duration::from_secs_f64(age.max(0.0)),
    };
    match decide(stored, state.config.dashboard.refresh_token_ttl.get()) {
        RefreshDecision::ReuseDetected => {
            tx.execute(
                "UPDATE dashboard.sessions SET revoked_at = now(), revoked_reason = 'refresh_token_reused'
                 WHERE id = $1",
                &[&session],
            )
            .await
            .map_err(DbError::from)?;
            tx.execute(
                "UPDATE dashboard.refresh_tokens SET revoked = true WHERE session_id = $1",
                &[&session],
            )
            .await
            .map_err(DbError::from)?;
            tx.commit().await.map_err(DbError::from)?;
            activity(
                &state,
                Some(user_id),
                "token_reuse_detected",
                false,
                &client,
                json!({"reason": "refresh_token_reused", "session_id": session.to_string()}),
            )
            .await;
            Err(invalid(
                "refresh_token: already used; the session has been revoked",
            ))
        }
        RefreshDecision::Expired => Err(invalid("refresh_token: expired: log in again")),
        RefreshDecision::Rotate => {
            let child = RefreshToken::generate();
            tx.execute(
                "UPDATE dashboard.refresh_tokens SET revoked = true WHERE id = $1",
                &[&token_id],
            )
            .await
            .map_err(DbError::from)?;
            tx.execute(
                "INSERT INTO dashboard.refresh_tokens (session_id, token_hash, parent_id) VALUES ($1, $2, $3)",
                &[&session, &child.hash, &token_id],
            )
            .await
            .map_err(DbError::from)?;
            tx.execute(
                "UPDATE dashboard.sessions SET last_used_at = now() WHERE id = $1",
                &[&session],
            )
            .await
            .map_err(DbError::from)?;
            tx.commit().await.map_err(DbError::from)?;
            tracing::info!(log_type = "audit", scope = "dashboard", action = "token_refreshed", success = true, user_id = %user_id, ip = %client.ip, "dashboard auth event");
            Ok(HttpResponse::Ok().json(tokens(
                &state,
                keys,
                user_id,
                &email,
                session,
                &child.token,
                user,
            )))
        }
    }
}

/// Ends the caller's session: its refresh tokens stop working, and its access token stops
/// opening the dashboard routes.
async fn logout(
    req: HttpRequest,
    admin: DashboardAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = Client::of(&req);
    let account = Account::of_admin(&state, &admin).await?;
    let session = admin.session_id;
    state
        .db
        .query(
            "WITH s AS (UPDATE dashboard.sessions SET revoked_at = now(), revoked_reason = 'logout'
                        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id)
             UPDATE dashboard.refresh_tokens SET revoked = true WHERE session_id IN (SELECT id FROM s)",
            &[&session, &account.id],
        )
        .await?;
    activity(
        &state,
        Some(account.id),
        "logout",
        true,
        &client,
        json!({"session_id": session.map(|s| s.to_string())}),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account.
async fn me(admin: DashboardAdmin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let account = Account::of_admin(&state, &admin).await?;
    Ok(HttpResponse::Ok().json(json!({"user": account.public})))
}
