//! The RLS gate of the dispatcher: for one change and the distinct contexts of its
//! candidate recipients, who may see the row; plus what else needs the database on the way
//! (filters PostgreSQL must decide, unchanged TOAST values, the role watcher), all on the
//! gate's own small pool.

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use fluxbase_auth::AuthContext;
use fluxbase_replication::{Change, Transaction};

use super::filter::{Filter, FilterVerdict};
use super::index::Subscription;
use super::rls::predicate::ColumnInfo;
use super::rls::{
    Completed, Conn, OwnerRoute, RelationRef, RlsConfig, RlsDecider, RowChange, RowRef, Source,
    fallback_pool, image,
};

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

/// Decides visibility through the RLS decider (bypass → compiled → cache → SQL). Every
/// database read of the gate goes through its own small pool, and only when a decision
/// needs it: fan-out never waits for the server's main pool.
pub struct Gate {
    /// `realtime.rls_fallback_connections` connections, opened lazily.
    fallback: Pool,
    decider: RlsDecider,
    /// The last access fingerprint the role watcher saw (std lock, never held across
    /// `.await`).
    access: Mutex<Option<String>>,
    /// Held while a table's policies load: the subscribers of a table nobody has asked
    /// for yet (a connect storm's first second) wait for one load instead of each running
    /// its own on the small pool.
    loading: tokio::sync::Mutex<()>,
}

