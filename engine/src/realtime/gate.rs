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

/// The access facts of one reading of the role watcher: the loaded tables (sorted) and
/// their access fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessMark {
    relids: Vec<u32>,
    fingerprint: String,
}

/// Decides visibility through the RLS decider (bypass → compiled → cache → SQL). Every
/// database read of the gate goes through its own small pool, and only when a decision
/// needs it: fan-out never waits for the server's main pool.
pub struct Gate {
    /// `realtime.rls_fallback_connections` connections, opened lazily.
    fallback: Pool,
    decider: RlsDecider,
    /// The access facts last applied by the role watcher (std lock, never held across
    /// `.await`).
    access: Mutex<Option<AccessMark>>,
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

    /// The new access facts when role attributes, memberships or the grants of loaded
    /// tables changed since those last applied (none of the first two fires an event
    /// trigger); the caller reloads, then [`Gate::access_applied`]. The first reading is
    /// applied at once (nothing was loaded under another). Errors count as "no change"
    /// and are logged.
    ///
    /// Tables loaded since (a new table's first subscriber) are not a change: when the
    /// tables of the last reading hash as they did then, the facts behind everything
    /// loaded before are unchanged, and a new table's own grants were read with its
    /// policies (a later `GRANT`/`REVOKE` on it is DDL, which reloads anyway). The reading
    /// over all loaded tables is applied without a reload.
    pub async fn access_changed(&self) -> Option<AccessMark> {
        let mut relids = self.decider.relids();
        relids.sort_unstable();
        let last = self
            .access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let grown = last.as_ref().filter(|l| {
            l.relids != relids && l.relids.iter().all(|r| relids.binary_search(r).is_ok())
        });
        let mut conn = Conn::pool(&self.fallback);
        let read = match conn.client().await {
            Ok(client) => match grown {
                Some(l) => super::rls::access_fingerprint_pair(client, &l.relids, &relids)
                    .await
                    .map(|(before, now)| (Some(before), now)),
                None => super::rls::access_fingerprint(client, &relids)
                    .await
                    .map(|now| (None, now)),
            },
            Err(err) => Err(err),
        };
        let (before, fingerprint) = match read {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(error = %err, "access fingerprint not read");
                return None;
            }
        };
        let mark = AccessMark {
            relids,
            fingerprint,
        };
        match (last, before) {
            (None, _) => {}
            (Some(l), Some(before)) if l.fingerprint == before => {}
            (Some(l), None) if l.fingerprint == mark.fingerprint => return None,
            (Some(_), _) => return Some(mark),
        }
        self.access_applied(mark);
        None
    }

    /// Records `mark` (from [`Gate::access_changed`]) as applied: the reload that followed
    /// it succeeded. Until then every check reports the change again, so a reload that
    /// failed is retried instead of leaving the old role facts in force.
    pub fn access_applied(&self, mark: AccessMark) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = Some(mark);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fluxbase_migrations::test_utils::TestDb;

    use super::Gate;

    /// A gate over `db` with one fallback connection.
    fn gate(db: &TestDb) -> Gate {
        Gate::new(db.config(), 1024, Duration::from_secs(60), 1)
    }

    /// The OID of `public.name`.
    async fn relid(db: &TestDb, name: &str) -> u32 {
        db.client()
            .await
            .query_one(
                "SELECT $1::text::regclass::oid",
                &[&format!("public.{name}")],
            )
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_newly_loaded_table_is_not_a_change_of_access() {
        let db = TestDb::new().await;
        let client = db.client().await;
        // Role attributes and memberships are cluster-wide, and other tests change them
        // meanwhile: each attempt loads a table of its own, and one attempt with no
        // outside change is enough (the previous code reported every one as a change).
        let mut quiet = false;
        for attempt in 0..5 {
            client
                .batch_execute(&format!(
                    "CREATE TABLE public.t{attempt} (id int PRIMARY KEY);
                     GRANT SELECT ON public.t{attempt} TO anon;"
                ))
                .await
                .unwrap();
            let gate = gate(&db);
            assert_eq!(
                gate.access_changed().await,
                None,
                "the first reading applies"
            );
            gate.owner_route(relid(&db, &format!("t{attempt}")).await)
                .await;
            assert_eq!(gate.decider.relids().len(), 1, "the table is loaded");
            if gate.access_changed().await.is_none() {
                quiet = true;
                break;
            }
        }
        assert!(
            quiet,
            "loading a table was taken for a change of access five times"
        );
    }

    #[tokio::test]
    async fn a_role_change_beside_a_newly_loaded_table_is_seen() {
        let db = TestDb::new().await;
        let client = db.client().await;
        client
            .batch_execute(
                "CREATE TABLE public.a (id int PRIMARY KEY);
                 CREATE TABLE public.b (id int PRIMARY KEY);",
            )
            .await
            .unwrap();
        let gate = gate(&db);
        gate.owner_route(relid(&db, "a").await).await;
        assert_eq!(
            gate.access_changed().await,
            None,
            "the first reading applies"
        );
        // A role change no event trigger reports, then a new table before the next check.
        let role = format!("gate_{}", db.name());
        client
            .batch_execute(&format!("CREATE ROLE {role} NOLOGIN"))
            .await
            .unwrap();
        gate.owner_route(relid(&db, "b").await).await;
        let seen = gate.access_changed().await;
        // Not applied until the caller says the reload worked: seen again meanwhile.
        let again = gate.access_changed().await;
        client
            .batch_execute(&format!("DROP ROLE {role}"))
            .await
            .unwrap();
        assert!(
            seen.is_some(),
            "the role change is reported, not hidden by the new table"
        );
        assert!(again.is_some(), "an unapplied change is reported again");
    }
}
