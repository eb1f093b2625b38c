//! Sessions in the database, for either realm: open one with its first refresh token,
//! rotate (with reuse detection and expiry), end, and check liveness.

use std::time::{Duration, Instant};

use deadpool_postgres::Transaction;
use fluxbase_migrations::Db;
use uuid::Uuid;

use super::{RefreshDecision, RefreshToken, StoredRefreshToken, decide, hash_secret};
use crate::error::RefreshRefusal;
use crate::{AuthError, Client, Realm};

/// A successful rotation.
#[derive(Debug)]
pub(crate) struct Rotated {
    /// The session the token belonged to.
    pub session_id: Uuid,
    /// Its user.
    pub user_id: Uuid,
    /// The child token, handed to the client once.
    pub refresh: RefreshToken,
}

/// A refused refresh, with what is known of whom it concerned (for the audit trail).
#[derive(Debug)]
pub(crate) struct Refused {
    pub refusal: RefreshRefusal,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
}

/// Session operations over the pool.
#[derive(Debug, Clone)]
pub(crate) struct SessionStore {
    db: Db,
}

impl SessionStore {
    /// A store over `db`.
    pub(crate) fn new(db: Db) -> Self {
        SessionStore { db }
    }

    /// Opens a session of `user` with its first refresh token, inside `tx`.
    pub(crate) async fn open(
        tx: &Transaction<'_>,
        realm: Realm,
        user: Uuid,
        client: &Client,
    ) -> Result<(Uuid, RefreshToken), AuthError> {
        let refresh = RefreshToken::generate();
        let sql = format!(
            "WITH s AS (INSERT INTO {sessions} (user_id, user_agent, ip) VALUES ($1, $2, $3) \
             RETURNING id) \
             INSERT INTO {tokens} (session_id, token_hash) SELECT id, $4 FROM s \
             RETURNING session_id",
            sessions = realm.sessions(),
            tokens = realm.refresh_tokens(),
        );
        let row = tx
            .query_one(
                &sql,
                &[&user, &client.user_agent, &client.ip, &refresh.hash],
            )
            .await?;
        Ok((row.get(0), refresh))
    }

    /// Rotates a presented refresh token: the presented one is spent and its child issued.
    /// A spent token presented again, or one older than `ttl`, ends its whole session.
    pub(crate) async fn rotate(
        &self,
        realm: Realm,
        presented: &str,
        ttl: Duration,
    ) -> Result<Result<Rotated, Refused>, AuthError> {
        let not_found = Refused {
            refusal: RefreshRefusal::NotFound,
            user_id: None,
            session_id: None,
        };
        if !RefreshToken::is_well_formed(presented) {
            return Ok(Err(not_found));
        }
        let hash = hash_secret(presented);
        let mut conn = self.db.conn().await?;
        let tx = conn.transaction().await?;
        // The row lock serializes two refreshes of one token: the second sees it revoked.
        let sql = format!(
            "SELECT rt.id, rt.revoked, rt.session_id, s.user_id, \
                    extract(epoch FROM now() - rt.created_at)::float8 \
             FROM {tokens} rt JOIN {sessions} s ON s.id = rt.session_id \
             WHERE rt.token_hash = $1 FOR UPDATE OF rt",
            tokens = realm.refresh_tokens(),
            sessions = realm.sessions(),
        );
        let Some(row) = tx.query_opt(&sql, &[&hash]).await? else {
            return Ok(Err(not_found));
        };
        let (token_id, revoked, session_id, user_id, age): (i64, bool, Uuid, Uuid, f64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let stored = StoredRefreshToken {
            revoked,
            age: Duration::from_secs_f64(age.max(0.0)),
        };
        let refusal = match decide(stored, ttl) {
            RefreshDecision::Rotate => None,
            RefreshDecision::ReuseDetected => Some(RefreshRefusal::Reused),
            RefreshDecision::Expired => Some(RefreshRefusal::Expired),
        };
        if let Some(refusal) = refusal {
            // The session ends, and with it (cascade) every token of the family.
            let sql = format!("DELETE FROM {} WHERE id = $1", realm.sessions());
            tx.execute(&sql, &[&session_id]).await?;
            tx.commit().await?;
            return Ok(Err(Refused {
                refusal,
                user_id: Some(user_id),
                session_id: Some(session_id),
            }));
        }
        let refresh = RefreshToken::generate();
        let sql = format!(
            "WITH old AS (UPDATE {tokens} SET revoked = true, updated_at = now() WHERE id = $1), \
             new AS (INSERT INTO {tokens} (session_id, token_hash, parent_id) VALUES ($2, $3, $1)) \
             UPDATE {sessions} SET {touched} = now() WHERE id = $2",
            tokens = realm.refresh_tokens(),
            sessions = realm.sessions(),
            touched = realm.touched_column(),
        );
        tx.execute(&sql, &[&token_id, &session_id, &refresh.hash])
            .await?;
        tx.commit().await?;
        Ok(Ok(Rotated {
            session_id,
            user_id,
            refresh,
        }))
    }

    /// Ends one session of `user` (no-op when already gone). Returns whether it existed.
    pub(crate) async fn end(
        &self,
        realm: Realm,
        session: Uuid,
        user: Uuid,
    ) -> Result<bool, AuthError> {
        let sql = format!(
            "DELETE FROM {} WHERE id = $1 AND user_id = $2 RETURNING id",
            realm.sessions()
        );
        Ok(!self.db.query(&sql, &[&session, &user]).await?.is_empty())
    }

    /// Ends every session of `user`, except `keep` when given.
    pub(crate) async fn end_all(
        &self,
        realm: Realm,
        user: Uuid,
        keep: Option<Uuid>,
    ) -> Result<(), AuthError> {
        let sql = format!(
            "DELETE FROM {} WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2)",
            realm.sessions()
        );
        self.db.query(&sql, &[&user, &keep]).await?;
        Ok(())
    }

    /// Whether `session` of `user` is live: one primary-key probe on a cached statement.
    pub(crate) async fn is_live(
        &self,
        realm: Realm,
        session: Uuid,
        user: Uuid,
    ) -> Result<bool, AuthError> {
        let conn = self.db.conn().await?;
        let sql = match realm {
            Realm::App => {
                "SELECT EXISTS (SELECT 1 FROM auth.sessions WHERE id = $1 AND user_id = $2)"
            }
            Realm::Dashboard => {
                "SELECT EXISTS (SELECT 1 FROM dashboard.sessions WHERE id = $1 AND user_id = $2)"
            }
        };
        let started = Instant::now();
        let result = async {
            let statement = conn.prepare_cached(sql).await?;
            conn.query_one(&statement, &[&session, &user]).await
        }
        .await;
        self.db.observe(sql, started.elapsed(), result.is_ok());
        Ok(result?.get(0))
    }
}