impl Gate {
    /// A gate with its own pool of `fallback_connections`.
    pub fn new(
        pg: tokio_postgres::Config,
        cache_size: usize,
        ttl: std::time::Duration,
        fallback_connections: usize,
    ) -> Gate {
        Gate {
            fallback: fallback_pool(pg, fallback_connections),
            decider: RlsDecider::new(&RlsConfig {
                cache_size,
                cache_ttl: ttl,
            }),
            access: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-reads policies (after DDL, or role changes) and clears the decision cache;
    /// whether it did (a failure is logged, and the old facts stay until a retry works).
    pub async fn reload(&self) -> bool {
        match self.decider.reload(&mut Conn::pool(&self.fallback)).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "reloading RLS policies failed");
                false
            }
        }
    }

    /// The new access fingerprint when role attributes, memberships or the grants of
    /// loaded tables changed since the one last applied (none of them fires an event
    /// trigger); the caller reloads, then [`Gate::access_applied`]. The first reading is
    /// applied at once (nothing was loaded under another). Errors count as "no change"
    /// and are logged.
    pub async fn access_changed(&self) -> Option<String> {
        let relids = self.decider.relids();
        let mut conn = Conn::pool(&self.fallback);
        let fingerprint = match conn.client().await {
            Ok(client) => super::rls::access_fingerprint(client, &relids).await,
            Err(err) => Err(err),
        };
        let fingerprint = match fingerprint {
            Ok(f) => f,
            Err(err) => {
                tracing::debug!(error = %err, "access fingerprint not read");
                return None;
            }
        };
        let mut last = self.access.lock().unwrap_or_else(|p| p.into_inner());
        match last.as_ref() {
            None => {
                *last = Some(fingerprint);
                None
            }
            Some(l) if *l == fingerprint => None,
            Some(_) => Some(fingerprint),
        }
    }

    /// Records `fingerprint` (from [`Gate::access_changed`]) as applied: the reload that
    /// followed it succeeded. Until then every check reports the change again, so a reload
    /// that failed is retried instead of leaving the old role facts in force.
    pub fn access_applied(&self, fingerprint: String) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = Some(fingerprint);
    }

    /// The owner route of a table (loading its policies when new), if its policies are
    /// owner-only.
    pub async fn owner_route(&self, relid: u32) -> Option<OwnerRoute> {
        // The common case (policies already loaded) needs no connection nor the lock.
        if self.decider.table(relid).is_none() {
            let _loading = self.loading.lock().await;
            // Loaded while this waited: by the subscriber that held the lock.
            if self.decider.table(relid).is_none()
                && let Err(err) = self
                    .decider
                    .add_relations(&mut Conn::pool(&self.fallback), &[RelationRef::Oid(relid)])
                    .await
            {
                tracing::warn!(error = %err, relid, "loading RLS policies failed");
                return None;
            }
        }
        self.decider.owner_route(relid)
    }

    /// A column's type and collation, from the loaded table (see [`Gate::owner_route`],
    /// which loads it).
    pub fn column(&self, relid: u32, name: &str) -> Option<ColumnInfo> {
        let table = self.decider.table(relid)?;
        table.column_info.iter().find(|c| c.name == name).cloned()
    }

    /// Asks PostgreSQL about the candidates whose filter it must decide (a type or
    /// collation the engine cannot compare exactly) and drops those the row fails.
    pub async fn drop_failed_filters(
        &self,
        change: &Change,
        row: RowRef<'_>,
        matches: &mut Vec<Arc<Subscription>>,
    ) {
        let deferred: Vec<usize> = matches
            .iter()
            .enumerate()
            .filter(|(_, sub)| {
                sub.filter
                    .as_ref()
                    .is_some_and(|f| f.may_defer() && f.verdict(row) == FilterVerdict::Defer)
            })
            .map(|(i, _)| i)
            .collect();
        if deferred.is_empty() {
            return;
        }
        let filters: Vec<&Filter> = deferred
            .iter()
            .filter_map(|&i| matches[i].filter.as_ref())
            .collect();
        let passed = self.resolve_filters(change, row, &filters).await;
        let failed: Vec<usize> = deferred
            .iter()
            .zip(&passed)
            .filter(|(_, ok)| !**ok)
            .map(|(&i, _)| i)
            .collect();
        let mut index = 0;
        matches.retain(|_| {
            let keep = !failed.contains(&index);
            index += 1;
            keep
        });
    }

    /// Which of `filters` (those that cannot be decided in-process) PostgreSQL says `row`
    /// passes; any failure answers "no" (a filter never passes without an answer).
    async fn resolve_filters(
        &self,
        change: &Change,
        row: RowRef<'_>,
        filters: &[&Filter],
    ) -> Vec<bool> {
        let mut conn = Conn::pool(&self.fallback);
        let result = match conn.client().await {
            Ok(client) => {
                super::rls::fallback::filter_matches(client, change.relation_id, row, filters).await
            }
            Err(err) => Err(err),
        };
        result.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "filters not decided: change withheld from those subscriptions");
            vec![false; filters.len()]
        })
    }

    /// Recovers the unchanged TOAST values of `change` that a filter (`filter_columns`) or
    /// the table's policies read, see [`image::complete`]. `None` when nothing is missing:
    /// the change's rows are judged as decoded.
    pub async fn complete(
        &self,
        tx: &Transaction,
        change: &Change,
        filter_columns: &[String],
    ) -> Option<Completed> {
        if change.unchanged_toast.is_empty() {
            return None;
        }
        let mut needed: Vec<String> = filter_columns.to_vec();
        if let Some(table) = self.decider.table(change.relation_id) {
            needed.extend(table.columns_read());
        }
        needed.retain(|c| change.unchanged_toast.contains(c));
        needed.sort();
        needed.dedup();
        if needed.is_empty() {
            return None;
        }
        Some(image::complete(&mut Conn::pool(&self.fallback), tx, change, &needed).await)
    }

    /// Entries in the decision cache.
    pub fn cache_len(&self) -> usize {
        self.decider.cache_len()
    }

    /// Visibility of `change`'s row for each context: the row as decoded, or as
    /// `completed`. On any failure nothing is allowed: a row is never delivered without a
    /// decision.
    pub async fn decide(
        &self,
        tx: &Transaction,
        change: &Change,
        completed: Option<&Completed>,
        contexts: &[std::sync::Arc<AuthContext>],
    ) -> Vec<Visibility> {
        let undecided = || vec![Visibility::Unknown; contexts.len()];
        let Some(mut row) = RowChange::from_change(change, tx.xid) else {
            return undecided();
        };
        if let Some(completed) = completed {
            row.row = completed.exact();
        }
        let mut conn = Conn::pool(&self.fallback);
        let decider = &self.decider;
        let rls_off = decider
            .table(change.relation_id)
            .is_some_and(|t| !t.rls_enabled);
        let decisions = if rls_off && contexts.len() > 1 {
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
                .decide(&mut conn, &row, &reps)
                .await
                .map(|d| slots.iter().map(|&i| d[i]).collect())
        } else {
            decider.decide(&mut conn, &row, contexts).await
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

    /// For a TRUNCATE (no row): whether each context's role may SELECT the table at all.
    /// On any failure nobody may: a table's emptying is never told without a decision.
    pub async fn may_select(
        &self,
        relid: u32,
        contexts: &[std::sync::Arc<AuthContext>],
    ) -> Vec<bool> {
        let mut conn = Conn::pool(&self.fallback);
        match self.decider.may_select(&mut conn, relid, contexts).await {
            Ok(allowed) => allowed,
            Err(err) => {
                tracing::warn!(error = %err, "table privileges not read: truncate withheld");
                vec![false; contexts.len()]
            }
        }
    }
}
