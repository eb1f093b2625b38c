//! `--sessions`: the REST cases' users as the server's auth service makes them — a row of
//! `auth.users` and one live row of `auth.sessions` each — so their tokens name a session
//! (`session_id`) and the server's in-transaction session probe runs on every request, as
//! it does for every real application user. Without `--sessions` the tokens name no
//! session and the probe does not run (the server treats them as sessionless tokens).
//!
//! The rows are created before the run and deleted after it (sessions go with their user,
//! `ON DELETE CASCADE`), whatever the run's outcome.

use tokio_postgres::Client;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::token::app_user_email;

/// The users' sessions: `ids[c]` is the session of user `c`.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// `auth.sessions.id` per user, in the users' order.
    pub ids: Vec<Uuid>,
}

impl Sessions {
    /// Creates one `auth.users` row per user (id = the user's uuid, the email its token
    /// carries) and one session each.
    pub async fn create(client: &Client, users: &[Uuid]) -> Result<Self> {
        let ids: Vec<Uuid> = users.iter().map(|_| Uuid::new_v4()).collect();
        let emails: Vec<String> = users.iter().map(|u| app_user_email(*u)).collect();
        let users = users.to_vec();
        let result = async {
            client.batch_execute("BEGIN").await?;
            client
                .execute(
                    "INSERT INTO auth.users (id, email) \
                     SELECT u, e FROM unnest($1::uuid[], $2::text[]) AS t(u, e)",
                    &[&users, &emails],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO auth.sessions (id, user_id) \
                     SELECT s, u FROM unnest($1::uuid[], $2::uuid[]) AS t(u, s)",
                    &[&users, &ids],
                )
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(err) = result {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Error::Database {
                context: "seeding auth.users and auth.sessions for --sessions (needs the migrated auth schema)",
                source: err,
            });
        }
        Ok(Sessions { ids })
    }

    /// The session of user `c`.
    pub fn of(&self, c: usize) -> Uuid {
        self.ids[c]
    }

    /// Deletes the users (and with them their sessions); a failure is only reported.
    pub async fn remove(client: &Client, users: &[Uuid]) {
        let users = users.to_vec();
        if let Err(err) = client
            .execute(
                "DELETE FROM auth.users WHERE id = ANY($1::uuid[])",
                &[&users],
            )
            .await
        {
            eprintln!("warning: could not delete the run's auth.users rows: {err}");
        }
    }
}
