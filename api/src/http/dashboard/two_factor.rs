//! `/dashboard/auth/2fa/*`: TOTP enrolment (`setup` → `enable`, which hands out the backup
//! codes once), the second login step (`verify`) and `disable`.
//!
//! A TOTP code is accepted once: the last accepted time step is stored and the update that
//! accepts a code requires a later one, so a replay (or a race of two requests with one
//! code) finds no row. A backup code is removed from the array by the update that accepts
//! it, for the same reason.

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::password::Verified;
use fluxbase_auth::tokens::now_secs;
use fluxbase_auth::totp::{self, TwoFactorKeys};
use fluxbase_auth::{JwtError, dashboard};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::super::body::read_json;
use super::{
    Account, Client, DashboardAdmin, activity, attempt, check_password, complete_login, keys,
    locked, record_failure, refuse_locked, two_factor_keys, verify_password,
};
use crate::error::{ApiError, Code};

/// Lifetime of the token between the password step and the 2FA step.
pub const MFA_TOKEN_TTL_SECS: u64 = 300;

/// A second-factor code as typed: a TOTP code or a backup code (canonical form).
enum SecondFactor {
    Totp(String),
    Backup(String),
}

impl SecondFactor {
    /// Parses `code`, or a 422 naming the field when it can be neither kind.
    fn parse(raw: &str) -> Result<SecondFactor, ApiError> {
        let raw = raw.trim();
        if totp::is_code(raw) {
            Ok(SecondFactor::Totp(raw.to_string()))
        } else if let Some(canonical) = totp::normalize_backup_code(raw) {
            Ok(SecondFactor::Backup(canonical))
        } else {
            Err(ApiError::new(
                Code::ValidationFailed,
                "code: must be the 6-digit code of the authenticator app or a backup code",
            ))
        }
    }
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "two-factor operation failed");
    ApiError::new(Code::Internal, "internal error")
}

/// Opens the account's sealed TOTP secret.
fn secret_of(keys: &TwoFactorKeys, sealed: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let sealed = sealed.ok_or_else(|| internal("2FA is enabled but no secret is stored"))?;
    keys.open(sealed).map_err(internal)
}

/// Spends a code of an account with 2FA on: `Ok(method)` when accepted, `Err(reason)`
/// when wrong or already used.
async fn spend(
    state: &super::AppState,
    keys: &TwoFactorKeys,
    account: &Account,
    code: &SecondFactor,
) -> Result<Result<&'static str, &'static str>, ApiError> {
    match code {
        SecondFactor::Totp(code) => {
            let secret = secret_of(keys, account.totp_secret.as_deref())?;
            let Some(step) = totp::check_code(&secret, code, now_secs()).map_err(internal)? else {
                return Ok(Err("wrong_code"));
            };
            let step = i64::try_from(step).map_err(internal)?;
            let rows = state
                .db
                .query(
                    "UPDATE dashboard.users SET totp_last_step = $2
                     WHERE id = $1 AND totp_enabled AND (totp_last_step IS NULL OR totp_last_step < $2)
                     RETURNING id",
                    &[&account.id, &step],
                )
                .await?;
            Ok(if rows.is_empty() {
                Err("replayed_code")
            } else {
                Ok("totp")
            })
        }
        SecondFactor::Backup(canonical) => {
            let hash = keys.hash_backup_code(canonical);
            let rows = state
                .db
                .query(
                    "UPDATE dashboard.users SET backup_codes = array_remove(backup_codes, $2)
                     WHERE id = $1 AND totp_enabled AND $2 = ANY (backup_codes)
                     RETURNING id",
                    &[&account.id, &hash],
                )
                .await?;
            Ok(if rows.is_empty() {
                Err("wrong_backup_code")
            } else {
                Ok("backup_code")
            })
        }
    }
}

