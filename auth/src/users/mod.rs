//! Application users (`auth.users`, `auth.identities`, `auth.sessions`): sign-up, sign-in,
//! refresh (for both realms), sign-out here; the signed-in user's own record in [`profile`];
//! their JSON in [`shape`]. Every event is audited and counted in
//! `fluxbase_auth_attempts_total`.
//!
//! With `auth.email_confirmation` on, a sign-up waits for its address to be confirmed (a
//! link or code sent by email, [`crate::verification`]) and password sign-in refuses
//! unconfirmed addresses; off, addresses count as confirmed at once. An operator can still
//! reset a password with the runbook's `crypt(…, gen_salt('bf'))`, which signs in once and
//! is upgraded to argon2id on that sign-in.

mod account;
pub mod profile;
pub(crate) mod shape;

pub(crate) use account::{NewAccount, insert_account};
pub use profile::MetadataMerge;
pub(crate) use shape::iso;

use serde_json::{Value, json};
use uuid::Uuid;

use self::shape::{app_user_json, user_json};
use crate::audit::{Attempt, AuditAction, AuditEvent, count_attempt};
use crate::error::RefreshRefusal;
use crate::mail::OutgoingEmail;
use crate::one_time::{Purpose, TokenStore};
use crate::password::{self, Verified};
use crate::sessions::SessionStore;
use crate::tokens::Grant;
use crate::verification::Links;
use crate::{AuthError, AuthService, Client, Realm, UserSession, email};

/// A sign-up.
#[derive(Debug)]
pub struct SignUp {
    /// The address (checked by the email policy).
    pub email: String,
    /// The password (checked by the realm's password policy); never logged.
    pub password: String,
    /// `user_metadata`: a JSON object, or nothing.
    pub data: Option<Value>,
}

/// A change to the signed-in user; at least one field.
#[derive(Debug, Default)]
pub struct UserUpdate {
    /// A new address.
    pub email: Option<String>,
    /// A new password: ends the user's other sessions.
    pub password: Option<String>,
    /// Merged key by key into `user_metadata`.
    pub data: Option<Value>,
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutScope {
    /// The caller's session.
    Local,
    /// Every session of the user.
    Global,
    /// Every session but the caller's.
    Others,
}

impl SignOutScope {
    /// `local`, `global` or `others`.
    pub fn parse(text: &str) -> Option<SignOutScope> {
        match text {
            "local" => Some(SignOutScope::Local),
            "global" => Some(SignOutScope::Global),
            "others" => Some(SignOutScope::Others),
            _ => None,
        }
    }

    /// The `scope` recorded in the audit details.
    fn as_str(self) -> &'static str {
        match self {
            SignOutScope::Local => "local",
            SignOutScope::Global => "global",
            SignOutScope::Others => "others",
        }
    }
}

/// What a sign-up gives: a session when the address counts as confirmed at once, else the
/// account waiting for its confirmation. Serialized as the session, or as `{"user": …}`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum SignedUp {
    /// Signed in.
    Session(Grant),
    /// Waiting for the address to be confirmed (a link and code were sent): no session.
    Pending {
        /// The account (for an address that was already taken, a look-alike with a random
        /// id, so the answer does not tell whether the address has an account).
        user: Value,
    },
}

impl SignedUp {
    /// The session, when signed in.
    pub fn session(self) -> Option<Grant> {
        match self {
            SignedUp::Session(grant) => Some(grant),
            SignedUp::Pending { .. } => None,
        }
    }
}

/// The `app_metadata` of an account created with an email address.
pub(crate) fn email_provider() -> Value {
    json!({"provider": "email", "providers": ["email"]})
}

/// `user_metadata` must be a JSON object (null: none).
pub(crate) fn metadata(data: Option<Value>) -> Result<Option<Value>, AuthError> {
    match data {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(AuthError::invalid("data", "must be a JSON object")),
    }
}

impl AuthService {
    /// Creates an application user: signed in at once, or — with `auth.email_confirmation`
    /// on — waiting for the confirmation sent to the address (links from the configured
    /// `server.base_url`). The Fluxbase paths' sign-up.
    pub async fn sign_up(&self, request: SignUp, client: &Client) -> Result<SignedUp, AuthError> {
        let links = self.links(None, None);
        self.register(request, &links, client).await
    }

