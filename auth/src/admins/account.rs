//! Dashboard accounts as the flows need them (with their secrets, which never leave the
//! service) and their public JSON.

use serde_json::Value;
use uuid::Uuid;

use crate::{AdminSession, AuthError, AuthService};

/// The account's public fields, as JSON built by PostgreSQL (uuid and timestamps rendered
/// there). Never the password hash, the TOTP secret or the backup codes.
pub(crate) const USER_JSON: &str = "json_build_object(
    'id', u.id, 'email', u.email, 'full_name', u.full_name, 'role', u.role,
    'totp_enabled', u.totp_enabled, 'backup_codes_remaining', cardinality(u.backup_codes),
    'last_login_at', u.last_login_at, 'created_at', u.created_at, 'updated_at', u.updated_at)";

/// A dashboard account.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) encrypted_password: String,
    pub(crate) totp_enabled: bool,
    /// Sealed; see [`crate::totp::TwoFactorKeys`].
    pub(crate) totp_secret: Option<String>,
    /// Seconds until the lock ends, when locked.
    pub(crate) locked_secs: Option<i64>,
    /// The public fields ([`USER_JSON`]).
    pub(crate) public: Value,
}

impl Account {
    /// The account query with `condition` (a constant of this module, never client text).
    fn select(condition: &str) -> String {
        format!(
            "SELECT u.id, u.email, u.encrypted_password, u.totp_enabled, u.totp_secret,
                    CASE WHEN u.locked_until > now()
                         THEN ceil(extract(epoch FROM u.locked_until - now()))::bigint END,
                    {USER_JSON}
             FROM dashboard.users u WHERE {condition}"
        )
    }

    /// An account from a row of [`Account::select`].
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

    /// By email (its lookup form).
    pub(crate) async fn by_email(
        service: &AuthService,
        email: &str,
    ) -> Result<Option<Account>, AuthError> {
        let rows = service
            .db()
            .query(&Self::select("lower(u.email) = $1"), &[&email])
            .await?;
        Ok(rows.first().map(Account::from_row))
    }

    /// By id.
    pub(crate) async fn by_id(
        service: &AuthService,
        id: Uuid,
    ) -> Result<Option<Account>, AuthError> {
        let rows = service
            .db()
            .query(&Self::select("u.id = $1"), &[&id])
            .await?;
        Ok(rows.first().map(Account::from_row))
    }

    /// The account of a session, as long as the session lasts.
    pub(crate) async fn of_session(
        service: &AuthService,
        admin: &AdminSession,
    ) -> Result<Account, AuthError> {
        let sql = Self::select(
            "u.id = $1 AND EXISTS (SELECT 1 FROM dashboard.sessions s
                                   WHERE s.id = $2 AND s.user_id = u.id)",
        );
        let rows = service
            .db()
            .query(&sql, &[&admin.user_id, &admin.session_id])
            .await?;
        rows.first()
            .map(Account::from_row)
            .ok_or(AuthError::SessionEnded)
    }
}
