//! `auth.one_time_tokens` in the database: issue (with the per-account send interval),
//! and consume by link token or by address and code — each a single use.

use std::time::Duration;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::{MAX_CODE_ATTEMPTS, Purpose, Secrets, code_hash, link_hash};
use crate::AuthError;

/// A token spent by a verification.
#[derive(Debug, Clone)]
pub(crate) struct Consumed {
    /// The account.
    pub user_id: Uuid,
    /// What it was for.
    pub purpose: Purpose,
    /// The address it was sent to.
    pub relates_to: String,
}

/// Token operations inside the caller's transaction.
#[derive(Debug)]
pub(crate) struct TokenStore;

/// The purposes' names, for `token_type = ANY($n)`.
fn names(purposes: &[Purpose]) -> Vec<&'static str> {
    purposes.iter().map(|p| p.as_str()).collect()
}

/// A `token_type` column value back to its purpose.
fn purpose_of(text: &str) -> Result<Purpose, AuthError> {
    [
        Purpose::Confirmation,
        Purpose::MagicLink,
        Purpose::Recovery,
        Purpose::EmailChange,
        Purpose::Invite,
    ]
    .into_iter()
    .find(|p| p.as_str() == text)
    .ok_or_else(|| {
        AuthError::internal(
            "reading a one-time token",
            format!("unknown token_type {text:?}"),
        )
    })
}

impl TokenStore {
    /// Issues a token of `purpose` for `user`, sent to `address`, valid for `ttl`. The user's
    /// earlier tokens of that purpose stop working (and long-expired rows of anyone are
    /// swept). With `min_interval`, a token of the same purpose issued less than that ago
    /// refuses with [`AuthError::EmailRateLimited`]. Locks the user's row, so two requests
    /// at once are serialized.
    pub(crate) async fn issue(
        tx: &Transaction<'_>,
        user: Uuid,
        purpose: Purpose,
        address: &str,
        ttl: Duration,
        min_interval: Option<Duration>,
    ) -> Result<Secrets, AuthError> {
        tx.execute(
            "SELECT 1 FROM auth.users WHERE id = $1 FOR UPDATE",
            &[&user],
        )
        .await?;
        if let Some(interval) = min_interval.filter(|i| !i.is_zero()) {
            let row = tx
                .query_one(
                    "SELECT extract(epoch FROM now() - max(created_at))::float8 \
                     FROM auth.one_time_tokens WHERE user_id = $1 AND token_type = $2",
                    &[&user, &purpose.as_str()],
                )
                .await?;
            if let Some(age) = row.get::<_, Option<f64>>(0) {
                let age = Duration::from_secs_f64(age.max(0.0));
                if age < interval {
                    return Err(AuthError::EmailRateLimited {
                        retry_after: interval - age,
                    });
                }
            }
        }
        let secrets = Secrets::generate();
        let ttl_secs = ttl.as_secs_f64();
        tx.execute(
            "DELETE FROM auth.one_time_tokens \
             WHERE (user_id = $1 AND token_type = $2) OR expires_at < now() - interval '1 day'",
            &[&user, &purpose.as_str()],
        )
        .await?;
        tx.execute(
            "INSERT INTO auth.one_time_tokens \
             (user_id, token_type, token_hash, code_hash, relates_to, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
            &[
                &user,
                &purpose.as_str(),
                &link_hash(&secrets.link_token),
                &code_hash(address, &secrets.code),
                &address,
                &ttl_secs,
            ],
        )
        .await?;
        Ok(secrets)
    }

    /// Spends the live token whose link token is `link_token`, if it is of one of
    /// `purposes`. Spent, expired, voided or unknown tokens are all `None`.
    pub(crate) async fn consume_link(
        tx: &Transaction<'_>,
        link_token: &str,
        purposes: &[Purpose],
    ) -> Result<Option<Consumed>, AuthError> {
        let row = tx
            .query_opt(
                "UPDATE auth.one_time_tokens SET used_at = now() \
                 WHERE token_hash = $1 AND token_type = ANY($2) AND used_at IS NULL \
                   AND expires_at > now() AND attempts < $3 \
                 RETURNING user_id, token_type, relates_to",
                &[&link_hash(link_token), &names(purposes), &MAX_CODE_ATTEMPTS],
            )
            .await?;
        row.map(|r| {
            Ok(Consumed {
                user_id: r.get(0),
                purpose: purpose_of(r.get(1))?,
                relates_to: r.get(2),
            })
        })
        .transpose()
    }

    /// Spends the newest live token sent to `address` for one of `purposes` whose code is
    /// `code`. A wrong code counts against every live token of that address and purposes;
    /// the caller commits that count even though the verification fails.
    pub(crate) async fn consume_code(
        tx: &Transaction<'_>,
        address: &str,
        code: &str,
        purposes: &[Purpose],
    ) -> Result<Option<Consumed>, AuthError> {
        let purposes = names(purposes);
        let row = tx
            .query_opt(
                "UPDATE auth.one_time_tokens SET used_at = now() WHERE id = ( \
                   SELECT id FROM auth.one_time_tokens \
                   WHERE relates_to = $1 AND token_type = ANY($2) AND code_hash = $3 \
                     AND used_at IS NULL AND expires_at > now() AND attempts < $4 \
                   ORDER BY created_at DESC LIMIT 1 FOR UPDATE) \
                 RETURNING user_id, token_type, relates_to",
                &[
                    &address,
                    &purposes,
                    &code_hash(address, code),
                    &MAX_CODE_ATTEMPTS,
                ],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(Consumed {
                user_id: r.get(0),
                purpose: purpose_of(r.get(1))?,
                relates_to: r.get(2),
            })),
            None => {
                tx.execute(
                    "UPDATE auth.one_time_tokens SET attempts = attempts + 1 \
                     WHERE relates_to = $1 AND token_type = ANY($2) AND used_at IS NULL \
                       AND expires_at > now()",
                    &[&address, &purposes],
                )
                .await?;
                Ok(None)
            }
        }
    }
}