    /// [`AuthService::sign_up`] with the links of the confirmation email given (GoTrue's
    /// `/auth/v1/signup`, which knows the request's URL and its `redirect_to`).
    pub async fn register(
        &self,
        request: SignUp,
        links: &Links,
        client: &Client,
    ) -> Result<SignedUp, AuthError> {
        self.keys()?;
        let email = email::new_address(&request.email)?;
        self.password_policy(Realm::App)
            .check_new(&request.password)?;
        let data = metadata(request.data)?.unwrap_or_else(|| json!({}));
        let hash = self.hasher().hash(request.password).await?;
        let confirm_later = self.settings().email.confirmation_required;

        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let account = NewAccount {
            id: None,
            email: &email,
            password_hash: Some(&hash),
            app_metadata: email_provider(),
            user_metadata: data.clone(),
            confirmed: !confirm_later,
            signed_in: !confirm_later,
        };
        let Some(user_id) = insert_account(&tx, &account).await? else {
            drop(tx);
            drop(conn);
            if !confirm_later {
                return Err(exists());
            }
            // Answer as for a new address; an unconfirmed owner gets the link again.
            count_attempt(Attempt::Failure, "user_already_exists");
            match self.resend_confirmation(&email, links, client).await {
                Ok(()) | Err(AuthError::EmailRateLimited { .. }) => {}
                Err(err) => return Err(err),
            }
            return Ok(SignedUp::Pending {
                user: self.look_alike(&email, &data).await?,
            });
        };
        if confirm_later {
            let ttl = self.settings().email.otp_ttl;
            let secrets =
                TokenStore::issue(&tx, user_id, Purpose::Confirmation, &email, ttl, None).await?;
            let user = app_user_json(&tx, user_id).await?;
            tx.commit().await?;
            drop(conn);
            count_attempt(Attempt::Success, "signup");
            self.audit()
                .record(AuditEvent {
                    realm: Realm::App,
                    action: AuditAction::Signup,
                    actor: Some(user_id),
                    client,
                    details: json!({"provider": "email", "confirmed": false}),
                })
                .await;
            self.mailer().send(OutgoingEmail::new(
                Purpose::Confirmation,
                &email,
                user_id,
                links,
                &secrets,
                ttl,
            ));
            return Ok(SignedUp::Pending { user });
        }
        let (session_id, refresh) = SessionStore::open(&tx, Realm::App, user_id, client).await?;
        let user = app_user_json(&tx, user_id).await?;
        tx.commit().await?;
        drop(conn);
        count_attempt(Attempt::Success, "signup");
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::Signup,
                actor: Some(user_id),
                client,
                details: json!({"session_id": session_id, "provider": "email"}),
            })
            .await;
        self.grant(Realm::App, user, session_id, &refresh)
            .map(SignedUp::Session)
    }

    /// The answer to a repeated sign-up while confirmation is on: an account-shaped object
    /// with a random id and no dates but now, as GoTrue answers, so that the response does
    /// not tell whether the address has an account.
    async fn look_alike(&self, email: &str, data: &Value) -> Result<Value, AuthError> {
        let row = self
            .db()
            .query(
                concat!(
                    "SELECT jsonb_build_object('id', gen_random_uuid(), 'aud', 'authenticated', ",
                    "'role', '', 'email', $1::text, 'phone', '', 'email_confirmed_at', NULL, ",
                    "'app_metadata', $2::jsonb, 'user_metadata', $3::jsonb, ",
                    "'identities', '[]'::jsonb, 'is_anonymous', false, ",
                    "'created_at', ",
                    iso!("now()"),
                    ", 'updated_at', ",
                    iso!("now()"),
                    ")"
                ),
                &[&email, &email_provider(), data],
            )
            .await?;
        Ok(row[0].get(0))
    }

    /// Signs an application user in. Unknown accounts cost the same password check as
    /// known ones and get the same answer. (The caller applies the login rate limit first.)
    pub async fn sign_in(
        &self,
        email_text: &str,
        password: String,
        client: &Client,
    ) -> Result<Grant, AuthError> {
        self.keys()?;
        let email = email::presented(email_text)?;
        password::check_presented(&password)?;
        let rows = self
            .db()
            .query(
                "SELECT id, encrypted_password, email_confirmed_at IS NOT NULL \
                 FROM auth.users WHERE lower(email) = $1 \
                 ORDER BY (email = $1) DESC, created_at LIMIT 1",
                &[&email],
            )
            .await?;
        let found: Option<(Uuid, Option<String>, bool)> =
            rows.first().map(|r| (r.get(0), r.get(1), r.get(2)));
        let (user_id, stored, confirmed) = match found {
            Some((id, Some(stored), confirmed)) => (id, stored, confirmed),
            Some((id, None, _)) => {
                self.hasher().dummy_verify(password).await?;
                return Err(self.sign_in_failed(Some(id), "no_password", client).await);
            }
            None => {
                self.hasher().dummy_verify(password).await?;
                return Err(self.sign_in_failed(None, "unknown_email", client).await);
            }
        };
        let rehash = match self.hasher().verify(password.clone(), stored).await? {
            Ok(Verified::Yes) => None,
            Ok(Verified::YesRehash) => Some(self.hasher().hash(password).await?),
            Ok(Verified::No) => {
                return Err(self
                    .sign_in_failed(Some(user_id), "wrong_password", client)
                    .await);
            }
            Err(err) => {
                tracing::error!(error = %err, user_id = %user_id, "stored password hash is unreadable");
                return Err(self
                    .sign_in_failed(Some(user_id), "unsupported_hash", client)
                    .await);
            }
        };
        if !confirmed && self.settings().email.confirmation_required {
            // Only the password's holder learns that the address waits for confirmation.
            count_attempt(Attempt::Failure, "email_not_confirmed");
            self.audit()
                .record(AuditEvent {
                    realm: Realm::App,
                    action: AuditAction::LoginFailed,
                    actor: Some(user_id),
                    client,
                    details: json!({"reason": "email_not_confirmed"}),
                })
                .await;
            return Err(AuthError::EmailNotConfirmed);
        }
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let updated = tx
            .execute(
                "UPDATE auth.users SET last_sign_in_at = now(), \
                 encrypted_password = coalesce($2, encrypted_password) WHERE id = $1",
                &[&user_id, &rehash],
            )
            .await?;
        if updated == 0 {
            // Deleted between the two statements.
            drop(tx);
            drop(conn);
            return Err(self.sign_in_failed(None, "unknown_email", client).await);
        }
        let (session_id, refresh) = SessionStore::open(&tx, Realm::App, user_id, client).await?;
        let user = app_user_json(&tx, user_id).await?;
        tx.commit().await?;
        drop(conn);
        let method = if rehash.is_some() {
            "password_rehashed"
        } else {
            "password"
        };
        count_attempt(Attempt::Success, method);
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::Login,
                actor: Some(user_id),
                client,
                details: json!({"session_id": session_id, "method": method}),
            })
            .await;
        self.grant(Realm::App, user, session_id, &refresh)
    }

    /// Counts, audits and answers a failed sign-in (one answer whatever the reason).
    async fn sign_in_failed(
        &self,
        actor: Option<Uuid>,
        reason: &'static str,
        client: &Client,
    ) -> AuthError {
        count_attempt(Attempt::Failure, reason);
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::LoginFailed,
                actor,
                client,
                details: json!({"reason": reason}),
            })
            .await;
        AuthError::InvalidCredentials
    }

    /// Rotates a refresh token of `realm`: a new access token and a new refresh token; the
    /// presented one stops working. A replay of a rotated token, or an expired one, ends the
    /// whole session.
    pub async fn refresh(
        &self,
        realm: Realm,
        presented: &str,
        client: &Client,
    ) -> Result<Grant, AuthError> {
        self.keys()?;
        let ttl = self.settings().realm(realm).refresh_token_ttl;
        let rotated = match self.sessions().rotate(realm, presented, ttl).await? {
            Ok(rotated) => rotated,
            Err(refused) => {
                let (action, reason, label) = match refused.refusal {
                    RefreshRefusal::Reused => (
                        AuditAction::TokenReuseDetected,
                        "refresh_token_reused",
                        "refresh_token_reused",
                    ),
                    RefreshRefusal::Expired => (
                        AuditAction::TokenRefreshFailed,
                        "expired",
                        "refresh_token_expired",
                    ),
                    RefreshRefusal::NotFound => (
                        AuditAction::TokenRefreshFailed,
                        "not_found",
                        "invalid_refresh_token",
                    ),
                };
                count_attempt(Attempt::Failure, label);
                self.audit()
                    .record(AuditEvent {
                        realm,
                        action,
                        actor: refused.user_id,
                        client,
                        details: json!({"reason": reason, "session_id": refused.session_id}),
                    })
                    .await;
                return Err(AuthError::Refresh(refused.refusal));
            }
        };
        let user = match realm {
            Realm::App => {
                let conn = self.db().conn().await?;
                let row = conn
                    .query_opt(
                        concat!(
                            "SELECT ",
                            user_json!(),
                            " FROM auth.users u WHERE u.id = $1"
                        ),
                        &[&rotated.user_id],
                    )
                    .await?;
                row.map(|r| r.get::<_, Value>(0))
            }
            Realm::Dashboard => self.admin_json(rotated.user_id).await?,
        };
        let Some(user) = user else {
            return Err(AuthError::Refresh(RefreshRefusal::NotFound));
        };
        count_attempt(Attempt::Success, "refresh_token");
        self.audit()
            .record(AuditEvent {
                realm,
                action: AuditAction::TokenRefreshed,
                actor: Some(rotated.user_id),
                client,
                details: json!({"session_id": rotated.session_id}),
            })
            .await;
        self.grant(realm, user, rotated.session_id, &rotated.refresh)
    }

    /// Signs out: ends the caller's session, every session, or the others. Their refresh
    /// tokens stop at once, their access tokens on the next request, and the realtime engine
    /// closes their sockets.
    pub async fn sign_out(
        &self,
        user: &UserSession,
        scope: SignOutScope,
        client: &Client,
    ) -> Result<(), AuthError> {
        match scope {
            SignOutScope::Local => {
                self.sessions()
                    .end(Realm::App, user.session_id, user.user_id)
                    .await?;
            }
            SignOutScope::Global => {
                self.sessions()
                    .end_all(Realm::App, user.user_id, None)
                    .await?
            }
            SignOutScope::Others => {
                self.sessions()
                    .end_all(Realm::App, user.user_id, Some(user.session_id))
                    .await?
            }
        }
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::Logout,
                actor: Some(user.user_id),
                client,
                details: json!({"session_id": user.session_id, "scope": scope.as_str()}),
            })
            .await;
        Ok(())
    }
}

/// A signup to a taken address: counted, then refused.
fn exists() -> AuthError {
    count_attempt(Attempt::Failure, "user_already_exists");
    AuthError::AlreadyExists
}
