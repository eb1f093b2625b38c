//! Service keys in `auth.service_keys`: create (the key shown once), list, read, revoke,
//! rotate (the old key lasts `auth.service_key_rotation_grace`), delete; and the lookup that
//! turns a presented key into the `service_role` context. Every change is audited in
//! `auth.audit_log_entries`.

use fluxbase_migrations::DbErrorKind;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{NewServiceKey, lookup_hash};
use crate::audit::{AuditAction, AuditEvent};
use crate::users::iso;
use crate::{AuthContext, AuthError, AuthService, Client, Realm, ServiceKeyCaller};

/// Longest key name, in characters.
const MAX_NAME: usize = 200;
/// Longest revoke reason, in characters.
const MAX_REASON: usize = 500;

/// How often `last_used_at` is written for a busy key: once a minute is precise enough and
/// spares a write per request.
const LAST_USED_RESOLUTION: &str = "1 minute";

/// A key as listed (never its hash), from a row aliased `k`.
macro_rules! key_json {
    () => {
        concat!(
            "jsonb_build_object('id', k.id, 'name', k.name, 'prefix', k.key_prefix, ",
            "'created_by', k.created_by, ",
            "'created_at', ", iso!("k.created_at"), ", ",
            "'last_used_at', ", iso!("k.last_used_at"), ", ",
            "'expires_at', ", iso!("k.expires_at"), ", ",
            "'rotated_at', ", iso!("k.rotated_at"), ", ",
            "'previous_key_expires_at', ", iso!("k.previous_key_expires_at"), ", ",
            "'revoked_at', ", iso!("k.revoked_at"), ", ",
            "'revoked_reason', k.revoked_reason, ",
            "'status', CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked' ",
            "  WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired' ELSE 'active' END)"
        )
    };
}

/// A key to create.
#[derive(Debug)]
pub struct NewKey {
    /// Its name (1–200 characters, no control characters).
    pub name: String,
    /// An RFC 3339 time in the future, or none.
    pub expires_at: Option<String>,
}

/// 404 for an unknown (or malformed) key id.
fn not_found() -> AuthError {
    AuthError::NotFound("no service key with this id")
}

