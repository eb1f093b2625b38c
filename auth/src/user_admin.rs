//! Application users managed by the service role (GoTrue's `/admin/users`): list, read,
//! create, change and delete any account. Changes apply directly, without emails; every one
//! is audited with the account as its actor. The caller checks the service role.

use fluxbase_migrations::DbErrorKind;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{AuditAction, AuditEvent};
use crate::users::shape::fetch_record;
use crate::users::{NewAccount, email_provider, insert_account};
use crate::{AuthError, AuthService, Client, Realm, email};

/// Largest page of [`AuthService::list_users`].
pub const MAX_PER_PAGE: u32 = 1000;

/// An administrator's attributes of an account (all optional on update).
#[derive(Debug, Default)]
pub struct AdminAttributes {
    /// A chosen id (creation only).
    pub id: Option<Uuid>,
    /// The address.
    pub email: Option<String>,
    /// A password, checked by the password policy and hashed.
    pub password: Option<String>,
    /// A password hash made elsewhere: bcrypt (`$2a$`, `$2b$`, `$2y$`) or argon2id.
    pub password_hash: Option<String>,
    /// Whether the address counts as confirmed.
    pub email_confirm: Option<bool>,
    /// `user_metadata`, merged key by key (a `null` value removes the key).
    pub user_metadata: Option<Value>,
    /// `app_metadata`, merged the same way (`provider`/`providers` stay the server's).
    pub app_metadata: Option<Value>,
}

/// One page of accounts, oldest first.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The accounts (GoTrue's full JSON).
    pub users: Vec<Value>,
    /// How many accounts match in all.
    pub total: i64,
}

/// A metadata object (or nothing), naming `field` when it is something else.
fn object(field: &'static str, value: Option<Value>) -> Result<Option<Value>, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(AuthError::invalid(field, "must be a JSON object")),
    }
}

/// A password hash an administrator may import.
fn importable_hash(hash: &str) -> Result<(), AuthError> {
    let known = ["$2a$", "$2b$", "$2y$", "$argon2id$"]
        .iter()
        .any(|p| hash.starts_with(p));
    if known && hash.len() <= 512 && hash.is_ascii() {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "password_hash",
            "must be a bcrypt ($2a$, $2b$, $2y$) or argon2id hash",
        ))
    }
}

