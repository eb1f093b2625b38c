//! Creating an application account: the one insert behind sign-up, a first passwordless
//! sign-in, an invitation and an administrator's `POST /admin/users`.

use fluxbase_migrations::{DbError, DbErrorKind};
use serde_json::Value;
use uuid::Uuid;

use deadpool_postgres::Transaction;

use crate::AuthError;

/// A new account's fields.
#[derive(Debug)]
pub(crate) struct NewAccount<'a> {
    /// A chosen id (administrators may set one), else a random one.
    pub id: Option<Uuid>,
    /// The address, already checked and lower-cased.
    pub email: &'a str,
    /// The stored password hash, if the account has a password.
    pub password_hash: Option<&'a str>,
    /// `raw_app_meta_data`.
    pub app_metadata: Value,
    /// `raw_user_meta_data`.
    pub user_metadata: Value,
    /// Whether the address counts as confirmed now.
    pub confirmed: bool,
    /// Whether the account is signed in now (`last_sign_in_at`).
    pub signed_in: bool,
}

/// Inserts the account and its `email` identity inside `tx`. `None` when the address (in any
/// case) is taken.
pub(crate) async fn insert_account(
    tx: &Transaction<'_>,
    account: &NewAccount<'_>,
) -> Result<Option<Uuid>, AuthError> {
    let sql = concat!(
        "WITH u AS (",
        "  INSERT INTO auth.users (id, email, encrypted_password, raw_app_meta_data, raw_user_meta_data,",
        "    email_confirmed_at, last_sign_in_at)",
        "  SELECT coalesce($1, gen_random_uuid()), $2, $3, $4, $5,",
        "    CASE WHEN $6 THEN now() END, CASE WHEN $7 THEN now() END",
        "  WHERE NOT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = $2)",
        "  RETURNING id, email",
        ") INSERT INTO auth.identities (user_id, provider, provider_id, identity_data)",
        "  SELECT id, 'email', id::text, jsonb_build_object('sub', id::text, 'email', email) FROM u",
        "  RETURNING user_id"
    );
    let inserted = tx
        .query_opt(
            sql,
            &[
                &account.id,
                &account.email,
                &account.password_hash,
                &account.app_metadata,
                &account.user_metadata,
                &account.confirmed,
                &account.signed_in,
            ],
        )
        .await
        .map_err(DbError::from);
    match inserted {
        Ok(row) => Ok(row.map(|r| r.get(0))),
        // Two sign-ups of one address at once: the unique index decides.
        Err(err) if err.kind() == DbErrorKind::UniqueViolation => Ok(None),
        Err(err) => Err(err.into()),
    }
}
