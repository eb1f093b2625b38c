//! TOTP two-factor authentication of administrators: enrolment (`setup` → `enable`, which
//! hands out the backup codes once), the second login step (`verify`) and `disable`.
//!
//! A TOTP code is accepted once: the last accepted time step is stored and the update that
//! accepts a code requires a later one, so a replay (or a race of two requests with one
//! code) finds no row. A backup code is removed from the array by the update that accepts
//! it, for the same reason. Wrong codes count towards the lockout like wrong passwords.

use serde_json::{Value, json};
use uuid::Uuid;

use super::account::Account;
use crate::audit::{Attempt, AuditAction, count_attempt};
use crate::password::{self, Verified};
use crate::tokens::{Grant, now_secs};
use crate::totp::{self, TwoFactorKeys};
use crate::{AdminSession, AuthError, AuthService, Client, JwtError, dashboard};

/// A second factor as typed: a TOTP code or a backup code (canonical form).
enum SecondFactor {
    Totp(String),
    Backup(String),
}

impl SecondFactor {
    /// Parses `code`, or a 422 naming the field when it can be neither kind.
    fn parse(raw: &str) -> Result<SecondFactor, AuthError> {
        let raw = raw.trim();
        if totp::is_code(raw) {
            Ok(SecondFactor::Totp(raw.to_string()))
        } else if let Some(canonical) = totp::normalize_backup_code(raw) {
            Ok(SecondFactor::Backup(canonical))
        } else {
            Err(AuthError::invalid(
                "code",
                "must be the 6-digit code of the authenticator app or a backup code",
            ))
        }
    }
}

/// A TOTP failure as an internal error with its context (never shown to the client).
fn internal(context: &'static str) -> impl FnOnce(totp::TotpError) -> AuthError {
    move |err| AuthError::internal(context, err)
}

/// Opens an account's sealed TOTP secret.
fn secret_of(keys: &TwoFactorKeys, sealed: Option<&str>) -> Result<Vec<u8>, AuthError> {
    let sealed = sealed.ok_or_else(|| {
        AuthError::internal("2fa secret", "2FA is enabled but no secret is stored")
    })?;
    keys.open(sealed).map_err(internal("2fa secret"))
}

/// A time step as the `bigint` column stores it.
fn step_of(step: u64) -> Result<i64, AuthError> {
    i64::try_from(step).map_err(|err| AuthError::internal("2fa step", err))
}

