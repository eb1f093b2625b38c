//! The RLS gate of the dispatcher: for one change and the distinct contexts of its
//! candidate recipients, who may see the row.

use deadpool_postgres::Pool;
use fluxbase_auth::AuthContext;
use fluxbase_replication::Change;

use super::rls::{OwnerRoute, RelationRef, RlsConfig, RlsDecider, RlsError, RowChange, Source};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// A decision for one context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The context can SELECT the row.
    Allow,
    /// It cannot.
    Deny,
    /// Not established (e.g. a deleted row under RLS).
    Unknown,
}

/// Decides visibility through the RLS decider (bypass → compiled → cache → SQL).
pub struct Gate {
    pg: tokio_postgres::Config,
    pool: Pool,
    config: RlsConfig,
    /// Loaded on first use (the first change of an RLS-relevant table).
    decider: tokio::sync::OnceCell<RlsDecider>,
}

impl Gate {
    /// A gate reading through `pool`.
    pub fn new(
        pg: tokio_postgres::Config,
        pool: Pool,
        cache_size: usize,
        ttl: std::time::Duration,
    ) -> Gate {
        Gate {
            pg,
            pool,
            config: RlsConfig {
                cache_size,
                cache_ttl: ttl,
            },
            decider: tokio::sync::OnceCell::new(),
        }
    }

    async fn decider(&self, client: &tokio_postgres::Client) -> Result<&RlsDecider, RlsError> {
        self.decider
            .get_or_try_init(|| RlsDecider::load(client, Vec::new(), &self.config))
            .await
    }

    /// Re-reads policies (after DDL) and clears the decision cache.
    pub async fn reload(&self) {
        let Some(decider) = self.decider.get() else {
            return;
        };
        match self.pool.get().await {
            Ok(client) => {
                if let Err(err) = decider.reload(&client).await {
                    tracing::warn!(error = %err, "reloading RLS policies failed");
                }
            }
            Err(err) => tracing::warn!(error = %err, "reloading RLS policies: no connection"),
        }
    }

    /// The owner route of a table (loading its policies when new), if its policies are
    /// owner-only.
    pub async fn owner_route(&self, relid: u32) -> Option<OwnerRoute> {
        // The common case (policies already loaded) needs no connection.
        if let Some(decider) = self.decider.get()
            && decider.table(relid).is_some()
        {
            return decider.owner_route(relid);
        }
        let client = self.pool.get().await.ok()?;
        let decider = self.decider(&client).await.ok()?;
        if decider.table(relid).is_none()
            && let Err(err) = decider
                .add_relations(&client, &[RelationRef::Oid(relid)])
                .await
        {
            tracing::warn!(error = %err, relid, "loading RLS policies failed");
            return None;
        }
        decider.owner_route(relid)
    }

    /// Entries in the decision cache.
    pub fn cache_len(&self) -> usize {
        self.decider.get().map_or(0, RlsDecider::cache_len)
    }

    /// Visibility of `change`'s row for each context. On any failure nothing is allowed:
    /// a row is never delivered without a decision.
    pub async fn decide(
        &self,
        change: &Change,
        contexts: &[std::sync::Arc<AuthContext>],
    ) -> Vec<Visibility> {
        let undecided = || vec![Visibility::Unknown; contexts.len()];
        let Some(row) = RowChange::from_change(change) else {
            return undecided();
        };
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(error = %err, "RLS decision without a database connection: withheld");
                return undecided();
            }
        };
        let decisions = match self.decider(&client).await {
            Ok(decider) => {
                let rls_off = decider
                    .table(change.relation_id)
                    .is_some_and(|t| !t.rls_enabled);
                if rls_off && contexts.len() > 1 {
                    // Without RLS only the role matters (its privileges): decide once per
                    // distinct role, not once per user.
                    let mut roles: Vec<&str> = Vec::new();
                    let mut reps: Vec<std::sync::Arc<AuthContext>> = Vec::new();
                    let slots: Vec<usize> = contexts
                        .iter()
                        .map(|ctx| {
                            let role = ctx.role().as_str();
                            roles.iter().position(|r| *r == role).unwrap_or_else(|| {
                                roles.push(role);
                                reps.push(ctx.clone());
                                reps.len() - 1
                            })
                        })
                        .collect();
                    decider
                        .decide(&client, &row, &reps)
                        .await
                        .map(|d| slots.iter().map(|&i| d[i]).collect())
                } else {
                    decider.decide(&client, &row, contexts).await
                }
            }
            Err(err) => Err(err),
        };
        match decisions {
            Ok(decisions) => decisions
                .into_iter()
                .map(|d| match (d.allowed, d.source) {
                    (true, _) => Visibility::Allow,
                    // A deleted row no check can judge: "not established", key only.
                    (false, Source::Undecided) => Visibility::Unknown,
                    (false, _) => Visibility::Deny,
                })
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "RLS decision failed: change withheld from RLS-subject subscribers");
                undecided()
            }
        }
    }

    /// LISTENs on `channel` on a dedicated connection; the receiver yields one `()` per
    /// notification and closes when the connection is lost.
    pub async fn listen(&self, channel: &str) -> Result<mpsc::Receiver<()>, tokio_postgres::Error> {
        let tls = fluxbase_migrations::tls::MakeRustlsConnect::new();
        let (client, mut connection) = self.pg.connect(tls).await?;
        let client = std::sync::Arc::new(client);
        let keep_alive = client.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            // Holds the client: dropping it would close the connection.
            let _client = keep_alive;
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        // Coalesce bursts: one pending reload is enough.
                        let _ = tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        Ok(rx)
    }
}