/// Starts enrolment: a new secret (sealed at rest) and its `otpauth://` URL. 2FA is not in
/// force until `enable` confirms a code; a new `setup` replaces an unconfirmed secret.
pub(super) async fn setup(
    req: HttpRequest,
    admin: DashboardAdmin,
    state: web::Data<super::AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = Client::of(&req);
    let account = Account::of_admin(&state, &admin).await?;
    if account.totp_enabled {
        return Err(ApiError::new(
            Code::TwoFactorState,
            "2FA is already enabled: disable it before setting it up again",
        ));
    }
    let keys = two_factor_keys(&state)?;
    let secret = totp::generate_secret();
    let url = totp::otpauth_url(&secret, &account.email).map_err(internal)?;
    let rows = state
        .db
        .query(
            "UPDATE dashboard.users SET totp_secret = $2, totp_last_step = NULL, updated_at = now()
             WHERE id = $1 AND NOT totp_enabled RETURNING id",
            &[&account.id, &keys.seal(&secret)],
        )
        .await?;
    if rows.is_empty() {
        return Err(ApiError::new(
            Code::TwoFactorState,
            "2FA was enabled meanwhile",
        ));
    }
    activity(
        &state,
        Some(account.id),
        "2fa_setup",
        true,
        &client,
        json!({}),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({
        "secret": totp::secret_to_base32(&secret),
        "otpauth_url": url,
        "issuer": "Fluxbase",
        "algorithm": "SHA1",
        "digits": totp::DIGITS,
        "period": totp::STEP_SECS,
    })))
}

/// `POST /dashboard/auth/2fa/enable` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnableBody {
    code: String,
}

/// Confirms enrolment with a code; answers the backup codes, shown this once.
pub(super) async fn enable(
    req: HttpRequest,
    payload: web::Payload,
    admin: DashboardAdmin,
    state: web::Data<super::AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: EnableBody = read_json(&req, payload, false).await?;
    let client = Client::of(&req);
    let account = Account::of_admin(&state, &admin).await?;
    if account.totp_enabled {
        return Err(ApiError::new(
            Code::TwoFactorState,
            "2FA is already enabled",
        ));
    }
    let Some(sealed) = account.totp_secret.as_deref() else {
        return Err(ApiError::new(
            Code::TwoFactorState,
            "no 2FA setup in progress: call POST /dashboard/auth/2fa/setup first",
        ));
    };
    let code = body.code.trim();
    if !totp::is_code(code) {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "code: must be the 6-digit code of the authenticator app",
        ));
    }
    let keys = two_factor_keys(&state)?;
    let secret = secret_of(&keys, Some(sealed))?;
    let Some(step) = totp::check_code(&secret, code, now_secs()).map_err(internal)? else {
        activity(
            &state,
            Some(account.id),
            "2fa_failed",
            false,
            &client,
            json!({"reason": "wrong_code", "during": "enable"}),
        )
        .await;
        return Err(ApiError::new(
            Code::InvalidTwoFactorCode,
            "code: invalid code",
        ));
    };
    let step = i64::try_from(step).map_err(internal)?;
    let codes = totp::generate_backup_codes();
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| totp::normalize_backup_code(c))
        .map(|c| keys.hash_backup_code(&c))
        .collect();
    let rows = state
        .db
        .query(
            "UPDATE dashboard.users
             SET totp_enabled = true, totp_last_step = $2, backup_codes = $3, updated_at = now()
             WHERE id = $1 AND NOT totp_enabled AND totp_secret = $4 RETURNING id",
            &[&account.id, &step, &hashes, &sealed],
        )
        .await?;
    if rows.is_empty() {
        return Err(ApiError::new(
            Code::TwoFactorState,
            "the 2FA setup changed meanwhile: call POST /dashboard/auth/2fa/setup again",
        ));
    }
    activity(
        &state,
        Some(account.id),
        "2fa_enabled",
        true,
        &client,
        json!({"backup_codes": codes.len()}),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({"enabled": true, "backup_codes": codes})))
}

/// `POST /dashboard/auth/2fa/verify` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    mfa_token: String,
    code: String,
}