impl AuthService {
    /// Spends a code of an account with 2FA on: `Ok(method)` when accepted, `Err(reason)`
    /// when wrong or already used.
    async fn spend(
        &self,
        account: &Account,
        code: &SecondFactor,
    ) -> Result<Result<&'static str, &'static str>, AuthError> {
        let keys = self.two_factor_keys()?;
        match code {
            SecondFactor::Totp(code) => {
                let secret = secret_of(keys, account.totp_secret.as_deref())?;
                let Some(step) =
                    totp::check_code(&secret, code, now_secs()).map_err(internal("2fa check"))?
                else {
                    return Ok(Err("wrong_code"));
                };
                let rows = self
                    .db()
                    .query(
                        "UPDATE dashboard.users SET totp_last_step = $2
                         WHERE id = $1 AND totp_enabled
                           AND (totp_last_step IS NULL OR totp_last_step < $2)
                         RETURNING id",
                        &[&account.id, &step_of(step)?],
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
                let rows = self
                    .db()
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

    /// Audits a wrong, replayed or unprovable second factor.
    async fn two_factor_failed(&self, user: Uuid, reason: &str, during: &str, client: &Client) {
        self.admin_event(
            Some(user),
            AuditAction::TwoFactorFailed,
            client,
            json!({"reason": reason, "during": during}),
        )
        .await;
    }

    /// Starts enrolment: a new secret (sealed at rest) and its `otpauth://` URL. 2FA is not
    /// in force until [`AuthService::two_factor_enable`] confirms a code; a new setup
    /// replaces an unconfirmed secret.
    pub async fn two_factor_setup(
        &self,
        admin: &AdminSession,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let account = Account::of_session(self, admin).await?;
        if account.totp_enabled {
            return Err(AuthError::TwoFactorState(
                "2FA is already enabled: disable it before setting it up again",
            ));
        }
        let keys = self.two_factor_keys()?;
        let secret = totp::generate_secret();
        let url = totp::otpauth_url(&secret, &account.email).map_err(internal("2fa setup"))?;
        let rows = self
            .db()
            .query(
                "UPDATE dashboard.users SET totp_secret = $2, totp_last_step = NULL, updated_at = now()
                 WHERE id = $1 AND NOT totp_enabled RETURNING id",
                &[&account.id, &keys.seal(&secret)],
            )
            .await?;
        if rows.is_empty() {
            return Err(AuthError::TwoFactorState("2FA was enabled meanwhile"));
        }
        self.admin_event(
            Some(account.id),
            AuditAction::TwoFactorSetup,
            client,
            json!({}),
        )
        .await;
        Ok(json!({
            "secret": totp::secret_to_base32(&secret),
            "otpauth_url": url,
            "issuer": "Fluxbase",
            "algorithm": "SHA1",
            "digits": totp::DIGITS,
            "period": totp::STEP_SECS,
        }))
    }

    /// Confirms enrolment with a code; answers the backup codes, shown this once.
    pub async fn two_factor_enable(
        &self,
        admin: &AdminSession,
        code: &str,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let account = Account::of_session(self, admin).await?;
        if account.totp_enabled {
            return Err(AuthError::TwoFactorState("2FA is already enabled"));
        }
        let Some(sealed) = account.totp_secret.as_deref() else {
            return Err(AuthError::TwoFactorState(
                "no 2FA setup in progress: call POST /dashboard/auth/2fa/setup first",
            ));
        };
        let code = code.trim();
        if !totp::is_code(code) {
            return Err(AuthError::invalid(
                "code",
                "must be the 6-digit code of the authenticator app",
            ));
        }
        let keys = self.two_factor_keys()?;
        let secret = secret_of(keys, Some(sealed))?;
        let Some(step) =
            totp::check_code(&secret, code, now_secs()).map_err(internal("2fa check"))?
        else {
            self.two_factor_failed(account.id, "wrong_code", "enable", client)
                .await;
            return Err(AuthError::TwoFactorCode("invalid code"));
        };
        let codes = totp::generate_backup_codes();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| totp::normalize_backup_code(c))
            .map(|c| keys.hash_backup_code(&c))
            .collect();
        let rows = self
            .db()
            .query(
                "UPDATE dashboard.users
                 SET totp_enabled = true, totp_last_step = $2, backup_codes = $3, updated_at = now()
                 WHERE id = $1 AND NOT totp_enabled AND totp_secret = $4 RETURNING id",
                &[&account.id, &step_of(step)?, &hashes, &sealed],
            )
            .await?;
        if rows.is_empty() {
            return Err(AuthError::TwoFactorState(
                "the 2FA setup changed meanwhile: call POST /dashboard/auth/2fa/setup again",
            ));
        }
        self.admin_event(
            Some(account.id),
            AuditAction::TwoFactorEnabled,
            client,
            json!({"backup_codes": codes.len()}),
        )
        .await;
        Ok(json!({"enabled": true, "backup_codes": codes}))
    }

    /// The second login step: the `mfa_token` of the password step and a TOTP or backup
    /// code → tokens.
    pub async fn two_factor_verify(
        &self,
        mfa_token: &str,
        code: &str,
        client: &Client,
    ) -> Result<Grant, AuthError> {
        let claims = self
            .keys()?
            .verify(mfa_token.trim())
            .map_err(|err| match err {
                JwtError::Expired => AuthError::Token(JwtError::Expired),
                _ => AuthError::Unauthenticated(
                    "invalid field `mfa_token`: invalid or not a 2FA login token".into(),
                ),
            })?;
        let not_mfa = || {
            AuthError::Unauthenticated(
                "invalid field `mfa_token`: invalid or not a 2FA login token".into(),
            )
        };
        let (sub, _) = dashboard::mfa_subject(&claims).ok_or_else(not_mfa)?;
        let id = Uuid::parse_str(&sub).map_err(|_| not_mfa())?;
        let code = SecondFactor::parse(code)?;
        let account = Account::by_id(self, id).await?.ok_or_else(not_mfa)?;
        if !account.totp_enabled {
            return Err(AuthError::Unauthenticated(
                "invalid field `mfa_token`: 2FA is no longer enabled on this account: sign in again"
                    .into(),
            ));
        }
        if let Some(secs) = account.locked_secs {
            return Err(self.refuse_locked(account.id, client, secs).await);
        }
        match self.spend(&account, &code).await? {
            Ok(method) => self.complete_login(&account, client, method).await,
            Err(reason) => {
                count_attempt(Attempt::Failure, "invalid_2fa_code");
                self.two_factor_failed(account.id, reason, "login", client)
                    .await;
                self.record_failure(account.id, client).await?;
                Err(AuthError::TwoFactorCode("invalid or already used code"))
            }
        }
    }

    /// Turns 2FA off (secret and backup codes erased), proven by the password, a code, or
    /// both (each given must be right).
    pub async fn two_factor_disable(
        &self,
        admin: &AdminSession,
        password: Option<String>,
        code: Option<&str>,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let account = Account::of_session(self, admin).await?;
        if !account.totp_enabled {
            return Err(AuthError::TwoFactorState("2FA is not enabled"));
        }
        if password.is_none() && code.is_none() {
            return Err(AuthError::Missing(
                "give `password` or `code` (or both) to disable 2FA",
            ));
        }
        let mut methods = Vec::new();
        if let Some(password) = password {
            password::check_presented(&password)?;
            let verified = self
                .hasher()
                .verify(password, account.encrypted_password.clone())
                .await?;
            if !matches!(verified, Ok(Verified::Yes | Verified::YesRehash)) {
                self.two_factor_failed(account.id, "wrong_password", "disable", client)
                    .await;
                return Err(AuthError::InvalidCredentials);
            }
            methods.push("password");
        }
        if let Some(code) = code {
            let code = SecondFactor::parse(code)?;
            match self.spend(&account, &code).await? {
                Ok(method) => methods.push(method),
                Err(reason) => {
                    self.two_factor_failed(account.id, reason, "disable", client)
                        .await;
                    return Err(AuthError::TwoFactorCode("invalid or already used code"));
                }
            }
        }
        self.db()
            .query(
                "UPDATE dashboard.users
                 SET totp_enabled = false, totp_secret = NULL, totp_last_step = NULL,
                     backup_codes = '{}', updated_at = now()
                 WHERE id = $1",
                &[&account.id],
            )
            .await?;
        self.admin_event(
            Some(account.id),
            AuditAction::TwoFactorDisabled,
            client,
            json!({"proof": methods}),
        )
        .await;
        Ok(json!({"enabled": false}))
    }
}
