//! Dashboard accounts: loading them (never with secrets in what is returned), and the
//! rules and hashing of their emails and passwords.

use actix_web::web;
use fluxbase_auth::password::{self, Verified};
use serde_json::Value;
use uuid::Uuid;

use super::{AppState, DashboardAdmin};
use crate::error::{ApiError, Code};

/// Longest password accepted: hashing cost stays bounded whatever the client sends.
const MAX_PASSWORD_CHARS: usize = 256;
/// Longest `full_name`.
pub(super) const MAX_NAME_CHARS: usize = 200;
/// The account's public fields, as JSON built by PostgreSQL (uuid and timestamps rendered
/// there). Never the password hash, the TOTP secret or the backup codes.
pub(super) const USER_JSON: &str = "json_build_object(
    'id', u.id, 'email', u.email, 'full_name', u.full_name, 'role', u.role,
    'totp_enabled', u.totp_enabled, 'backup_codes_remaining', cardinality(u.backup_codes),
    'last_login_at', u.last_login_at, 'created_at', u.created_at, 'updated_at', u.updated_at)";

/// A dashboard account as the auth flows need it.
#[derive(Debug)]
pub(super) struct Account {
    pub(super) id: Uuid,
    pub(super) email: String,
    pub(super) encrypted_password: String,
    pub(super) totp_enabled: bool,
    /// Sealed; see `fluxbase_auth::totp::TwoFactorKeys`.
    pub(super) totp_secret: Option<String>,
    /// Seconds until the lock ends, when locked.
    pub(super) locked_secs: Option<i64>,
    /// The public fields ([`USER_JSON`]).
    pub(super) public: Value,
}

impl Account {
    fn select(condition: &str) -> String {
        format!(
            "SELECT u.id, u.email, u.encrypted_password, u.totp_enabled, u.totp_secret,
                    CASE WHEN u.locked_until > now()
                         THEN ceil(extract(epoch FROM u.locked_until - now()))::bigint END,
                    {USER_JSON}
             FROM dashboard.users u WHERE {condition}"
        )
    }

    fn from_row(row: &tokio_postgres::Row) -> Account {
        Account {
            id: row.get(0),
            email: row.get(1),
            encrypted_password: row.get(2),
            totp_enabled: row.get(3),
            totp_secret: row.get(4),
            locked_secs: row.get(5),
            public: row.get(6),
        }
    }

    /// By email (case-insensitive).
    pub(super) async fn by_email(
        state: &AppState,
        email: &str,
    ) -> Result<Option<Account>, ApiError> {
        let rows = state
            .db
            .query(&Self::select("lower(u.email) = $1"), &[&email])
            .await?;
        Ok(rows.first().map(Account::from_row))
    }

    /// By id.
    pub(super) async fn by_id(state: &AppState, id: Uuid) -> Result<Option<Account>, ApiError> {
        let rows = state.db.query(&Self::select("u.id = $1"), &[&id]).await?;
        Ok(rows.first().map(Account::from_row))
    }

    /// The caller's account, as long as the token's session has not been revoked (logout
    /// takes effect at once on the dashboard routes).
    pub(super) async fn of_admin(
        state: &AppState,
        admin: &DashboardAdmin,
    ) -> Result<Account, ApiError> {
        let gone = || {
            ApiError::new(
                Code::SessionNotFound,
                "this session has ended: log in again",
            )
        };
        let session = admin.session_id.ok_or_else(gone)?;
        let sql = Self::select(
            "u.id = $1 AND EXISTS (SELECT 1 FROM dashboard.sessions s
                                   WHERE s.id = $2 AND s.user_id = u.id AND s.revoked_at IS NULL)",
        );
        let rows = state.db.query(&sql, &[&admin.user_id, &session]).await?;
        rows.first().map(Account::from_row).ok_or_else(gone)
    }
}

/// A valid email, canonical (trimmed, lower-case), or a 422 naming the field.
pub(super) fn email_of(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let invalid = || {
        ApiError::new(
            Code::ValidationFailed,
            "email: must be a valid email address",
        )
    };
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let ok = (3..=254).contains(&email.chars().count())
        && !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"\"(),:;<>[\\]".contains(c));
    if ok { Ok(email) } else { Err(invalid()) }
}

/// A password within bounds: at least `min` characters (0: any non-empty), at most
/// [`MAX_PASSWORD_CHARS`].
pub(super) fn check_password(password: &str, min: usize) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n == 0 {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "password: must not be empty",
        ));
    }
    if n < min {
        return Err(ApiError::new(
            Code::WeakPassword,
            format!("password: must be at least {min} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::new(
            Code::WeakPassword,
            format!("password: must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// argon2id off the async workers.
pub(super) async fn hash_password(password: String) -> Result<String, ApiError> {
    web::block(move || password::hash(&password))
        .await
        .map_err(|_| ApiError::new(Code::Internal, "internal error"))?
        .map_err(|err| {
            tracing::error!(error = %err, "password hashing failed");
            ApiError::new(Code::Internal, "internal error")
        })
}

/// Password verification off the async workers; an unreadable stored hash never verifies.
pub(super) async fn verify_password(
    password: String,
    stored: String,
) -> Result<Verified, ApiError> {
    let verified = web::block(move || password::verify(&password, &stored))
        .await
        .map_err(|_| ApiError::new(Code::Internal, "internal error"))?;
    Ok(verified.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "stored dashboard password hash is unreadable");
        Verified::No
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email_of(" Admin@Example.COM ").unwrap(),
            "admin@example.com"
        );
        assert_eq!(
            email_of("o'brien@example.com").unwrap(),
            "o'brien@example.com"
        );
        for bad in [
            "",
            "a",
            "@example.com",
            "admin@",
            "a@b@c",
            "admin@.com",
            "admin@x.",
            "' OR '1'='1",
            "a b@example.com",
            "a@exa mple.com",
            "x\"@y.z",
            "a:b@c.d",
        ] {
            let err = email_of(bad).unwrap_err();
            assert_eq!(err.code, Code::ValidationFailed, "{bad}");
            assert!(err.message.starts_with("email:"), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("0123456789ab", 12).is_ok());
        assert_eq!(
            check_password("short", 12).unwrap_err().code,
            Code::WeakPassword
        );
        assert_eq!(
            check_password("", 0).unwrap_err().code,
            Code::ValidationFailed
        );
        assert_eq!(
            check_password(&"x".repeat(257), 0).unwrap_err().code,
            Code::WeakPassword
        );
    }
}
