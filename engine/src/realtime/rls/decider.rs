//! [`RlsDecider`]: bypass → compiled → cache → one batched SQL call, per change.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fluxbase_auth::{AuthContext, Role};
use fluxbase_replication::Change;
use serde_json::{Map, Value};
use tokio_postgres::Client;

use super::RlsError;
use super::cache::{self, CacheKey, DecisionCache};
use super::conn::Conn;
use super::fallback;
use super::image::{RowRef, event_row};
use super::owner::OwnerRoute;
use super::policy::{self, PolicySet, RelationRef, RoleAccess, TablePolicies, Verdict};

/// Roles whose access is read when policies are (re)loaded, so owner routing can be
/// offered for them without a round trip.
const PRELOADED_ROLES: &[&str] = &["anon", "authenticated", "service_role"];

/// Decider settings (`realtime.rls_cache_size`, `realtime.rls_cache_ttl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsConfig {
    /// Maximum number of cached SQL decisions.
    pub cache_size: usize,
    /// How long a cached decision is trusted.
    pub cache_ttl: Duration,
}

impl Default for RlsConfig {
    fn default() -> Self {
        RlsConfig {
            cache_size: cache::DEFAULT_CACHE_SIZE,
            cache_ttl: cache::DEFAULT_CACHE_TTL,
        }
    }
}

/// Which path decided (the `source` label of `fluxbase_realtime_rls_decisions_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Evaluated in-process from the loaded catalog facts and compiled policies (this
    /// includes denials for a missing role, a missing SELECT privilege, and undecided
    /// old rows of deletes).
    Compiled,
    /// A cached SQL answer.
    Cache,
    /// The SQL fallback.
    Sql,
    /// RLS does not apply (service_role, BYPASSRLS, owner, RLS disabled).
    Bypass,
    /// Not decidable: compiled policies cannot judge the image and SQL cannot either,
    /// because the image lacks a column (an unchanged TOAST value that could not be
    /// recovered exactly, a key-only old row of a DELETE). `allowed` is false; for a DELETE
    /// the hub sends the primary key only, never the old row.
    Undecided,
}

impl Source {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Compiled => "compiled",
            Source::Cache => "cache",
            Source::Sql => "sql",
            Source::Bypass => "bypass",
            Source::Undecided => "undecided",
        }
    }
}

/// One context's answer for one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the context may see the row.
    pub allowed: bool,
    /// Which path decided.
    pub source: Source,
}

/// One changed row to decide on.
#[derive(Debug, Clone, Copy)]
pub struct RowChange<'a> {
    /// Table OID (the replication relation id).
    pub relid: u32,
    /// Primary-key columns → values (the cache key).
    pub pk: &'a Map<String, Value>,
    /// The row version the event carries: the new row of an INSERT/UPDATE, the old one of a
    /// DELETE. Absent columns (unchanged TOAST, key-only old rows) are unknown, not NULL.
    pub row: RowRef<'a>,
    /// The transaction that wrote it (0 when unknown): the SQL fallback waits until it is
    /// visible, so policies reading other tables see what it wrote.
    pub xid: u32,
}

impl<'a> RowChange<'a> {
    /// The row to decide on for a replicated change, as decoded. `None` for other
    /// operations and for tables without a primary key.
    pub fn from_change(change: &'a Change, xid: u32) -> Option<RowChange<'a>> {
        let pk = change.primary_key.as_ref()?;
        let (values, json_nulls) = event_row(change)?;
        Some(RowChange {
            relid: change.relation_id,
            pk,
            row: RowRef { values, json_nulls },
            xid,
        })
    }
}

/// A policy generation: the compiled tables and the role facts read for them.
#[derive(Debug, Default)]
struct Snapshot {
    policies: PolicySet,
    /// (role, relid) → facts; a std mutex, never held across an `.await`.
    access: Mutex<HashMap<(String, u32), Arc<RoleAccess>>>,
}

impl Snapshot {
    fn access(&self, role: &str, relid: u32) -> Option<Arc<RoleAccess>> {
        lock(&self.access).get(&(role.to_string(), relid)).cloned()
    }

