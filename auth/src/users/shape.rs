//! The JSON of an application user, built by PostgreSQL from a row aliased `u`: the short
//! shape of the Fluxbase paths ([`user_json!`]) and the full one of GoTrue's `/auth/v1`
//! ([`user_record!`]: phone, identities, `confirmed_at`, a pending `new_email`…). Neither
//! ever carries the password hash.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use crate::AuthError;

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

/// The user as the Fluxbase paths show it (Supabase's core fields), from a row aliased `u`.
macro_rules! user_json {
    () => {
        concat!(
            "jsonb_build_object('id', u.id, 'aud', 'authenticated', 'role', u.role, 'email', u.email, ",
            "'email_confirmed_at', ", $crate::users::shape::iso!("u.email_confirmed_at"), ", ",
            "'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data, ",
            "'created_at', ", $crate::users::shape::iso!("u.created_at"), ", ",
            "'updated_at', ", $crate::users::shape::iso!("u.updated_at"), ", ",
            "'last_sign_in_at', ", $crate::users::shape::iso!("u.last_sign_in_at"), ")"
        )
    };
}
pub(crate) use user_json;

/// The user as GoTrue's `/auth/v1` shows it (what auth-js reads), from a row aliased `u`.
/// `new_email` appears only while an email change waits for confirmation.
macro_rules! user_record {
    () => {
        concat!(
            "(jsonb_build_object('id', u.id, 'aud', 'authenticated', 'role', u.role, ",
            "'email', coalesce(u.email, ''), 'phone', '', ",
            "'email_confirmed_at', ",
            $crate::users::shape::iso!("u.email_confirmed_at"),
            ", ",
            "'confirmed_at', ",
            $crate::users::shape::iso!("u.email_confirmed_at"),
            ", ",
            "'last_sign_in_at', ",
            $crate::users::shape::iso!("u.last_sign_in_at"),
            ", ",
            "'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data, ",
            "'identities', coalesce((SELECT jsonb_agg(jsonb_build_object(",
            "'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id, ",
            "'identity_data', i.identity_data, 'provider', i.provider, ",
            "'email', i.identity_data ->> 'email', ",
            "'last_sign_in_at', ",
            $crate::users::shape::iso!("u.last_sign_in_at"),
            ", ",
            "'created_at', ",
            $crate::users::shape::iso!("i.created_at"),
            ", ",
            "'updated_at', ",
            $crate::users::shape::iso!("i.updated_at"),
            ") ORDER BY i.created_at) ",
            "FROM auth.identities i WHERE i.user_id = u.id), '[]'::jsonb), ",
            "'created_at', ",
            $crate::users::shape::iso!("u.created_at"),
            ", ",
            "'updated_at', ",
            $crate::users::shape::iso!("u.updated_at"),
            ", ",
            "'is_anonymous', false) || jsonb_strip_nulls(jsonb_build_object('new_email', ",
            "(SELECT t.relates_to FROM auth.one_time_tokens t WHERE t.user_id = u.id ",
            "AND t.token_type = 'email_change' AND t.used_at IS NULL AND t.expires_at > now() ",
            "ORDER BY t.created_at DESC LIMIT 1))))"
        )
    };
}
pub(crate) use user_record;

/// The short JSON of app user `id` (the Fluxbase paths), through `client`.
pub(crate) async fn app_user_json(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Value, AuthError> {
    let row = client
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

/// The full JSON of app user `id` (GoTrue's shape), through `client`; `None` when gone.
pub(crate) async fn fetch_record(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Value>, AuthError> {
    let row = client
        .query_opt(
            concat!(
                "SELECT ",
                user_record!(),
                " FROM auth.users u WHERE u.id = $1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
