//! The signed-in application user's own record: read it, change its email, password or
//! metadata, and the grant (tokens) of a session. GoTrue's full JSON of any account is
//! [`AuthService::user_record`].

use fluxbase_migrations::DbErrorKind;
use serde_json::{Value, json};
use uuid::Uuid;

use super::shape::{self, user_json};
use super::{UserUpdate, metadata};
use crate::audit::{AuditAction, AuditEvent};
use crate::mail::OutgoingEmail;
use crate::one_time::{Purpose, TokenStore};
use crate::sessions::RefreshToken;
use crate::tokens::{self, Grant, TokenSubject};
use crate::verification::Links;
use crate::{AuthError, AuthService, Client, Realm, UserSession, email};

/// How keys of new metadata whose value is `null` are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMerge {
    /// Stored as `null` (the Fluxbase paths).
    KeepNulls,
    /// Remove the key (GoTrue's `data` and admin metadata).
    NullDeletes,
}

impl AuthService {
    /// GoTrue's full JSON of account `id` (`identities`, `phone`, a pending `new_email`…);
    /// `None` when there is no such account.
    pub async fn user_record(&self, id: Uuid) -> Result<Option<Value>, AuthError> {
        let conn = self.db().conn().await?;
        shape::fetch_record(&conn, id).await
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
    /// password ends the user's other sessions. With `auth.email_confirmation` on, a new
    /// address only takes effect once the link or code sent to it is verified.
    pub async fn update_user(
        &self,
        user: &UserSession,
        update: UserUpdate,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let links = self.links(None, None);
        self.update_profile(user, update, MetadataMerge::KeepNulls, &links, client)
            .await
    }

    /// [`AuthService::update_user`] with the merge rule and the links of a confirmation email
    /// given (GoTrue's `PUT /auth/v1/user`).
    pub async fn update_profile(
        &self,
        user: &UserSession,
        update: UserUpdate,
        merge: MetadataMerge,
        links: &Links,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let new_email = update
            .email
            .as_deref()
            .map(email::new_address)
            .transpose()?;
        if let Some(p) = &update.password {
            self.password_policy(Realm::App).check_new(p)?;
        }
        let data = metadata(update.data)?;
        if new_email.is_none() && update.password.is_none() && data.is_none() {
            return Err(AuthError::Missing(
                "nothing to update: give at least one of `email`, `password`, `data`",
            ));
        }
        // With confirmation on, the address changes when the new one confirms.
        let (email, deferred_email) = match new_email {
            Some(e) if self.settings().email.confirmation_required => (None, Some(e)),
            other => (other, None),
        };
        let changed: Vec<&str> = [
            email.as_ref().map(|_| "email"),
            deferred_email.as_ref().map(|_| "email_change_requested"),
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
        let null_deletes = merge == MetadataMerge::NullDeletes;
        let sql = concat!(
            "WITH cur AS (SELECT 1 FROM auth.sessions WHERE id = $2 AND user_id = $1), ",
            "u AS (",
            "  UPDATE auth.users SET",
            "    email_confirmed_at = CASE WHEN $3::text IS NOT NULL AND $3 IS DISTINCT FROM email",
            "      THEN now() ELSE email_confirmed_at END,",
            "    email = coalesce($3, email),",
            "    encrypted_password = coalesce($4, encrypted_password),",
            "    raw_user_meta_data = CASE WHEN $5::jsonb IS NULL THEN raw_user_meta_data",
            "      ELSE (raw_user_meta_data || $5::jsonb) - CASE WHEN $6",
            "        THEN ARRAY(SELECT key FROM jsonb_each($5::jsonb) WHERE value = 'null'::jsonb)",
            "        ELSE ARRAY[]::text[] END END,",
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
                &[
                    &user.user_id,
                    &user.session_id,
                    &email,
                    &hash,
                    &data,
                    &null_deletes,
                ],
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
        if let Some(address) = &deferred_email {
            self.request_email_change(user.user_id, address, links)
                .await?;
        }
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

    /// Sends the confirmation of a new address to it (nothing when it is the current one).
    /// A taken address is refused now, and checked again when the change is verified.
    async fn request_email_change(
        &self,
        user_id: Uuid,
        address: &str,
        links: &Links,
    ) -> Result<(), AuthError> {
        let settings = &self.settings().email;
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let row = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = $1 AND lower(email) = $2), \
                        EXISTS (SELECT 1 FROM auth.users WHERE id <> $1 AND lower(email) = $2)",
                &[&user_id, &address],
            )
            .await?;
        let (same, taken): (bool, bool) = (row.get(0), row.get(1));
        if same {
            return Ok(());
        }
        if taken {
            return Err(AuthError::AlreadyExists);
        }
        let secrets = TokenStore::issue(
            &tx,
            user_id,
            Purpose::EmailChange,
            address,
            settings.otp_ttl,
            Some(settings.min_interval),
        )
        .await?;
        tx.commit().await?;
        self.mailer().send(OutgoingEmail::new(
            Purpose::EmailChange,
            address,
            user_id,
            links,
            &secrets,
            settings.otp_ttl,
        ));
        Ok(())
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
