//! Dashboard administrators (`dashboard.users`), apart from application users but under the
//! same email, password, session and audit rules.
//!
//! - `admin_sign_up` creates the first admin without credentials (the runbook's call); once
//!   one exists, only a dashboard admin with a live session creates more — never a service
//!   key or a service_role token, which would let a key outlive its own revocation through
//!   the admin it created.
//! - `admin_login` checks the password under the account lockout
//!   (`dashboard.max_failed_logins` failures lock for `dashboard.lockout_duration`); with 2FA
//!   on it answers a short-lived `mfa_token` for [`two_factor`]'s second step.
//! - Refresh is [`AuthService::refresh`] with [`Realm::Dashboard`]; logout ends the session.

mod account;
pub mod two_factor;

use serde_json::{Value, json};
use uuid::Uuid;

use fluxbase_migrations::DbErrorKind;

use self::account::{Account, USER_JSON};
use crate::audit::{Attempt, AuditAction, AuditEvent, count_attempt};
use crate::password::{self, Verified};
use crate::sessions::SessionStore;
use crate::tokens::{Grant, now_secs};
use crate::{AdminSession, AuthError, AuthService, Caller, Client, Realm, dashboard, email};

/// Longest `full_name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Lifetime of the token between the password step and the 2FA step.
pub const MFA_TOKEN_TTL_SECS: u64 = 300;

/// A new administrator.
#[derive(Debug)]
pub struct AdminSignUp {
    /// The address (email policy).
    pub email: String,
    /// The password (the dashboard's password policy); never logged.
    pub password: String,
    /// A display name.
    pub full_name: Option<String>,
}

/// What a correct password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    Granted(Grant),
    /// 2FA is on: present a code with this token to `2fa/verify`.
    TwoFactorRequired {
        /// The second-step token (audience `fluxbase-dashboard-2fa`, no role).
        mfa_token: String,
        /// Its lifetime in seconds.
        expires_in: u64,
    },
}

impl AuthService {
    /// Creates an administrator: the first one without credentials, later ones only by a
    /// dashboard admin (`caller`) with a live session.
    pub async fn admin_sign_up(
        &self,
        caller: &Caller,
        request: AdminSignUp,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let exists_sql = "SELECT EXISTS (SELECT 1 FROM dashboard.users)";
        let any_admin = |rows: &[tokio_postgres::Row]| rows.first().is_some_and(|r| r.get(0));
        let first = !any_admin(&self.db().query(exists_sql, &[]).await?);
        let creator = if first {
            None
        } else {
            Some(creator_of(caller)?)
        };
        let email = email::new_address(&request.email)?;
        self.password_policy(Realm::Dashboard)
            .check_new(&request.password)?;
        let full_name = request
            .full_name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        if let Some(name) = &full_name
            && (name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control))
        {
            return Err(AuthError::invalid(
                "full_name",
                format!("must be at most {MAX_NAME_CHARS} characters, without control characters"),
            ));
        }
        let hash = self.hasher().hash(request.password).await?;

