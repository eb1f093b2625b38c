//! The email flow of application users, over [`crate::one_time`] tokens and the
//! [`crate::mail`] sender: password recovery, passwordless sign-in (magic link or code),
//! confirmation re-sends, invitations, verification (which spends the token and opens a
//! session), and administrators' generated links.
//!
//! Every request for an email answers the same whether or not the address has an account
//! (recovery of an unknown address sends nothing and succeeds); emails of one purpose to one
//! account are at least `auth.email_min_interval` apart. A token is checked against the
//! account's current address when it is spent, so a link sent before an email change stops
//! working after it.

mod links;

pub use links::{Links, encode, is_allowed};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{Attempt, AuditAction, AuditEvent, count_attempt};
use crate::mail::OutgoingEmail;
use crate::one_time::{Consumed, Purpose, Secrets, TokenStore, VerifyType, is_code};
use crate::sessions::{RefreshToken, SessionStore};
use crate::tokens::Grant;
use crate::users::shape::{app_user_json, fetch_record};
use crate::users::{NewAccount, email_provider, insert_account, metadata};
use crate::{AuthError, AuthService, Client, Realm, email};

/// What a verification presents.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// The code of an email, with the address it was sent to.
    Code {
        /// The address.
        email: &'a str,
        /// The six digits.
        code: &'a str,
    },
    /// The link token of an email (`token_hash`, or the link's `token`).
    Link {
        /// The token.
        token: &'a str,
    },
}

/// The kinds of link an administrator can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Confirms a new account (created with the given password if the address is new).
    Signup,
    /// Invites a new account (no password).
    Invite,
    /// Signs an existing account in.
    MagicLink,
    /// Signs an existing account in to set a new password.
    Recovery,
}

impl LinkKind {
    /// `signup`, `invite`, `magiclink`, `recovery`.
    pub fn parse(text: &str) -> Option<LinkKind> {
        Some(match text {
            "signup" => LinkKind::Signup,
            "invite" => LinkKind::Invite,
            "magiclink" => LinkKind::MagicLink,
            "recovery" => LinkKind::Recovery,
            _ => return None,
        })
    }
}

/// A link generated for an administrator: nothing is sent.
#[derive(Debug, Clone)]
pub struct GeneratedLink {
    /// The account (GoTrue's full JSON).
    pub user: Value,
    /// The link to follow.
    pub action_link: String,
    /// The code.
    pub email_otp: String,
    /// The link token (`token_hash` for `verifyOtp`).
    pub hashed_token: String,
    /// The `type` to verify with.
    pub verification_type: &'static str,
    /// Where the link lands.
    pub redirect_to: Option<String>,
}

/// The account of an address: id and whether the address is confirmed.
async fn account_of(
    service: &AuthService,
    address: &str,
) -> Result<Option<(Uuid, bool)>, AuthError> {
    let rows = service
        .db()
        .query(
            "SELECT id, email_confirmed_at IS NOT NULL FROM auth.users WHERE lower(email) = $1 \
             ORDER BY (email = $1) DESC, created_at LIMIT 1",
            &[&address],
        )
        .await?;
    Ok(rows.first().map(|r| (r.get(0), r.get(1))))
}

impl AuthService {
    /// Issues a token of `purpose` to `address` (at most one per `auth.email_min_interval`
    /// when `rate_limited`) and returns its secrets.
    async fn issue(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        address: &str,
        rate_limited: bool,
    ) -> Result<Secrets, AuthError> {
        let settings = &self.settings().email;
        let interval = rate_limited.then_some(settings.min_interval);
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let secrets =
            TokenStore::issue(&tx, user_id, purpose, address, settings.otp_ttl, interval).await?;
        tx.commit().await?;
        Ok(secrets)
    }