/// A key id from the path (anything else cannot name a key: 404).
fn parse_id(raw: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

/// A trimmed, bounded, printable text field.
fn check_text(field: &'static str, value: &str, max: usize) -> Result<String, AuthError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AuthError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(AuthError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AuthError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_string())
}

/// Refuses a service key as the manager of keys, and names the actor for the audit trail.
fn manager(actor: &AuthContext) -> Result<(Option<Uuid>, Value), AuthError> {
    if actor.claim("service_key_id").is_some() {
        return Err(AuthError::Forbidden(
            "service keys cannot manage service keys: use an admin or service_role token".into(),
        ));
    }
    let sub = actor.uid();
    Ok((
        sub.and_then(|s| Uuid::parse_str(s).ok()),
        json!({"role": actor.role().as_str(), "sub": sub}),
    ))
}

impl AuthService {
    /// The caller of a presented service key (`service_role`), or
    /// [`AuthError::InvalidServiceKey`]. Marks the key used (at most once a minute).
    pub async fn service_key_caller(&self, presented: &str) -> Result<ServiceKeyCaller, AuthError> {
        let hash = lookup_hash(presented).ok_or(AuthError::InvalidServiceKey)?;
        let sql = concat!(
            "WITH k AS (",
            "  SELECT id, name, last_used_at FROM auth.service_keys",
            "  WHERE (key_hash = $1 OR (previous_key_hash = $1 AND previous_key_expires_at > now()))",
            "    AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            "), u AS (",
            "  UPDATE auth.service_keys s SET last_used_at = now() FROM k",
            "  WHERE s.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - $2::text::interval)",
            ") SELECT id, name FROM k"
        );
        let rows = self
            .db()
            .query(sql, &[&hash, &LAST_USED_RESOLUTION])
            .await?;
        let row = rows.first().ok_or(AuthError::InvalidServiceKey)?;
        let (key_id, name): (Uuid, String) = (row.get(0), row.get(1));
        let mut claims = Map::new();
        claims.insert("role".into(), json!("service_role"));
        claims.insert("service_key_id".into(), json!(key_id.to_string()));
        claims.insert("service_key_name".into(), json!(name));
        Ok(ServiceKeyCaller {
            key_id,
            name,
            context: AuthContext::from_claims(claims),
        })
    }

    /// Audits a change to a key in `auth.audit_log_entries`.
    async fn key_event(
        &self,
        action: AuditAction,
        actor: Option<Uuid>,
        client: &Client,
        details: Value,
    ) {
        self.audit()
            .record(AuditEvent {
                realm: Realm::App,
                action,
                actor,
                client,
                details,
            })
            .await;
    }

    /// Checks `expires_at` (an RFC 3339 time in the future), as PostgreSQL reads it.
    async fn check_expiry(&self, raw: Option<&str>) -> Result<Option<String>, AuthError> {
        let Some(raw) = raw else { return Ok(None) };
        let bad = || {
            AuthError::invalid(
                "expires_at",
                "expected an RFC 3339 time such as 2030-01-01T00:00:00Z",
            )
        };
        // Only the RFC 3339 alphabet: PostgreSQL would also take 'now', 'epoch', 'infinity'.
        let shape = (10..=40).contains(&raw.len())
            && raw.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && raw.as_bytes()[4] == b'-'
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-:.+TtZz ".contains(&b));
        if !shape {
            return Err(bad());
        }
        let rows = self
            .db()
            .query("SELECT $1::text::timestamptz > now()", &[&raw])
            .await
            .map_err(|err| match err.kind() {
                DbErrorKind::InvalidInput => bad(),
                _ => err.into(),
            })?;
        if !rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
            return Err(AuthError::invalid("expires_at", "must be in the future"));
        }
        Ok(Some(raw.to_string()))
    }

    /// Creates a key; the answer holds the key (`key`), shown this once.
    pub async fn create_service_key(
        &self,
        actor: &AuthContext,
        request: NewKey,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let (actor_id, actor_json) = manager(actor)?;
        let name = check_text("name", &request.name, MAX_NAME)?;
        let expires_at = self.check_expiry(request.expires_at.as_deref()).await?;
        let key = NewServiceKey::generate();
        let created_by = actor
            .uid()
            .map(str::to_string)
            .or_else(|| Some(actor.role().as_str().to_string()));
        let sql = concat!(
            "WITH k AS (",
            "  INSERT INTO auth.service_keys (name, key_prefix, key_hash, expires_at, created_by)",
            "  VALUES ($1, $2, $3, $4::text::timestamptz, $5) RETURNING *",
            ") SELECT k.id, ",
            key_json!(),
            " FROM k"
        );
        let rows = self
            .db()
            .query(
                sql,
                &[&name, &key.prefix, &key.hash, &expires_at, &created_by],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| AuthError::internal("service key insert", "no row returned"))?;
        let (id, mut listed): (Uuid, Value) = (row.get(0), row.get(1));
        listed["key"] = json!(key.key);
        self.key_event(
            AuditAction::ServiceKeyCreated,
            actor_id,
            client,
            json!({"key_id": id, "name": name, "prefix": key.prefix, "actor": actor_json}),
        )
        .await;
        Ok(listed)
    }

    /// Every key, newest first (never a key or a hash).
    pub async fn list_service_keys(&self, actor: &AuthContext) -> Result<Vec<Value>, AuthError> {
        manager(actor)?;
        let sql = concat!(
            "SELECT ",
            key_json!(),
            " FROM auth.service_keys k ORDER BY k.created_at DESC, k.id"
        );
        let rows = self.db().query(sql, &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// One key.
    pub async fn service_key(&self, actor: &AuthContext, id: &str) -> Result<Value, AuthError> {
        manager(actor)?;
        let id = parse_id(id)?;
        let sql = concat!(
            "SELECT ",
            key_json!(),
            " FROM auth.service_keys k WHERE k.id = $1"
        );
        let rows = self.db().query(sql, &[&id]).await?;
        rows.first().map(|r| r.get(0)).ok_or_else(not_found)
    }

    /// Revokes a key at once. Revoking a revoked key keeps its first time and reason.
    pub async fn revoke_service_key(
        &self,
        actor: &AuthContext,
        id: &str,
        reason: Option<&str>,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let (actor_id, actor_json) = manager(actor)?;
        let id = parse_id(id)?;
        let reason = reason
            .map(|r| check_text("reason", r, MAX_REASON))
            .transpose()?;
        let sql = concat!(
            "WITH k AS (",
            "  UPDATE auth.service_keys SET revoked_at = coalesce(revoked_at, now()),",
            "    revoked_reason = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_reason END,",
            "    updated_at = now()",
            "  WHERE id = $1 RETURNING *",
            ") SELECT k.name, ",
            key_json!(),
            " FROM k"
        );
        let rows = self.db().query(sql, &[&id, &reason]).await?;
        let row = rows.first().ok_or_else(not_found)?;
        let (name, listed): (String, Value) = (row.get(0), row.get(1));
        self.key_event(
            AuditAction::ServiceKeyRevoked,
            actor_id,
            client,
            json!({"key_id": id, "name": name, "reason": reason, "actor": actor_json}),
        )
        .await;
        Ok(listed)
    }

    /// Rotates a key: the new one is in the answer (`key`), shown once; the old one works
    /// for `auth.service_key_rotation_grace` more.
    pub async fn rotate_service_key(
        &self,
        actor: &AuthContext,
        id: &str,
        client: &Client,
    ) -> Result<Value, AuthError> {
        let (actor_id, actor_json) = manager(actor)?;
        let id = parse_id(id)?;
        let key = NewServiceKey::generate();
        let grace = self.settings().service_key_rotation_grace.as_secs_f64();
        let sql = concat!(
            "WITH k AS (",
            "  UPDATE auth.service_keys SET previous_key_hash = key_hash,",
            "    previous_key_expires_at = now() + make_interval(secs => $4),",
            "    key_hash = $2, key_prefix = $3, rotated_at = now(), updated_at = now()",
            "  WHERE id = $1 AND revoked_at IS NULL RETURNING *",
            ") SELECT k.name, ",
            key_json!(),
            " FROM k"
        );
        let rows = self
            .db()
            .query(sql, &[&id, &key.hash, &key.prefix, &grace])
            .await?;
        let Some(row) = rows.first() else {
            let exists = self
                .db()
                .query("SELECT 1 FROM auth.service_keys WHERE id = $1", &[&id])
                .await?;
            return Err(if exists.is_empty() {
                not_found()
            } else {
                AuthError::Conflict("a revoked service key cannot be rotated: create a new one")
            });
        };
        let (name, mut listed): (String, Value) = (row.get(0), row.get(1));
        listed["key"] = json!(key.key);
        self.key_event(
            AuditAction::ServiceKeyRotated,
            actor_id,
            client,
            json!({"key_id": id, "name": name, "prefix": key.prefix, "grace_seconds": grace, "actor": actor_json}),
        )
        .await;
        Ok(listed)
    }

    /// Deletes a key; it stops working at once.
    pub async fn delete_service_key(
        &self,
        actor: &AuthContext,
        id: &str,
        client: &Client,
    ) -> Result<(), AuthError> {
        let (actor_id, actor_json) = manager(actor)?;
        let id = parse_id(id)?;
        let rows = self
            .db()
            .query(
                "DELETE FROM auth.service_keys WHERE id = $1 RETURNING name",
                &[&id],
            )
            .await?;
        let row = rows.first().ok_or_else(not_found)?;
        let name: String = row.get(0);
        self.key_event(
            AuditAction::ServiceKeyDeleted,
            actor_id,
            client,
            json!({"key_id": id, "name": name, "actor": actor_json}),
        )
        .await;
        Ok(())
    }
}