/// `%…%` for `ILIKE`, with the pattern characters of `text` escaped.
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl AuthService {
    /// Page `page` (from 1) of `per_page` accounts, oldest first; with `filter`, only those
    /// whose address contains it (any case).
    pub async fn list_users(
        &self,
        page: u32,
        per_page: u32,
        filter: Option<&str>,
    ) -> Result<UserPage, AuthError> {
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let offset = i64::from(page.max(1) - 1) * i64::from(per_page);
        let pattern = filter.filter(|f| !f.is_empty()).map(contains_pattern);
        let conn = self.db().conn().await?;
        let rows = conn
            .query(
                concat!(
                    "SELECT ",
                    crate::users::shape::user_record!(),
                    " FROM auth.users u WHERE $3::text IS NULL OR u.email ILIKE $3 ",
                    "ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2"
                ),
                &[&i64::from(per_page), &offset, &pattern],
            )
            .await?;
        let total = conn
            .query_one(
                "SELECT count(*) FROM auth.users u WHERE $1::text IS NULL OR u.email ILIKE $1",
                &[&pattern],
            )
            .await?
            .get(0);
        Ok(UserPage {
            users: rows.iter().map(|r| r.get(0)).collect(),
            total,
        })
    }

    /// Creates an account (no email is sent). The address is required; without
    /// `email_confirm` it is unconfirmed.
    pub async fn create_user(
        &self,
        attributes: AdminAttributes,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let address = email::new_address(
            attributes
                .email
                .as_deref()
                .ok_or(AuthError::Missing("invalid field `email`: required"))?,
        )?;
        let user_metadata =
            object("user_metadata", attributes.user_metadata)?.unwrap_or_else(|| json!({}));
        let mut app_metadata =
            object("app_metadata", attributes.app_metadata)?.unwrap_or_else(|| json!({}));
        if let (Value::Object(app), Value::Object(provider)) = (&mut app_metadata, email_provider())
        {
            app.extend(provider);
        }
        let hash = self
            .admin_password(attributes.password, attributes.password_hash)
            .await?;
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        if let Some(id) = attributes.id {
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = $1)",
                    &[&id],
                )
                .await?
                .get(0);
            if taken {
                return Err(AuthError::Conflict("a user with this id already exists"));
            }
        }
        let account = NewAccount {
            id: attributes.id,
            email: &address,
            password_hash: hash.as_deref(),
            app_metadata,
            user_metadata,
            confirmed: attributes.email_confirm.unwrap_or(false),
            signed_in: false,
        };
        let id = insert_account(&tx, &account)
            .await?
            .ok_or(AuthError::AlreadyExists)?;
        let user = fetch_record(&tx, id)
            .await?
            .ok_or(AuthError::NotFound("user not found"))?;
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
        Ok(user)
    }

    /// The stored hash of an administrator's `password` or `password_hash` (one at most).
    async fn admin_password(
        &self,
        password: Option<String>,
        password_hash: Option<String>,
    ) -> Result<Option<String>, AuthError> {
        match (password, password_hash) {
            (Some(_), Some(_)) => Err(AuthError::invalid(
                "password_hash",
                "give either `password` or `password_hash`, not both",
            )),
            (Some(password), None) => {
                self.password_policy(Realm::App).check_new(&password)?;
                Ok(Some(self.hasher().hash(password).await?))
            }
            (None, Some(hash)) => importable_hash(&hash).map(|()| Some(hash)),
            (None, None) => Ok(None),
        }
    }

    /// Changes account `id` directly; `None` when there is no such account. A new password
    /// ends every session of the account.
    pub async fn admin_update_user(
        &self,
        id: Uuid,
        attributes: AdminAttributes,
        client: &Client,
    ) -> Result<Option<Value>, AuthError> {
        let address = attributes
            .email
            .as_deref()
            .map(email::new_address)
            .transpose()?;
        let user_metadata = object("user_metadata", attributes.user_metadata)?;
        let app_metadata = object("app_metadata", attributes.app_metadata)?;
        let hash = self
            .admin_password(attributes.password, attributes.password_hash)
            .await?;
        let mut conn = self.db().conn().await?;
        let tx = conn.transaction().await?;
        let sql = concat!(
            "UPDATE auth.users SET",
            "  email = coalesce($2, email),",
            "  email_confirmed_at = CASE WHEN $3::bool IS TRUE THEN coalesce(email_confirmed_at, now())",
            "    WHEN $3::bool IS FALSE THEN NULL ELSE email_confirmed_at END,",
            "  encrypted_password = coalesce($4, encrypted_password),",
            "  raw_user_meta_data = CASE WHEN $5::jsonb IS NULL THEN raw_user_meta_data",
            "    ELSE (raw_user_meta_data || $5::jsonb)",
            "      - ARRAY(SELECT key FROM jsonb_each($5::jsonb) WHERE value = 'null'::jsonb) END,",
            "  raw_app_meta_data = CASE WHEN $6::jsonb IS NULL THEN raw_app_meta_data",
            "    ELSE ((raw_app_meta_data || $6::jsonb)",
            "      - ARRAY(SELECT key FROM jsonb_each($6::jsonb) WHERE value = 'null'::jsonb))",
            "      || jsonb_build_object('provider', coalesce(raw_app_meta_data -> 'provider', '\"email\"'),",
            "        'providers', coalesce(raw_app_meta_data -> 'providers', '[\"email\"]')) END,",
            "  updated_at = now()",
            " WHERE id = $1 AND ($2::text IS NULL OR NOT EXISTS",
            "   (SELECT 1 FROM auth.users o WHERE lower(o.email) = $2 AND o.id <> $1))",
            " RETURNING id"
        );
        let updated = tx
            .query_opt(
                sql,
                &[
                    &id,
                    &address,
                    &attributes.email_confirm,
                    &hash,
                    &user_metadata,
                    &app_metadata,
                ],
            )
            .await
            .map_err(fluxbase_migrations::DbError::from);
        let updated = match updated {
            Ok(row) => row.is_some(),
            Err(err) if err.kind() == DbErrorKind::UniqueViolation => {
                return Err(AuthError::AlreadyExists);
            }
            Err(err) => return Err(err.into()),
        };
        if !updated {
            let exists: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = $1)",
                    &[&id],
                )
                .await?
                .get(0);
            return if exists {
                Err(AuthError::AlreadyExists)
            } else {
                Ok(None)
            };
        }
        if address.is_some() {
            tx.execute(
                "UPDATE auth.identities SET identity_data = identity_data || \
                   jsonb_build_object('email', $2::text), updated_at = now() \
                 WHERE user_id = $1 AND provider = 'email'",
                &[&id, &address],
            )
            .await?;
        }
        if hash.is_some() {
            tx.execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&id])
                .await?;
        }
        let user = fetch_record(&tx, id).await?;
        tx.commit().await?;
        let changed: Vec<&str> = [
            address.as_ref().map(|_| "email"),
            attributes.email_confirm.map(|_| "email_confirmed_at"),
            hash.as_ref().map(|_| "password"),
            user_metadata.as_ref().map(|_| "user_metadata"),
            app_metadata.as_ref().map(|_| "app_metadata"),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action: AuditAction::UserUpdated,
                actor: Some(id),
                client,
                details: json!({"fields": changed, "by": "service_role"}),
            })
            .await;
        Ok(user)
    }

    /// Deletes account `id` — its sessions, identities and tokens go with it, and the
    /// realtime engine closes its sockets. False when there was no such account.
    pub async fn delete_user(&self, id: Uuid, client: &Client) -> Result<bool, AuthError> {
        let result = self
            .db()
            .query("DELETE FROM auth.users WHERE id = $1 RETURNING id", &[&id])
            .await;
        let deleted = match result {
            Ok(rows) => !rows.is_empty(),
            Err(err) if err.kind() == DbErrorKind::ForeignKeyViolation => {
                return Err(AuthError::Conflict(
                    "the user is still referenced by other rows (a foreign key without ON DELETE CASCADE)",
                ));
            }
            Err(err) => return Err(err.into()),
        };
        if deleted {
            self.audit()
                .record(AuditEvent {
                    realm: Realm::App,
                    action: AuditAction::UserDeleted,
                    actor: Some(id),
                    client,
                    details: json!({"by": "service_role"}),
                })
                .await;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_literally_and_hashes_are_recognized() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
        assert!(importable_hash("$2b$10$abcdefghijklmnopqrstuv").is_ok());
        assert!(importable_hash("$argon2id$v=19$m=19456,t=2,p=1$x$y").is_ok());
        for bad in ["plain", "$1$md5", "$2b$\u{e9}"] {
            assert!(importable_hash(bad).is_err(), "{bad}");
        }
    }
}