    /// Issues a token of `purpose` and emails it, audited.
    async fn issue_and_send(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        address: &str,
        links: &Links,
        client: &Client,
    ) -> Result<(), AuthError> {
        let secrets = self.issue(user_id, purpose, address, true).await?;
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::TokenRequested(purpose),
                actor: Some(user_id),
                client,
                details: json!({"purpose": purpose.as_str()}),
            })
            .await;
        let ttl = self.settings().email.otp_ttl;
        self.mailer().send(OutgoingEmail::new(
            purpose, address, user_id, links, &secrets, ttl,
        ));
        Ok(())
    }

    /// Emails a recovery link and code to the account of `email_text` (GoTrue's `/recover`).
    /// An unknown address succeeds and sends nothing.
    pub async fn request_recovery(
        &self,
        email_text: &str,
        links: &Links,
        client: &Client,
    ) -> Result<(), AuthError> {
        let address = email::presented(email_text)?;
        match account_of(self, &address).await? {
            Some((user_id, _)) => {
                self.issue_and_send(user_id, Purpose::Recovery, &address, links, client)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Emails a sign-in link and code (GoTrue's `/otp`): a magic link to a confirmed
    /// account, a confirmation to an unconfirmed one, and — when `create_user` — creates a
    /// passwordless account (with `data` as its metadata) for a new address first.
    pub async fn request_magic_link(
        &self,
        email_text: &str,
        create_user: bool,
        data: Option<Value>,
        links: &Links,
        client: &Client,
    ) -> Result<(), AuthError> {
        let address = email::presented(email_text)?;
        let data = metadata(data)?;
        let (user_id, purpose) = match account_of(self, &address).await? {
            Some((id, true)) => (id, Purpose::MagicLink),
            Some((id, false)) => (id, Purpose::Confirmation),
            None if !create_user => return Err(AuthError::SignupNotAllowed),
            None => {
                let address = email::new_address(email_text)?;
                let id = self
                    .create_passwordless(&address, data.unwrap_or_else(|| json!({})), client)
                    .await?;
                (id, Purpose::Confirmation)
            }
        };
        self.issue_and_send(user_id, purpose, &address, links, client)
            .await
    }

    /// A passwordless, unconfirmed account (a first passwordless sign-in or an invitation).
    async fn create_passwordless(
        &self,
        address: &str,
        data: Value,
        client: &Client,
    ) -> Result<Uuid, AuthError> {
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let account = NewAccount {
            id: None,
            email: address,
            password_hash: None,
            app_metadata: email_provider(),
            user_metadata: data,
            confirmed: false,
            signed_in: false,
        };
        let id = insert_account(&tx, &account)
            .await?
            .ok_or(AuthError::AlreadyExists)?;
        tx.commit().await?;
        count_attempt(Attempt::Success, "signup");
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::Signup,
                actor: Some(id),
                client,
                details: json!({"provider": "email", "password": false}),
            })
            .await;
        Ok(id)
    }

    /// Sends the confirmation again to the unconfirmed account of `email_text` (GoTrue's
    /// `/resend` of type `signup`, and a repeated sign-up). Anything else sends nothing.
    pub async fn resend_confirmation(
        &self,
        email_text: &str,
        links: &Links,
        client: &Client,
    ) -> Result<(), AuthError> {
        let address = email::presented(email_text)?;
        match account_of(self, &address).await? {
            Some((user_id, false)) => {
                self.issue_and_send(user_id, Purpose::Confirmation, &address, links, client)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Invites `email_text` (GoTrue's `/invite`): a passwordless account and an invitation
    /// email. A confirmed account of the address is refused.
    pub async fn invite_user(
        &self,
        email_text: &str,
        data: Option<Value>,
        links: &Links,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let address = email::new_address(email_text)?;
        let data = metadata(data)?.unwrap_or_else(|| json!({}));
        let user_id = match account_of(self, &address).await? {
            Some((_, true)) => return Err(AuthError::AlreadyExists),
            Some((id, false)) => id,
            None => self.create_passwordless(&address, data, client).await?,
        };
        self.issue_and_send(user_id, Purpose::Invite, &address, links, client)
            .await?;
        self.user_record(user_id)
            .await?
            .ok_or(AuthError::NotFound("user not found"))
    }

    /// Verifies a link token or a code of one of the purposes `kind` accepts: spends it
    /// (once), confirms the address (or, for an email change, makes the new address the
    /// account's), and opens a session. Any failure is [`AuthError::OtpInvalid`].
    pub async fn verify(
        &self,
        kind: VerifyType,
        proof: Proof<'_>,
        client: &Client,
    ) -> Result<Grant, AuthError> {
        self.keys()?;
        let purposes = kind.purposes();
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let consumed = match proof {
            Proof::Link { token } if RefreshToken::is_well_formed(token) => {
                TokenStore::consume_link(&tx, token, purposes).await?
            }
            Proof::Code { email: text, code } if is_code(code) => {
                let address = email::presented(text)?;
                TokenStore::consume_code(&tx, &address, code, purposes).await?
            }
            Proof::Link { .. } | Proof::Code { .. } => None,
        };
        let Some(consumed) = consumed else {
            // Keep the count of a wrong code.
            tx.commit().await?;
            drop(conn);
            return Err(self.otp_failed(None, "invalid_or_expired", client).await);
        };
        if !self.apply(&tx, &consumed).await? {
            // The account's address changed since the token was sent: it is void.
            tx.commit().await?;
            drop(conn);
            return Err(self
                .otp_failed(Some(consumed.user_id), "address_changed", client)
                .await);
        }
        let user_id = consumed.user_id;
        let (session_id, refresh) = SessionStore::open(&tx, Realm::App, user_id, client).await?;
        let user = app_user_json(&tx, user_id).await?;
        tx.commit().await?;
        drop(conn);
        count_attempt(Attempt::Success, "otp");
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::Login,
                actor: Some(user_id),
                client,
                details: json!({
                    "session_id": session_id,
                    "method": "otp",
                    "purpose": consumed.purpose.as_str(),
                }),
            })
            .await;
        self.grant(Realm::App, user, session_id, &refresh)
    }

    /// The effect of a spent token on its account. False when the account's address is no
    /// longer the one the token was sent to.
    async fn apply(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        consumed: &Consumed,
    ) -> Result<bool, AuthError> {
        let id = consumed.user_id;
        let address = &consumed.relates_to;
        if consumed.purpose != Purpose::EmailChange {
            let n = tx
                .execute(
                    "UPDATE auth.users SET email_confirmed_at = coalesce(email_confirmed_at, now()), \
                     last_sign_in_at = now(), updated_at = now() \
                     WHERE id = $1 AND lower(email) = $2",
                    &[&id, address],
                )
                .await?;
            return Ok(n == 1);
        }
        let taken = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = $2 AND id <> $1)",
                &[&id, address],
            )
            .await?
            .get::<_, bool>(0);
        if taken {
            return Err(AuthError::AlreadyExists);
        }
        let n = tx
            .execute(
                "UPDATE auth.users SET email = $2, email_confirmed_at = now(), \
                 last_sign_in_at = now(), updated_at = now() WHERE id = $1",
                &[&id, address],
            )
            .await?;
        if n == 1 {
            tx.execute(
                "UPDATE auth.identities SET identity_data = identity_data || \
                   jsonb_build_object('email', $2::text), updated_at = now() \
                 WHERE user_id = $1 AND provider = 'email'",
                &[&id, address],
            )
            .await?;
        }
        Ok(n == 1)
    }

    /// Counts, audits and answers a failed verification.
    async fn otp_failed(
        &self,
        actor: Option<Uuid>,
        reason: &'static str,
        client: &Client,
    ) -> AuthError {
        count_attempt(Attempt::Failure, "otp_invalid");
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::OtpFailed,
                actor,
                client,
                details: json!({"reason": reason}),
            })
            .await;
        AuthError::OtpInvalid
    }

    /// Generates a link and code of `kind` for `email_text` without sending anything
    /// (GoTrue's `/admin/generate_link`, for the service role). A signup link creates the
    /// account (with `password`) when the address is new; an invitation creates it without
    /// a password; magic links and recoveries need an existing account.
    pub async fn generate_link(
        &self,
        kind: LinkKind,
        email_text: &str,
        password: Option<String>,
        data: Option<Value>,
        links: &Links,
        client: &Client,
    ) -> Result<GeneratedLink, AuthError> {
        let found = account_of(self, &email::presented(email_text)?).await?;
        let (user_id, purpose) = match kind {
            LinkKind::MagicLink | LinkKind::Recovery => {
                let (id, _) = found.ok_or(AuthError::NotFound("user not found"))?;
                let purpose = if kind == LinkKind::Recovery {
                    Purpose::Recovery
                } else {
                    Purpose::MagicLink
                };
                (id, purpose)
            }
            LinkKind::Signup | LinkKind::Invite => {
                let purpose = if kind == LinkKind::Signup {
                    Purpose::Confirmation
                } else {
                    Purpose::Invite
                };
                match found {
                    Some((_, true)) => return Err(AuthError::AlreadyExists),
                    Some((id, false)) => (id, purpose),
                    None => {
                        let address = email::new_address(email_text)?;
                        let data = metadata(data)?.unwrap_or_else(|| json!({}));
                        let id = match (kind, password) {
                            (LinkKind::Signup, Some(password)) => {
                                self.create_with_password(&address, password, data, client)
                                    .await?
                            }
                            (LinkKind::Signup, None) => {
                                return Err(AuthError::Missing(
                                    "a signup link needs a `password` for the new account",
                                ));
                            }
                            _ => self.create_passwordless(&address, data, client).await?,
                        };
                        (id, purpose)
                    }
                }
            }
        };
        let address = email::presented(email_text)?;
        let secrets = self.issue(user_id, purpose, &address, false).await?;
        let conn = self.db().conn().await?;
        let user = fetch_record(&conn, user_id)
            .await?
            .ok_or(AuthError::NotFound("user not found"))?;
        Ok(GeneratedLink {
            user,
            action_link: links.action_link(purpose, &secrets.link_token),
            email_otp: secrets.code,
            hashed_token: secrets.link_token,
            verification_type: purpose.verify_type().as_str(),
            redirect_to: links.redirect_to.clone(),
        })
    }

    /// An unconfirmed account with a password (an administrator's signup link).
    async fn create_with_password(
        &self,
        address: &str,
        password: String,
        data: Value,
        client: &Client,
    ) -> Result<Uuid, AuthError> {
        self.password_policy(Realm::App).check_new(&password)?;
        let hash = self.hasher().hash(password).await?;
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let account = NewAccount {
            id: None,
            email: address,
            password_hash: Some(&hash),
            app_metadata: email_provider(),
            user_metadata: data,
            confirmed: false,
            signed_in: false,
        };
        let id = insert_account(&tx, &account)
            .await?
            .ok_or(AuthError::AlreadyExists)?;
        tx.commit().await?;
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::Signup,
                actor: Some(id),
                client,
                details: json!({"provider": "email", "by": "service_role"}),
            })
            .await;
        Ok(id)
    }
}
