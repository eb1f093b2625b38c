//! The one audit sink. Every security event of either realm becomes a row —
//! `auth.audit_log_entries` for application users and service keys, `dashboard.activity_log`
//! for administrators — and a log line with `log_type="audit"`, `scope`, `action`,
//! `success`, the actor, the client address and the reason, so both
//! `SELECT … FROM auth.audit_log_entries WHERE actor_id = …` (the runbook) and
//! `jq 'select(.log_type=="audit" and .success==false)'` find it.
//!
//! Details never hold a password, a token, a key or an email address: rows are found by
//! `actor_id`, which is all the runbook's SQL needs. Action names are stable: operators
//! query them.

use serde_json::Value;
use uuid::Uuid;

use fluxbase_migrations::Db;

use crate::one_time::Purpose;
use crate::{Client, Realm};

/// One kind of audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// An account was created.
    Signup,
    /// A sign-in succeeded.
    Login,
    /// A sign-in failed (the details say why).
    LoginFailed,
    /// The password was right and a second factor is now required.
    TwoFactorRequired,
    /// Too many failures locked the account.
    AccountLocked,
    /// A session ended by sign-out.
    Logout,
    /// A refresh token was rotated.
    TokenRefreshed,
    /// A refresh was refused (expired, unknown, ended session).
    TokenRefreshFailed,
    /// An already-rotated refresh token was presented: its session was revoked.
    TokenReuseDetected,
    /// A user changed their email, password or metadata.
    UserUpdated,
    /// 2FA enrolment started.
    TwoFactorSetup,
    /// 2FA enrolment confirmed.
    TwoFactorEnabled,
    /// A second factor was wrong or replayed.
    TwoFactorFailed,
    /// 2FA turned off.
    TwoFactorDisabled,
    /// A service key was created.
    ServiceKeyCreated,
    /// A service key was revoked.
    ServiceKeyRevoked,
    /// A service key was rotated (regenerated).
    ServiceKeyRotated,
    /// A service key was deleted.
    ServiceKeyDeleted,
    /// An email with a one-time link and code was requested (and sent).
    TokenRequested(Purpose),
    /// A one-time link or code was refused.
    OtpFailed,
    /// An application user was deleted by the service role.
    UserDeleted,
}

impl AuditAction {
    /// The `action` column and the log field (stable; application signups keep GoTrue's
    /// `user_signedup`, dashboard ones their historical `signup`).
    pub fn name(self, realm: Realm) -> &'static str {
        match self {
            AuditAction::Signup => match realm {
                Realm::App => "user_signedup",
                Realm::Dashboard => "signup",
            },
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::TwoFactorRequired => "login_2fa_required",
            AuditAction::AccountLocked => "account_locked",
            AuditAction::Logout => "logout",
            AuditAction::TokenRefreshed => "token_refreshed",
            AuditAction::TokenRefreshFailed => "token_refresh_failed",
            AuditAction::TokenReuseDetected => "token_reuse_detected",
            AuditAction::UserUpdated => "user_modified",
            AuditAction::TwoFactorSetup => "2fa_setup",
            AuditAction::TwoFactorEnabled => "2fa_enabled",
            AuditAction::TwoFactorFailed => "2fa_failed",
            AuditAction::TwoFactorDisabled => "2fa_disabled",
            AuditAction::ServiceKeyCreated => "service_key_created",
            AuditAction::ServiceKeyRevoked => "service_key_revoked",
            AuditAction::ServiceKeyRotated => "service_key_rotated",
            AuditAction::ServiceKeyDeleted => "service_key_deleted",
            AuditAction::TokenRequested(purpose) => match purpose {
                Purpose::Confirmation => "user_confirmation_requested",
                Purpose::Recovery => "user_recovery_requested",
                Purpose::MagicLink => "user_magiclink_requested",
                Purpose::EmailChange => "user_email_change_requested",
                Purpose::Invite => "user_invited",
            },
            AuditAction::OtpFailed => "otp_failed",
            AuditAction::UserDeleted => "user_deleted",
        }
    }

    /// Whether the event is a success (the `success` field and column).
    pub fn success(self) -> bool {
        !matches!(
            self,
            AuditAction::LoginFailed
                | AuditAction::AccountLocked
                | AuditAction::TokenRefreshFailed
                | AuditAction::TokenReuseDetected
                | AuditAction::TwoFactorFailed
                | AuditAction::OtpFailed
        )
    }
}

/// One event to record.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    /// Which table it goes to.
    pub realm: Realm,
    /// What happened.
    pub action: AuditAction,
    /// The user (app or dashboard) it concerns, when known.
    pub actor: Option<Uuid>,
    /// Who asked.
    pub client: &'a Client,
    /// Details (a JSON object; `reason` is also logged). No secrets, no emails.
    pub details: Value,
}

/// Writes audit rows and lines; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditSink {
    db: Db,
}

impl AuditSink {
    /// A sink writing through `db`.
    pub fn new(db: Db) -> Self {
        AuditSink { db }
    }

    /// Records one event. A failed insert is logged, not returned: the request's outcome
    /// does not depend on the audit table, and the log line is written either way.
    pub async fn record(&self, event: AuditEvent<'_>) {
        let AuditEvent {
            realm,
            action,
            actor,
            client,
            details,
        } = event;
        let name = action.name(realm);
        let success = action.success();
        let actor_text = actor.map(|a| a.to_string()).unwrap_or_default();
        let reason = details.get("reason").and_then(Value::as_str).unwrap_or("");
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    log_type = "audit",
                    scope = realm.as_str(),
                    action = name,
                    success,
                    actor_id = %actor_text,
                    ip = %client.ip,
                    reason,
                    "audit event"
                )
            };
        }
        if success {
            line!(info);
        } else {
            line!(warn);
        }
        let result = match realm {
            Realm::App => {
                self.db
                    .query(
                        "INSERT INTO auth.audit_log_entries (actor_id, action, ip, payload) \
                         VALUES ($1, $2, $3, $4)",
                        &[&actor, &name, &client.ip, &details],
                    )
                    .await
            }
            Realm::Dashboard => {
                self.db
                    .query(
                        "INSERT INTO dashboard.activity_log \
                         (user_id, action, success, ip, user_agent, details) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &actor,
                            &name,
                            &success,
                            &client.ip,
                            &client.user_agent,
                            &details,
                        ],
                    )
                    .await
            }
        };
        if let Err(err) = result {
            tracing::error!(error = %err, action = name, "could not write the audit log entry");
        }
    }
}

/// The outcome of an authentication attempt, the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Signed in, signed up or refreshed.
    Success,
    /// Refused.
    Failure,
    /// Half-way: the password was right, a second factor is due.
    Challenge,
}

/// Counts one attempt in `fluxbase_auth_attempts_total{result,reason}`.
pub fn count_attempt(result: Attempt, reason: &'static str) {
    let result = match result {
        Attempt::Success => "success",
        Attempt::Failure => "failure",
        Attempt::Challenge => "challenge",
    };
    metrics::counter!("fluxbase_auth_attempts_total", "result" => result, "reason" => reason)
        .increment(1);
}
