//! Application users (`auth.users`, `auth.identities`, `auth.sessions`): sign-up, sign-in,
//! refresh (for both realms), sign-out, and the signed-in user's own record. Every event is
//! audited and counted in `fluxbase_auth_attempts_total`.
//!
//! Email verification and password reset by email are not offered (no SMTP): an operator
//! resets a password with the runbook's `crypt(…, gen_salt('bf'))`, which signs in once and
//! is upgraded to argon2id on that sign-in.

use fluxbase_migrations::DbErrorKind;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{Attempt, AuditAction, AuditEvent, count_attempt};
use crate::error::RefreshRefusal;
use crate::password::{self, Verified};
use crate::sessions::{RefreshToken, SessionStore};
use crate::tokens::{self, Grant, TokenSubject};
use crate::{AuthError, AuthService, Client, Realm, UserSession, email};

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
pub(crate) use iso;

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

/// `user_metadata` must be a JSON object (null: none).
fn metadata(data: Option<Value>) -> Result<Option<Value>, AuthError> {
    match data {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(AuthError::invalid("data", "must be a JSON object")),
    }
}

impl AuthService {
    /// Creates an application user with a first session.
    pub async fn sign_up(&self, request: SignUp, client: &Client) -> Result<Grant, AuthError> {
        self.keys()?;
        let email = email::new_address(&request.email)?;
        self.password_policy(Realm::App)
            .check_new(&request.password)?;
        let data = metadata(request.data)?.unwrap_or_else(|| json!({}));
        let hash = self.hasher().hash(request.password).await?;
        let app_metadata = json!({"provider": "email", "providers": ["email"]});

        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let sql = concat!(
            "WITH u AS (",
            "  INSERT INTO auth.users (email, encrypted_password, raw_app_meta_data, raw_user_meta_data, last_sign_in_at)",
            "  SELECT $1, $2, $3, $4, now()",
            "  WHERE NOT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = $1)",
            "  RETURNING id, email",
            ") INSERT INTO auth.identities (user_id, provider, provider_id, identity_data)",
            "  SELECT id, 'email', id::text, jsonb_build_object('sub', id::text, 'email', email) FROM u",
            "  RETURNING user_id"
        );
        let inserted = tx
            .query_opt(sql, &[&email, &hash, &app_metadata, &data])
            .await
            .map_err(fluxbase_migrations::DbError::from);
        let user_id: Uuid = match inserted {
            Ok(Some(row)) => row.get(0),
            Ok(None) => return Err(exists()),
            Err(err) if err.kind() == DbErrorKind::UniqueViolation => return Err(exists()),
            Err(err) => return Err(err.into()),
        };
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
                "SELECT id, encrypted_password FROM auth.users WHERE lower(email) = $1 \
                 ORDER BY (email = $1) DESC, created_at LIMIT 1",
                &[&email],
            )
            .await?;
        let found: Option<(Uuid, Option<String>)> = rows.first().map(|r| (r.get(0), r.get(1)));
        let (user_id, stored) = match found {
            Some((id, Some(stored))) => (id, stored),
            Some((id, None)) => {
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

    /// The signed-in user, while their session lasts.
    pub async fn user(&self, user: &UserSession) -> Result<Value, AuthError> {
        let sql = concat!(
            "SELECT ",
            user_json!(),
            " FROM auth.users u ",
            "WHERE u.id = $1 AND EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = $2 AND s.user_id = u.id)"
        );
        let rows = self
            .db()
            .query(sql, &[&user.user_id, &user.session_id])
            .await?;
        rows.first()
            .map(|r| r.get::<_, Value>(0))
            .ok_or(AuthError::SessionEnded)
    }

    /// Changes the signed-in user's email, password or metadata (merged key by key). A new
    /// password ends the user's other sessions.
    pub async fn update_user(
        &self,
        user: &UserSession,
        update: UserUpdate,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let email = update
            .email
            .as_deref()
            .map(email::new_address)
            .transpose()?;
        if let Some(p) = &update.password {
            self.password_policy(Realm::App).check_new(p)?;
        }
        let data = metadata(update.data)?;
        if email.is_none() && update.password.is_none() && data.is_none() {
            return Err(AuthError::Missing(
                "nothing to update: give at least one of `email`, `password`, `data`",
            ));
        }
        let changed: Vec<&str> = [
            email.as_ref().map(|_| "email"),
            update.password.as_ref().map(|_| "password"),
            data.as_ref().map(|_| "user_metadata"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let hash = match update.password {
            Some(p) => Some(self.hasher().hash(p).await?),
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
        let result = self
            .db()
            .query(
                sql,
                &[&user.user_id, &user.session_id, &email, &hash, &data],
            )
            .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(err) if err.kind() == DbErrorKind::UniqueViolation => {
                return Err(AuthError::AlreadyExists);
            }
            Err(err) => return Err(err.into()),
        };
        let row = rows.first().ok_or(AuthError::SessionEnded)?;
        let (updated, session_ok): (Option<Value>, bool) = (row.get(0), row.get(1));
        if !session_ok {
            return Err(AuthError::SessionEnded);
        }
        let updated = updated.ok_or(AuthError::AlreadyExists)?;
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::UserUpdated,
                actor: Some(user.user_id),
                client,
                details: json!({"session_id": user.session_id, "fields": changed}),
            })
            .await;
        Ok(updated)
    }

    /// The grant of a session: a fresh access token of `realm` and the refresh token.
    pub(crate) fn grant(
        &self,
        realm: Realm,
        user: Value,
        session_id: Uuid,
        refresh: &RefreshToken,
    ) -> Result<Grant, AuthError> {
        let keys = self.keys()?;
        let ttl = self.settings().realm(realm).access_token_ttl;
        let now = tokens::now_secs();
        let user_id = user["id"].as_str().unwrap_or_default().to_string();
        let session = session_id.to_string();
        let access = match realm {
            Realm::App => tokens::issue_access_token(
                keys,
                &TokenSubject {
                    user_id: &user_id,
                    email: user["email"].as_str(),
                    session_id: &session,
                    app_metadata: &user["app_metadata"],
                    user_metadata: &user["user_metadata"],
                },
                ttl,
                now,
            ),
            Realm::Dashboard => {
                let ttl = ttl.as_secs().max(1);
                let email = user["email"].as_str().unwrap_or_default();
                let claims = crate::dashboard::access_claims(&user_id, email, &session, now, ttl);
                tokens::AccessToken {
                    token: keys.sign(&claims),
                    expires_in: ttl,
                    expires_at: now + ttl,
                }
            }
        };
        Ok(Grant {
            access_token: access.token,
            token_type: "bearer",
            expires_in: access.expires_in,
            expires_at: access.expires_at,
            refresh_token: refresh.token.clone(),
            user,
        })
    }
}

/// The public JSON of app user `id`, inside `tx`.
async fn app_user_json(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<Value, AuthError> {
    let row = tx
        .query_one(
            concat!(
                "SELECT ",
                user_json!(),
                " FROM auth.users u WHERE u.id = $1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}

/// A signup to a taken address: counted, then refused.
fn exists() -> AuthError {
    count_attempt(Attempt::Failure, "user_already_exists");
    AuthError::AlreadyExists
}