    fn store_access(&self, relid: u32, loaded: HashMap<String, RoleAccess>) {
        let mut access = lock(&self.access);
        for (role, facts) in loaded {
            access.insert((role, relid), Arc::new(facts));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked mid-insert.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decides, per change, which auth contexts may see the row. Cheap to share (`Arc`); the
/// policy set is swapped whole on [`RlsDecider::reload`], so decisions in flight finish on
/// the generation they started with.
#[derive(Debug)]
pub struct RlsDecider {
    /// The relations `reload` re-reads (tables loaded lazily by OID are added).
    relations: Mutex<Vec<RelationRef>>,
    /// The current generation. A std RwLock held only to clone or replace the `Arc`.
    snapshot: RwLock<Arc<Snapshot>>,
    cache: DecisionCache,
}

impl RlsDecider {
    /// A decider with nothing loaded yet: tables are loaded on first use, so creating it
    /// needs no connection.
    pub fn new(config: &RlsConfig) -> RlsDecider {
        RlsDecider {
            relations: Mutex::new(Vec::new()),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            cache: DecisionCache::new(config.cache_size, config.cache_ttl),
        }
    }

    /// Loads the policies of `relations` and the access of the API roles.
    pub async fn load(
        client: &Client,
        relations: Vec<RelationRef>,
        config: &RlsConfig,
    ) -> Result<RlsDecider, RlsError> {
        let decider = RlsDecider::new(config);
        if !relations.is_empty() {
            decider
                .add_relations(&mut Conn::from(client), &relations)
                .await?;
        }
        Ok(decider)
    }

    /// Re-reads policies, RLS flags, columns and privileges (call on DDL and when role
    /// attributes, memberships or grants changed). Cached decisions are dropped: they were
    /// taken under the old facts.
    pub async fn reload(&self, conn: &mut Conn<'_>) -> Result<(), RlsError> {
        let relations = lock(&self.relations).clone();
        let snapshot = build_snapshot(conn.client().await?, &relations).await?;
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        self.cache.clear();
        self.record_cache_gauge();
        Ok(())
    }

    /// Adds relations to the loaded set (and to what `reload` re-reads).
    pub async fn add_relations(
        &self,
        conn: &mut Conn<'_>,
        relations: &[RelationRef],
    ) -> Result<(), RlsError> {
        let added = build_snapshot(conn.client().await?, relations).await?;
        {
            let mut known = lock(&self.relations);
            for relation in relations {
                if !known.contains(relation) {
                    known.push(relation.clone());
                }
            }
        }
        // Merge into whatever generation is current now (a reload may have run meanwhile).
        let mut slot = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let mut policies = slot.policies.clone();
        policies.extend(added.policies);
        let mut access = lock(&slot.access).clone();
        access.extend(lock(&added.access).drain());
        *slot = Arc::new(Snapshot {
            policies,
            access: Mutex::new(access),
        });
        Ok(())
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// OIDs of the loaded tables (for the role watcher's fingerprint).
    pub fn relids(&self) -> Vec<u32> {
        self.current().policies.tables().map(|t| t.relid).collect()
    }

    /// The compiled policies of a table, if loaded.
    pub fn table(&self, relid: u32) -> Option<Arc<TablePolicies>> {
        self.current().policies.table(relid).cloned()
    }

    /// Owner routing for a table: `Some` when its permissive policies all require
    /// `col = auth.uid()`, valid for `anon`/`authenticated` unless they bypass RLS there.
    pub fn owner_route(&self, relid: u32) -> Option<OwnerRoute> {
        let snapshot = self.current();
        let table = snapshot.policies.table(relid)?;
        if !table.rls_enabled {
            return None;
        }
        let index = table.owner_index.clone()?;
        let roles: Vec<Role> = [Role::Anon, Role::Authenticated]
            .into_iter()
            .filter(|role| {
                snapshot
                    .access(role.as_str(), relid)
                    .is_some_and(|a| !a.exists || table.rls_applies(&a))
            })
            .collect();
        Some(OwnerRoute { index, roles })
    }

    /// Number of cached decisions (for the `fluxbase_realtime_rls_cache_entries` gauge).
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Decides for each context (in order) whether it may see the changed row. Contexts
    /// should be distinct (one per fingerprint); duplicates are answered consistently.
    ///
    /// On `Err` (catalog or fallback query failed) nothing was decided: the caller must not
    /// deliver the row to any context that is not known to bypass RLS.
    ///
    /// A connection is taken from `conn` only when needed: to load a table or a role's
    /// facts seen for the first time, or for the SQL fallback.
    pub async fn decide<C: Borrow<AuthContext>>(
        &self,
        conn: &mut Conn<'_>,
        change: &RowChange<'_>,
        contexts: &[C],
    ) -> Result<Vec<Decision>, RlsError> {
        let contexts: Vec<&AuthContext> = contexts.iter().map(Borrow::borrow).collect();
        let contexts = contexts.as_slice();
        let mut snapshot = self.current();
        if snapshot.policies.table(change.relid).is_none() {
            self.add_relations(conn, &[RelationRef::Oid(change.relid)])
                .await?;
            snapshot = self.current();
        }
        let Some(table) = snapshot.policies.table(change.relid).cloned() else {
            // The table no longer exists: nobody can select from it.
            let denied = vec![deny(Source::Compiled); contexts.len()];
            record(&denied);
            return Ok(denied);
        };
        let mut missing: Vec<&str> = Vec::new();
        for ctx in contexts {
            let role = ctx.role().as_str();
            if !missing.contains(&role) && snapshot.access(role, change.relid).is_none() {
                missing.push(role);
            }
        }
        if !missing.is_empty() {
            let loaded = policy::load_access(conn.client().await?, change.relid, &missing).await?;
            snapshot.store_access(change.relid, loaded);
        }

        let mut decisions: Vec<Option<Decision>> = Vec::with_capacity(contexts.len());
        for ctx in contexts {
            let access = snapshot
                .access(ctx.role().as_str(), change.relid)
                .unwrap_or_else(|| Arc::new(RoleAccess::missing()));
            decisions.push(decide_in_process(&table, &access, change.row, ctx));
        }

        let undecided: Vec<usize> = (0..contexts.len())
            .filter(|&i| decisions[i].is_none())
            .collect();
        if !undecided.is_empty() {
            self.decide_undecided(conn, &table, change, contexts, &undecided, &mut decisions)
                .await?;
        }
        let decisions: Vec<Decision> = decisions
            .into_iter()
            .map(|d| d.unwrap_or(deny(Source::Compiled)))
            .collect();
        record(&decisions);
        self.record_cache_gauge();
        Ok(decisions)
    }

    /// Whether each context's role may SELECT the table at all (its privilege, whatever
    /// the row): what a TRUNCATE, which carries no row, is judged by.
    pub async fn may_select<C: Borrow<AuthContext>>(
        &self,
        conn: &mut Conn<'_>,
        relid: u32,
        contexts: &[C],
    ) -> Result<Vec<bool>, RlsError> {
        let contexts: Vec<&AuthContext> = contexts.iter().map(Borrow::borrow).collect();
        let mut snapshot = self.current();
        if snapshot.policies.table(relid).is_none() {
            self.add_relations(conn, &[RelationRef::Oid(relid)]).await?;
            snapshot = self.current();
        }
        if snapshot.policies.table(relid).is_none() {
            return Ok(vec![false; contexts.len()]);
        }
        let mut missing: Vec<&str> = Vec::new();
        for ctx in &contexts {
            let role = ctx.role().as_str();
            if !missing.contains(&role) && snapshot.access(role, relid).is_none() {
                missing.push(role);
            }
        }
        if !missing.is_empty() {
            let loaded = policy::load_access(conn.client().await?, relid, &missing).await?;
            snapshot.store_access(relid, loaded);
        }
        Ok(contexts
            .iter()
            .map(|ctx| {
                snapshot
                    .access(ctx.role().as_str(), relid)
                    .is_some_and(|a| a.exists && a.can_select)
            })
            .collect())
    }

    /// Cache, then one SQL call for the contexts compiled evaluation could not decide.
    async fn decide_undecided(
        &self,
        conn: &mut Conn<'_>,
        table: &TablePolicies,
        change: &RowChange<'_>,
        contexts: &[&AuthContext],
        undecided: &[usize],
        decisions: &mut [Option<Decision>],
    ) -> Result<(), RlsError> {
        let pk_hash = cache::hash_map(change.pk);
        let row_hash = cache::hash_row(change.row);
        // SQL judges the image itself: only a complete one (an absent column would read
        // as NULL there).
        let complete = table
            .columns
            .iter()
            .all(|c| change.row.values.contains_key(c));
        let key = |ctx: &AuthContext| CacheKey {
            fingerprint: ctx.fingerprint(),
            relid: change.relid,
            pk_hash,
            row_hash,
        };
        // Distinct fingerprints go to SQL once; duplicates copy the answer.
        let mut to_check: Vec<&AuthContext> = Vec::new();
        let mut waiting: Vec<(usize, usize)> = Vec::new();
        for &i in undecided {
            let ctx = contexts[i];
            if let Some(allowed) = self.cache.get(&key(ctx)) {
                decisions[i] = Some(Decision {
                    allowed,
                    source: Source::Cache,
                });
                continue;
            }
            if !complete {
                decisions[i] = Some(deny(Source::Undecided));
                continue;
            }
            let slot = match to_check
                .iter()
                .position(|c| c.fingerprint() == ctx.fingerprint())
            {
                Some(slot) => slot,
                None => {
                    to_check.push(ctx);
                    to_check.len() - 1
                }
            };
            waiting.push((i, slot));
        }
        if to_check.is_empty() {
            return Ok(());
        }
        // Answers are stored only if no reload cleared the cache while PostgreSQL was
        // asked (they were made under the policies and role facts it dropped).
        let generation = self.cache.generation();
        let visible = fallback::check_image(
            conn.client().await?,
            change.relid,
            change.row.values,
            change.row.json_nulls,
            change.xid,
            &to_check,
        )
        .await?;
        for (ctx, &allowed) in to_check.iter().zip(&visible) {
            self.cache.insert(key(ctx), allowed, generation);
        }
        for (i, slot) in waiting {
            decisions[i] = Some(Decision {
                allowed: visible[slot],
                source: Source::Sql,
            });
        }
        Ok(())
    }

    fn record_cache_gauge(&self) {
        metrics::gauge!("fluxbase_realtime_rls_cache_entries").set(self.cache.len() as f64);
    }
}

async fn build_snapshot(client: &Client, relations: &[RelationRef]) -> Result<Snapshot, RlsError> {
    let policies = PolicySet::load(client, relations).await?;
    let snapshot = Snapshot {
        policies,
        access: Mutex::new(HashMap::new()),
    };
    let relids: Vec<u32> = snapshot.policies.tables().map(|t| t.relid).collect();
    for relid in relids {
        let loaded = policy::load_access(client, relid, PRELOADED_ROLES).await?;
        snapshot.store_access(relid, loaded);
    }
    Ok(snapshot)
}

/// Everything but the cache and SQL: `None` when only SQL can tell.
fn decide_in_process(
    table: &TablePolicies,
    access: &RoleAccess,
    row: RowRef<'_>,
    ctx: &AuthContext,
) -> Option<Decision> {
    if !access.exists || !access.can_select {
        return Some(deny(Source::Compiled));
    }
    if !table.rls_applies(access) {
        return Some(Decision {
            allowed: true,
            source: Source::Bypass,
        });
    }
    match table.evaluate(access, row, ctx) {
        Verdict::Allow => Some(Decision {
            allowed: true,
            source: Source::Compiled,
        }),
        Verdict::Deny => Some(deny(Source::Compiled)),
        Verdict::NeedsSql => None,
    }
}

fn deny(source: Source) -> Decision {
    Decision {
        allowed: false,
        source,
    }
}

/// Counts decisions, aggregated per label pair so a fan-out to thousands of contexts
/// touches at most eight counters.
fn record(decisions: &[Decision]) {
    let mut counts: HashMap<(Source, bool), u64> = HashMap::new();
    for d in decisions {
        *counts.entry((d.source, d.allowed)).or_default() += 1;
    }
    for ((source, allowed), n) in counts {
        metrics::counter!(
            "fluxbase_realtime_rls_decisions_total",
            "source" => source.as_str(),
            "result" => if allowed { "allow" } else { "deny" }
        )
        .increment(n);
    }
}