/// The second login step: the `mfa_token` of `login` and a TOTP or backup code → tokens.
/// Wrong codes count towards the lockout like wrong passwords.
pub(super) async fn verify(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<super::AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: VerifyBody = read_json(&req, payload, false).await?;
    let client = Client::of(&req);
    let claims = keys(&state)?
        .verify(body.mfa_token.trim())
        .map_err(|err| match err {
            JwtError::Expired => {
                ApiError::new(Code::TokenExpired, "mfa_token: expired: log in again")
            }
            JwtError::Invalid(_) => ApiError::new(Code::Unauthorized, "mfa_token: invalid token"),
        })?;
    let not_mfa = || ApiError::new(Code::Unauthorized, "mfa_token: not a 2FA login token");
    let (sub, _) = dashboard::mfa_subject(&claims).ok_or_else(not_mfa)?;
    let id = Uuid::parse_str(&sub).map_err(|_| not_mfa())?;
    let code = SecondFactor::parse(&body.code)?;
    let account = Account::by_id(&state, id).await?.ok_or_else(not_mfa)?;
    if !account.totp_enabled {
        return Err(ApiError::new(
            Code::Unauthorized,
            "mfa_token: 2FA is no longer enabled on this account: log in again",
        ));
    }
    if let Some(secs) = account.locked_secs {
        return Err(refuse_locked(&state, account.id, &client, secs).await);
    }
    let keys = two_factor_keys(&state)?;
    match spend(&state, &keys, &account, &code).await? {
        Ok(method) => complete_login(&state, &account, &client, method).await,
        Err(reason) => {
            attempt("failure", "invalid_2fa_code");
            activity(
                &state,
                Some(account.id),
                "2fa_failed",
                false,
                &client,
                json!({"reason": reason, "during": "login"}),
            )
            .await;
            if let Some(secs) = record_failure(&state, account.id, &client).await? {
                return Err(locked(secs));
            }
            Err(ApiError::new(
                Code::InvalidTwoFactorCode,
                "code: invalid or already used code",
            ))
        }
    }
}

/// `POST /dashboard/auth/2fa/disable` body: the password, a code, or both (each given must
/// be right).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Turns 2FA off (secret and backup codes erased), proven by the password or a code.
pub(super) async fn disable(
    req: HttpRequest,
    payload: web::Payload,
    admin: DashboardAdmin,
    state: web::Data<super::AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: DisableBody = read_json(&req, payload, false).await?;
    let client = Client::of(&req);
    let account = Account::of_admin(&state, &admin).await?;
    if !account.totp_enabled {
        return Err(ApiError::new(Code::TwoFactorState, "2FA is not enabled"));
    }
    if body.password.is_none() && body.code.is_none() {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "password or code: one is required to disable 2FA",
        ));
    }
    let mut methods = Vec::new();
    if let Some(password) = body.password {
        check_password(&password, 0)?;
        if verify_password(password, account.encrypted_password.clone()).await? == Verified::No {
            activity(
                &state,
                Some(account.id),
                "2fa_failed",
                false,
                &client,
                json!({"reason": "wrong_password", "during": "disable"}),
            )
            .await;
            return Err(ApiError::new(
                Code::InvalidCredentials,
                "password: incorrect password",
            ));
        }
        methods.push("password");
    }
    if let Some(code) = body.code {
        let code = SecondFactor::parse(&code)?;
        match spend(&state, &two_factor_keys(&state)?, &account, &code).await? {
            Ok(method) => methods.push(method),
            Err(reason) => {
                activity(
                    &state,
                    Some(account.id),
                    "2fa_failed",
                    false,
                    &client,
                    json!({"reason": reason, "during": "disable"}),
                )
                .await;
                return Err(ApiError::new(
                    Code::InvalidTwoFactorCode,
                    "code: invalid or already used code",
                ));
            }
        }
    }
    state
        .db
        .query(
            "UPDATE dashboard.users
             SET totp_enabled = false, totp_secret = NULL, totp_last_step = NULL, backup_codes = '{}',
                 updated_at = now()
             WHERE id = $1",
            &[&account.id],
        )
        .await?;
    activity(
        &state,
        Some(account.id),
        "2fa_disabled",
        true,
        &client,
        json!({"proof": methods}),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({"enabled": false})))
}
