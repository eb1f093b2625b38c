//! The RLS gate of the dispatcher: for one change and the distinct contexts of its
//! candidate recipients, who may see the row.

use std::collections::HashMap;
use std::sync::RwLock;

use deadpool_postgres::Pool;
use fluxbase_auth::AuthContext;
use fluxbase_replication::Change;
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

/// Per-table facts: whether RLS is on.
#[derive(Debug, Clone, Copy)]
struct TableFacts {
    rls: bool,
}

/// Decides visibility.
pub struct Gate {
    pg: tokio_postgres::Config,
    pool: Pool,
    /// A std lock: never held across `.await`.
    tables: RwLock<HashMap<u32, TableFacts>>,
    /// (role, relid) → SELECT privilege. A std lock: never held across `.await`.
    privileges: RwLock<HashMap<(String, u32), bool>>,
}

impl Gate {
    /// A gate reading through `pool`.
    pub fn new(pg: tokio_postgres::Config, pool: Pool, _cache_size: usize, _ttl: std::time::Duration) -> Gate {
        Gate {
            pg,
            pool,
            tables: RwLock::default(),
            privileges: RwLock::default(),
        }
    }

    /// Forgets table facts (after DDL).
    pub async fn reload(&self) {
        self.tables.write().expect("gate lock").clear();
        self.privileges.write().expect("gate lock").clear();
    }

    /// Entries in the decision cache.
    pub fn cache_len(&self) -> usize {
        0
    }

    /// Visibility of `change`'s row for each context.
    pub async fn decide(&self, change: &Change, contexts: &[AuthContext]) -> Vec<Visibility> {
        let mut out = Vec::with_capacity(contexts.len());
        let facts = self.facts(change.relation_id).await;
        for ctx in contexts {
            let v = if ctx.bypasses_rls() {
                record("bypass", Visibility::Allow)
            } else {
                match facts {
                    None => Visibility::Unknown,
                    Some(f) => {
                        if !self.can_select(ctx.role().as_str(), change.relation_id).await {
                            record("bypass", Visibility::Deny)
                        } else if !f.rls {
                            record("bypass", Visibility::Allow)
                        } else {
                            Visibility::Unknown
                        }
                    }
                }
            };
            out.push(v);
        }
        out
    }

    async fn facts(&self, relid: u32) -> Option<TableFacts> {
        if let Some(f) = self.tables.read().expect("gate lock").get(&relid) {
            return Some(*f);
        }
        let client = self.pool.get().await.ok()?;
        let row = client
            .query_opt("SELECT relrowsecurity FROM pg_class WHERE oid = $1", &[&relid])
            .await
            .ok()??;
        let facts = TableFacts { rls: row.get(0) };
        self.tables.write().expect("gate lock").insert(relid, facts);
        Some(facts)
    }

    async fn can_select(&self, role: &str, relid: u32) -> bool {
        let key = (role.to_string(), relid);
        if let Some(v) = self.privileges.read().expect("gate lock").get(&key) {
            return *v;
        }
        let Ok(client) = self.pool.get().await else {
            return false;
        };
        let allowed = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)
                        AND has_table_privilege($1, $2::oid, 'SELECT')",
                &[&role, &relid],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        self.privileges.write().expect("gate lock").insert(key, allowed);
        allowed
    }

    /// LISTENs on `channel` on a dedicated connection; the receiver yields one `()` per
    /// notification and closes when the connection is lost.
    pub async fn listen(&self, channel: &str) -> Result<mpsc::Receiver<()>, tokio_postgres::Error> {
        let tls = fluxbase_replication::pgtls::MakeRustlsConnect::new()
            .expect("the ring provider supports the default TLS versions");
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

fn record(source: &'static str, v: Visibility) -> Visibility {
    let result = if v == Visibility::Allow { "allow" } else { "deny" };
    metrics::counter!("fluxbase_realtime_rls_decisions_total", "source" => source, "result" => result)
        .increment(1);
    v
}