        // The "no admin yet" decision and the insert under one lock: two concurrent first
        // signups cannot both create an admin without credentials.
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('fluxbase.dashboard.signup'))",
            &[],
        )
        .await?;
        if creator.is_none() && any_admin(&tx.query(exists_sql, &[]).await?) {
            return Err(creator_of(caller).err().unwrap_or_else(admin_needed));
        }
        let sql = format!(
            "INSERT INTO dashboard.users AS u (email, encrypted_password, full_name) \
             VALUES ($1, $2, $3) RETURNING u.id, {USER_JSON}"
        );
        let row = match tx.query_one(&sql, &[&email, &hash, &full_name]).await {
            Ok(row) => row,
            Err(err) => {
                let err = fluxbase_migrations::DbError::from(err);
                return Err(if err.kind() == DbErrorKind::UniqueViolation {
                    AuthError::AlreadyExists
                } else {
                    err.into()
                });
            }
        };
        tx.commit().await?;
        drop(conn);
        let (id, user): (Uuid, Value) = (row.get(0), row.get(1));
        self.audit()
            .record(AuditEvent {
                realm: Realm::Dashboard,
                action: AuditAction::Signup,
                actor: Some(id),
                client,
                details: json!({"first_admin": first, "created_by": creator}),
            })
            .await;
        Ok(user)
    }

    /// Email and password of an administrator → tokens, or the 2FA challenge. (The caller
    /// applies the login rate limit first.)
    pub async fn admin_login(
        &self,
        email_text: &str,
        password: String,
        client: &Client,
    ) -> Result<LoginOutcome, AuthError> {
        let keys = self.keys()?;
        let email = email::presented(email_text)?;
        password::check_presented(&password)?;
        let Some(account) = Account::by_email(self, &email).await? else {
            // The same work and answer as a wrong password: no enumeration by time or text.
            self.hasher().dummy_verify(password).await?;
            count_attempt(Attempt::Failure, "unknown_email");
            self.admin_event(
                None,
                AuditAction::LoginFailed,
                client,
                json!({"reason": "unknown_email"}),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        };
        if let Some(secs) = account.locked_secs {
            return Err(self.refuse_locked(account.id, client, secs).await);
        }
        let verified = self
            .hasher()
            .verify(password.clone(), account.encrypted_password.clone())
            .await?;
        let reason = match verified {
            Ok(Verified::Yes) => None,
            Ok(Verified::YesRehash) => {
                // A bcrypt hash (set with the runbook's crypt()): argon2id from now on.
                let hash = self.hasher().hash(password).await?;
                self.db()
                    .query(
                        "UPDATE dashboard.users SET encrypted_password = $2, updated_at = now() \
                         WHERE id = $1",
                        &[&account.id, &hash],
                    )
                    .await?;
                None
            }
            Ok(Verified::No) => Some("wrong_password"),
            Err(err) => {
                tracing::error!(error = %err, user_id = %account.id, "stored password hash is unreadable");
                Some("unsupported_hash")
            }
        };
        if let Some(reason) = reason {
            count_attempt(Attempt::Failure, reason);
            self.admin_event(
                Some(account.id),
                AuditAction::LoginFailed,
                client,
                json!({"reason": reason}),
            )
            .await;
            self.record_failure(account.id, client).await?;
            return Err(AuthError::InvalidCredentials);
        }
        if account.totp_enabled {
            // The failure count is kept until the second step succeeds: knowing the password
            // must not reset the lockout of someone guessing codes.
            let ttl = MFA_TOKEN_TTL_SECS;
            let claims =
                dashboard::mfa_claims(&account.id.to_string(), &account.email, now_secs(), ttl);
            count_attempt(Attempt::Challenge, "2fa_required");
            self.admin_event(
                Some(account.id),
                AuditAction::TwoFactorRequired,
                client,
                json!({}),
            )
            .await;
            return Ok(LoginOutcome::TwoFactorRequired {
                mfa_token: keys.sign(&claims),
                expires_in: ttl,
            });
        }
        self.complete_login(&account, client, "password")
            .await
            .map(LoginOutcome::Granted)
    }

    /// Ends a successful login (password, or password + 2FA): resets the failure count,
    /// opens a session, grants tokens.
    async fn complete_login(
        &self,
        account: &Account,
        client: &Client,
        method: &'static str,
    ) -> Result<Grant, AuthError> {
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let updated = tx
            .execute(
                "UPDATE dashboard.users SET failed_login_attempts = 0, locked_until = NULL, \
                 last_login_at = now() WHERE id = $1",
                &[&account.id],
            )
            .await?;
        if updated == 0 {
            return Err(AuthError::InvalidCredentials);
        }
        let (session_id, refresh) =
            SessionStore::open(&tx, Realm::Dashboard, account.id, client).await?;
        tx.commit().await?;
        drop(conn);
        let user = self
            .admin_json(account.id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        count_attempt(Attempt::Success, method);
        self.admin_event(
            Some(account.id),
            AuditAction::Login,
            client,
            json!({"method": method, "session_id": session_id}),
        )
        .await;
        self.grant(Realm::Dashboard, user, session_id, &refresh)
    }

    /// Ends the administrator's session: its refresh tokens and its access token stop.
    pub async fn admin_logout(
        &self,
        admin: &AdminSession,
        client: &Client,
    ) -> Result<(), AuthError> {
        self.sessions()
            .end(Realm::Dashboard, admin.session_id, admin.user_id)
            .await?;
        self.admin_event(
            Some(admin.user_id),
            AuditAction::Logout,
            client,
            json!({"session_id": admin.session_id}),
        )
        .await;
        Ok(())
    }

    /// The administrator's account (public fields), while the session lasts.
    pub async fn admin_me(&self, admin: &AdminSession) -> Result<Value, AuthError> {
        Ok(Account::of_session(self, admin).await?.public)
    }

    /// The public JSON of administrator `id`.
    pub(crate) async fn admin_json(&self, id: Uuid) -> Result<Option<Value>, AuthError> {
        let sql = format!("SELECT {USER_JSON} FROM dashboard.users u WHERE u.id = $1");
        let rows = self.db().query(&sql, &[&id]).await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// One dashboard audit event.
    pub(crate) async fn admin_event(
        &self,
        user: Option<Uuid>,
        action: AuditAction,
        client: &Client,
        details: Value,
    ) {
        self.audit()
            .record(AuditEvent {
                realm: Realm::Dashboard,
                action,
                actor: user,
                client,
                details,
            })
            .await;
    }

    /// Refuses a login step on a locked account: counted, audited, 423.
    async fn refuse_locked(&self, user: Uuid, client: &Client, secs: i64) -> AuthError {
        count_attempt(Attempt::Failure, "account_locked");
        self.admin_event(
            Some(user),
            AuditAction::LoginFailed,
            client,
            json!({"reason": "account_locked"}),
        )
        .await;
        locked(secs)
    }

    /// Counts a failed password or 2FA code against the account; the failure that reaches
    /// `dashboard.max_failed_logins` locks it and answers the lock instead.
    async fn record_failure(&self, account: Uuid, client: &Client) -> Result<(), AuthError> {
        let lockout = self.settings().lockout;
        let max = i32::try_from(lockout.max_failed_logins).unwrap_or(i32::MAX);
        let duration = lockout.duration.as_secs_f64();
        let rows = self
            .db()
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
        let Some(secs) = rows.first().and_then(|r| r.get::<_, Option<i64>>(0)) else {
            return Ok(());
        };
        count_attempt(Attempt::Failure, "account_locked");
        self.admin_event(
            Some(account),
            AuditAction::AccountLocked,
            client,
            json!({"reason": "too_many_failures", "failed_logins": lockout.max_failed_logins, "locked_for_secs": secs}),
        )
        .await;
        Err(locked(secs))
    }
}

/// The administrator allowed to create another, or why not.
fn creator_of(caller: &Caller) -> Result<Uuid, AuthError> {
    match caller {
        Caller::Admin(admin) => Ok(admin.user_id),
        Caller::Anon(_) => Err(admin_needed()),
        _ => Err(AuthError::Forbidden(
            "creating a dashboard admin needs a dashboard admin's session \
             (service keys, service_role and application users cannot)"
                .into(),
        )),
    }
}

/// 401 for creating an admin without credentials once one exists.
fn admin_needed() -> AuthError {
    AuthError::Unauthenticated(
        "an admin already exists: creating another needs a dashboard admin's token".into(),
    )
}

/// The 423 of a locked account, with the time left.
fn locked(secs: i64) -> AuthError {
    AuthError::Locked {
        seconds: secs.max(1) as u64,
    }
}
