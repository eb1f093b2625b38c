//! The slot leader's lock: `pg_try_advisory_lock` on a dedicated connection. PostgreSQL
//! releases it when that session ends — the process killed (the kernel closes its socket),
//! or the connection cut (the server's TCP keepalives and `tcp_user_timeout`, set on the
//! session below, end it within the failover timeout). The holder checks its session at a
//! fraction of the timeout and steps down as soon as a check fails, so two instances never
//! both believe they lead for longer than the server takes to drop a dead session.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::{Cluster, Role};

/// A held lock; released (the session closed) on drop.
pub(crate) struct Lease {
    client: Client,
    connection: JoinHandle<()>,
    /// How often the session is checked.
    check: Duration,
    /// How long a check may take: half the failover timeout, so a slow (loaded) database
    /// does not make the leader step down, while a cut one is noticed before the server
    /// drops the session and another instance can take the lock.
    answer: Duration,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The lock's key: one per slot (the namespace), the same on every instance.
const KEY_SQL: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('fluxbase.realtime.leader:' || $1, 0))";

impl Lease {
    /// Until this instance holds the lock (trying every fifth of the failover timeout);
    /// reports `Follower` while another instance holds it.
    pub(crate) async fn acquire(pg: &tokio_postgres::Config, cluster: &Cluster) -> Lease {
        let timeout = cluster.options().failover_timeout;
        let poll = (timeout / 5).max(Duration::from_millis(100));
        loop {
            let (client, connection) = match connect(pg, timeout).await {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot open the realtime leader lock connection; retrying");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            loop {
                if connection.is_finished() {
                    break;
                }
                let attempt = tokio::time::timeout(
                    timeout,
                    client.query_one(KEY_SQL, &[&cluster.options().namespace]),
                )
                .await;
                match attempt {
                    Ok(Ok(row)) if row.get::<_, bool>(0) => {
                        return Lease {
                            client,
                            connection,
                            check: poll,
                            answer: timeout / 2,
                        };
                    }
                    Ok(Ok(_)) => {
                        if cluster.role() != Role::Follower {
                            tracing::info!("another instance leads realtime; following");
                            cluster.set_role(Role::Follower);
                        }
                        tokio::time::sleep(poll).await;
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "realtime leader lock attempt failed; reconnecting");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!("realtime leader lock attempt timed out; reconnecting");
                        break;
                    }
                }
            }
            connection.abort();
            tokio::time::sleep(poll).await;
        }
    }

    /// Resolves when the lock can no longer be trusted: the session ended, or a check
    /// failed or did not answer in time.
    pub(crate) async fn lost(&mut self) -> String {
        loop {
            tokio::time::sleep(self.check).await;
            if self.connection.is_finished() {
                return "the lock connection closed".into();
            }
            match tokio::time::timeout(self.answer, self.client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return format!("the lock connection failed: {err}"),
                Err(_) => return "the lock connection did not answer in time".into(),
            }
        }
    }
}

/// The dedicated session, with TCP keepalives on both ends so a cut connection ends within
/// the failover timeout.
async fn connect(
    pg: &tokio_postgres::Config,
    timeout: Duration,
) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let mut pg = pg.clone();
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .connect_timeout(timeout)
        .application_name("fluxbase realtime leader lock");
    let tls = fluxbase_migrations::tls::MakeRustlsConnect::new();
    let (client, connection) = pg.connect(tls).await?;
    let connection = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "realtime leader lock connection ended");
        }
    });
    // The server side: a client that vanished without closing is dropped (and its lock
    // released) within about the failover timeout. Ignored on unix sockets.
    let user_timeout = timeout.as_millis().min(i32::MAX as u128);
    let settings = format!(
        "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; \
         SET tcp_keepalives_count = 3; SET tcp_user_timeout = {user_timeout}"
    );
    if let Err(err) = client.batch_execute(&settings).await {
        tracing::debug!(error = %err, "tcp keepalive settings not applied to the lock session");
    }
    Ok((client, connection))
}
