//! The filter index: (schema, table) → event → equality-filter column → value →
//! subscriptions, plus owner routing, so matching a change costs the number of matching
//! subscriptions plus those with non-equality filters, not all of them. Connections and
//! channels live elsewhere ([`super::connections`], [`super::channels`]); a subscription
//! holds its connection, so matching needs no second lookup.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::connection::ConnShared;
use super::filter::{Filter, FilterVerdict, value_text};
use super::rls::{OwnerIndex, OwnerRoute, RowOwner, RowRef};

/// Which events a subscription wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMask {
    /// INSERT
    pub insert: bool,
    /// UPDATE
    pub update: bool,
    /// DELETE
    pub delete: bool,
    /// TRUNCATE
    pub truncate: bool,
}

impl EventMask {
    /// Parses `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE` or `*` (every one; case-insensitive).
    pub fn parse(text: &str) -> Option<EventMask> {
        let none = EventMask {
            insert: false,
            update: false,
            delete: false,
            truncate: false,
        };
        match text.to_ascii_uppercase().as_str() {
            "*" => Some(EventMask {
                insert: true,
                update: true,
                delete: true,
                truncate: true,
            }),
            "INSERT" => Some(EventMask {
                insert: true,
                ..none
            }),
            "UPDATE" => Some(EventMask {
                update: true,
                ..none
            }),
            "DELETE" => Some(EventMask {
                delete: true,
                ..none
            }),
            "TRUNCATE" => Some(EventMask {
                truncate: true,
                ..none
            }),
            _ => None,
        }
    }

    fn slots(self) -> impl Iterator<Item = usize> {
        [self.insert, self.update, self.delete, self.truncate]
            .into_iter()
            .enumerate()
            .filter_map(|(i, on)| on.then_some(i))
    }
}

/// Index slot of a change's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// INSERT
    Insert = 0,
    /// UPDATE
    Update = 1,
    /// DELETE
    Delete = 2,
    /// TRUNCATE (no row: every subscription of the event, whatever its filter)
    Truncate = 3,
}

/// One table subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Server-assigned id.
    pub id: Arc<str>,
    /// The subscribing connection.
    pub conn: Arc<ConnShared>,
    /// Client channel name.
    pub channel: Arc<str>,
    /// Schema.
    pub schema: Arc<str>,
    /// Table.
    pub table: Arc<str>,
    /// Events.
    pub events: EventMask,
    /// Optional filter.
    pub filter: Option<Filter>,
    /// What the connection's codec writes before a change's body for this subscription:
    /// built once, so a change costs one copy per recipient.
    pub envelope: Arc<str>,
}

/// Subscriptions without an equality filter, in connection order (`ConnShared::seq`, then
/// id): iterating yields matches already sorted, so the common fan-out to every socket of
/// a table sorts nothing; removing one of many thousands is a tree lookup, not a scan.
type ByConn = BTreeMap<(u64, Arc<str>), Arc<Subscription>>;

/// Subscriptions of one (table, event). Buckets hold the subscriptions themselves, not
/// their ids: matching a change hashes nothing per recipient.
#[derive(Debug, Default)]
struct EventIndex {
    /// Equality filters: column → value text → subscriptions.
    eq: HashMap<String, HashMap<String, Vec<Arc<Subscription>>>>,
    /// No filter, or a filter other than `eq`: checked one by one.
    rest: ByConn,
    /// Owner-routed subscriptions (the table's policies are owner-only and the
    /// subscriber's role is subject to them), by the subscriber's `auth.uid()`.
    owners: HashMap<u128, Vec<Arc<Subscription>>>,
    /// Owner-routed subscriptions whose context owns no row (no `sub`): they only see rows
    /// whose owner cannot be read from the change.
    ownerless: ByConn,
}

/// Where a subscription sits in its table's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not owner-routed: by its filter.
    Unrouted,
    /// Owner-routed, under this owner key.
    Owner(u128),
    /// Owner-routed, owning nothing.
    Ownerless,
}

/// The key of a subscription in a [`ByConn`] set.
fn by_conn_key(sub: &Subscription) -> (u64, Arc<str>) {
    (sub.conn.seq, sub.id.clone())
}

impl EventIndex {
    fn insert(&mut self, sub: &Arc<Subscription>, slot: Slot) {
        match slot {
            Slot::Owner(key) => return self.owners.entry(key).or_default().push(sub.clone()),
            Slot::Ownerless => {
                self.ownerless.insert(by_conn_key(sub), sub.clone());
                return;
            }
            Slot::Unrouted => {}
        }
        match sub.filter.as_ref().and_then(|f| f.eq_key().map(|k| (f, k))) {
            Some((f, key)) => self
                .eq
                .entry(f.column.clone())
                .or_default()
                .entry(key.to_string())
                .or_default()
                .push(sub.clone()),
            None => {
                self.rest.insert(by_conn_key(sub), sub.clone());
            }
        }
    }

    fn remove(&mut self, sub: &Subscription, slot: Slot) {
        match slot {
            Slot::Owner(key) => {
                if let Some(subs) = self.owners.get_mut(&key) {
                    subs.retain(|s| s.id != sub.id);
                    if subs.is_empty() {
                        self.owners.remove(&key);
                    }
                }
                return;
            }
            Slot::Ownerless => {
                self.ownerless.remove(&by_conn_key(sub));
                return;
            }
            Slot::Unrouted => {}
        }
        match sub.filter.as_ref().and_then(|f| f.eq_key().map(|k| (f, k))) {
            Some((f, key)) => {
                if let Some(values) = self.eq.get_mut(&f.column) {
                    if let Some(subs) = values.get_mut(&key) {
                        subs.retain(|s| s.id != sub.id);
                        if subs.is_empty() {
                            values.remove(&key);
                        }
                    }
                    if values.is_empty() {
                        self.eq.remove(&f.column);
                    }
                }
            }
            None => {
                self.rest.remove(&by_conn_key(sub));
            }
        }
    }
}

/// One table's subscriptions: per event, plus the owner route when there is one.
#[derive(Debug, Default)]
struct TableIndex {
    events: [EventIndex; 4],
    route: Option<OwnerRoute>,
    /// The subscriptions of this table, for re-indexing when the route changes.
    subs: HashSet<Arc<str>>,
}

/// The matches of one change, sorted by connection so a connection's subscriptions are
/// adjacent.
pub type Matches = Vec<Arc<Subscription>>;

/// Every table subscription of this instance, indexed.
#[derive(Debug, Default)]
pub struct Index {
    /// By connection (`ConnShared::seq`).
    conn_subs: HashMap<u64, Vec<Arc<str>>>,
    subs: HashMap<Arc<str>, Arc<Subscription>>,
    /// Where each subscription is indexed (its slot depends on the route and its context).
    slots: HashMap<Arc<str>, Slot>,
    /// Schema → table → index: looked up by `&str` on every change, without allocating.
    tables: HashMap<Arc<str>, HashMap<Arc<str>, TableIndex>>,
}

impl Index {
    /// The slot of a subscription under `route`, from its connection's current context.
    fn slot_for(sub: &Subscription, route: Option<&OwnerRoute>) -> Slot {
        let Some(route) = route else {
            return Slot::Unrouted;
        };
        let ctx = sub.conn.context();
        if !route.routes(&ctx) {
            return Slot::Unrouted;
        }
        OwnerIndex::context_owner(&ctx).map_or(Slot::Ownerless, Slot::Owner)
    }

    /// A table's index, if it has one.
    fn table(&self, schema: &str, table: &str) -> Option<&TableIndex> {
        self.tables.get(schema)?.get(table)
    }

    /// A table's index, created when new.
    fn table_mut(&mut self, schema: &Arc<str>, table: &Arc<str>) -> &mut TableIndex {
        self.tables
            .entry(schema.clone())
            .or_default()
            .entry(table.clone())
            .or_default()
    }

    /// Adds a subscription.
    pub fn add(&mut self, sub: Subscription) {
        self.add_shared(Arc::new(sub));
    }

    /// Adds a subscription already shared (re-indexing keeps the same `Arc`).
    fn add_shared(&mut self, sub: Arc<Subscription>) {
        let route = self
            .table(&sub.schema, &sub.table)
            .and_then(|t| t.route.clone());
        let slot = Self::slot_for(&sub, route.as_ref());
        let table = self.table_mut(&sub.schema, &sub.table);
        for event in sub.events.slots() {
            table.events[event].insert(&sub, slot);
        }
        table.subs.insert(sub.id.clone());
        self.conn_subs
            .entry(sub.conn.seq)
            .or_default()
            .push(sub.id.clone());
        self.slots.insert(sub.id.clone(), slot);
        self.subs.insert(sub.id.clone(), sub);
    }

    /// Unindexes one subscription (not from `conn_subs`: callers do).
    fn unindex(&mut self, id: &str) -> Option<Arc<Subscription>> {
        let sub = self.subs.remove(id)?;
        let slot = self.slots.remove(id).unwrap_or(Slot::Unrouted);
        if let Some(tables) = self.tables.get_mut(&sub.schema) {
            if let Some(table) = tables.get_mut(&sub.table) {
                for event in sub.events.slots() {
                    table.events[event].remove(&sub, slot);
                }
                table.subs.remove(&sub.id);
                if table.subs.is_empty() && table.route.is_none() {
                    tables.remove(&sub.table);
                }
            }
            if tables.is_empty() {
                self.tables.remove(&sub.schema);
            }
        }
        Some(sub)
    }

    /// Sets a table's owner route (from its RLS policies) and re-indexes its subscriptions
    /// when it changed.
    pub fn set_route(&mut self, schema: &str, table: &str, route: Option<OwnerRoute>) {
        let current = self.table(schema, table).and_then(|t| t.route.as_ref());
        if current == route.as_ref() {
            return;
        }
        let ids: Vec<Arc<str>> = self
            .table(schema, table)
            .map(|t| t.subs.iter().cloned().collect())
            .unwrap_or_default();
        let subs: Vec<Arc<Subscription>> = ids.iter().filter_map(|id| self.unindex(id)).collect();
        for sub in &subs {
            if let Some(list) = self.conn_subs.get_mut(&sub.conn.seq) {
                list.retain(|s| s != &sub.id);
            }
        }
        self.table_mut(&Arc::from(schema), &Arc::from(table)).route = route;
        for sub in subs {
            self.add_shared(sub);
        }
    }

    /// Tables with subscriptions or a route: (schema, table).
    pub fn tables(&self) -> Vec<(Arc<str>, Arc<str>)> {
        self.tables
            .iter()
            .flat_map(|(schema, tables)| tables.keys().map(|t| (schema.clone(), t.clone())))
            .collect()
    }

    /// Re-indexes a connection's subscriptions (its context changed).
    pub fn reindex_conn(&mut self, conn: u64) {
        let ids = self.conn_subs.remove(&conn).unwrap_or_default();
        let subs: Vec<Arc<Subscription>> = ids.iter().filter_map(|id| self.unindex(id)).collect();
        for sub in subs {
            self.add_shared(sub);
        }
    }

    /// Removes the connection's subscriptions matching `channel` and/or `id` (all of them
    /// with neither); returns the removed ids.
    pub fn remove(&mut self, conn: u64, channel: Option<&str>, id: Option<&str>) -> Vec<Arc<str>> {
        let ids: Vec<Arc<str>> = self
            .conn_subs
            .get(&conn)
            .map(|subs| {
                subs.iter()
                    .filter(|s| {
                        let sub = &self.subs[*s];
                        channel.is_none_or(|c| &*sub.channel == c) && id.is_none_or(|i| &***s == i)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for sub in &ids {
            self.unindex(sub);
        }
        if let Some(list) = self.conn_subs.get_mut(&conn) {
            list.retain(|s| !ids.contains(s));
            if list.is_empty() {
                self.conn_subs.remove(&conn);
            }
        }
        ids
    }

    /// The columns the filters of a table's subscriptions read (to recover unchanged TOAST
    /// values only when a filter needs them).
    pub fn filter_columns(&self, schema: &str, table: &str) -> Vec<String> {
        let Some(index) = self.table(schema, table) else {
            return Vec::new();
        };
        let mut out: Vec<String> = index
            .subs
            .iter()
            .filter_map(|id| self.subs.get(id)?.filter.as_ref())
            .map(|f| f.column.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The subscriptions matching a change, sorted by connection. `row` is the new row
    /// (insert, update) or the old one (delete); a TRUNCATE has none and matches every
    /// subscription of its event, whatever its filter (the matching rows are gone too).
    pub fn recipients(
        &self,
        schema: &str,
        table: &str,
        op: RowOp,
        row: Option<RowRef<'_>>,
    ) -> Matches {
        let Some(table_index) = self.table(schema, table) else {
            return Vec::new();
        };
        let index = &table_index.events[op as usize];
        let mut matched: Matches = Vec::new();
        if op == RowOp::Truncate {
            matched.extend(
                index
                    .eq
                    .values()
                    .flat_map(HashMap::values)
                    .flatten()
                    .cloned(),
            );
            matched.extend(index.rest.values().cloned());
            matched.extend(index.owners.values().flatten().cloned());
            matched.extend(index.ownerless.values().cloned());
            return sorted(matched);
        }
        if let Some(row) = row {
            for (column, values) in &index.eq {
                if let Some(value) = row.values.get(column).filter(|v| !v.is_null())
                    && let Some(subs) = values.get(&value_text(value))
                {
                    matched.extend(subs.iter().cloned());
                }
            }
        }
        // Filters PostgreSQL must decide stay candidates; the dispatcher asks it.
        let passes = |sub: &&Arc<Subscription>| match (&sub.filter, row) {
            (None, _) => true,
            (Some(f), Some(row)) => f.verdict(row) != FilterVerdict::NoMatch,
            (Some(_), None) => false,
        };
        if matched.is_empty() && table_index.route.is_none() {
            // The common fan-out (one table to every socket): already in connection order.
            matched.reserve(index.rest.len());
            matched.extend(index.rest.values().filter(passes).cloned());
            return matched;
        }
        matched.extend(index.rest.values().filter(passes).cloned());
        if let Some(route) = &table_index.route {
            let owner = row.map_or(RowOwner::Unknown, |r| route.index.row_owner(r.values));
            match owner {
                RowOwner::Owner(key) => {
                    if let Some(subs) = index.owners.get(&key) {
                        matched.extend(subs.iter().filter(passes).cloned());
                    }
                }
                RowOwner::Nobody => {}
                RowOwner::Unknown => {
                    matched.extend(index.owners.values().flatten().filter(passes).cloned());
                    matched.extend(index.ownerless.values().filter(passes).cloned());
                }
            }
        }
        sorted(matched)
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Number of subscriptions of one connection.
    pub fn count_of(&self, conn: u64) -> usize {
        self.conn_subs.get(&conn).map_or(0, Vec::len)
    }
}

/// Matches in connection order (a connection's subscriptions adjacent); most already are.
fn sorted(mut matches: Matches) -> Matches {
    if !matches.is_sorted_by_key(|sub| sub.conn.seq) {
        matches.sort_unstable_by_key(|sub| sub.conn.seq);
    }
    matches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::codec::native::NATIVE;
    use crate::realtime::connection::{ConnId, QueueLimits};
    use fluxbase_auth::AuthContext;
    use serde_json::{Value, json};
    use std::time::Duration;

    fn conn_as(seq: u64, ctx: AuthContext) -> Arc<ConnShared> {
        ConnShared::new(
            seq,
            ConnId::new("t", seq),
            "127.0.0.1".parse().unwrap(),
            ctx,
            &NATIVE,
            QueueLimits {
                capacity: 8,
                bytes: 1 << 20,
                threshold: 8,
                timeout: Duration::from_secs(1),
            },
        )
        .0
    }

    fn sub(id: &str, conn: &Arc<ConnShared>, event: &str, filter: Option<&str>) -> Subscription {
        Subscription {
            id: id.into(),
            conn: conn.clone(),
            channel: "c".into(),
            schema: "public".into(),
            table: "todos".into(),
            events: EventMask::parse(event).unwrap(),
            filter: filter.map(|f| Filter::parse(f).unwrap()),
            envelope: Arc::from(""),
        }
    }

    fn ids(index: &Index, op: RowOp, row: Value) -> Vec<String> {
        let row = row.as_object().unwrap().clone();
        let mut v: Vec<String> = index
            .recipients("public", "todos", op, Some(RowRef::plain(&row)))
            .into_iter()
            .map(|s| s.id.to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn index_routes_by_event_and_filter() {
        let conns: Vec<_> = (1..=4).map(|n| conn_as(n, AuthContext::anon())).collect();
        let mut index = Index::default();
        index.add(sub("all", &conns[0], "*", None));
        index.add(sub("eq42", &conns[1], "INSERT", Some("user_id=eq.42")));
        index.add(sub("gt", &conns[2], "*", Some("n=gt.10")));
        index.add(sub("del", &conns[3], "DELETE", None));
        let row = json!({"user_id": 42, "n": 5});
        assert_eq!(ids(&index, RowOp::Insert, row.clone()), ["all", "eq42"]);
        assert_eq!(ids(&index, RowOp::Delete, row.clone()), ["all", "del"]);
        // A TRUNCATE reaches every subscription of its event, filtered or not.
        let truncated: Vec<String> = index
            .recipients("public", "todos", RowOp::Truncate, None)
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        assert_eq!(truncated, ["all", "gt"]);
        assert!(
            index
                .recipients("public", "other", RowOp::Insert, None)
                .is_empty()
        );
        assert_eq!(index.remove(2, None, None).len(), 1);
        assert_eq!(ids(&index, RowOp::Insert, row), ["all"]);
        assert_eq!(index.len(), 3);
        assert_eq!(&*index.remove(1, Some("c"), None)[0], "all");
        assert_eq!(index.len(), 2);
        assert_eq!(index.count_of(1), 0);
    }

    /// The dispatcher groups a connection's matches by adjacency: whatever the order of
    /// subscribing, and whether they come from the unfiltered set (already in connection
    /// order) or also from equality buckets, matches come out in connection order.
    #[test]
    fn matches_come_in_connection_order() {
        let conns: Vec<_> = [3, 1, 2]
            .into_iter()
            .map(|n| conn_as(n, AuthContext::anon()))
            .collect();
        let mut index = Index::default();
        for (i, conn) in conns.iter().enumerate() {
            index.add(sub(&format!("all{i}"), conn, "*", None));
        }
        index.add(sub("eq-on-3", &conns[0], "INSERT", Some("user_id=eq.42")));
        index.add(sub("again-on-1", &conns[1], "*", None));
        let seqs = |index: &Index, row: Value| -> Vec<u64> {
            let row = row.as_object().unwrap().clone();
            index
                .recipients("public", "todos", RowOp::Insert, Some(RowRef::plain(&row)))
                .iter()
                .map(|s| s.conn.seq)
                .collect()
        };
        // Unfiltered only: the ordered set alone.
        assert_eq!(seqs(&index, json!({"user_id": 7})), [1, 1, 2, 3]);
        // An equality match first, then the unfiltered set: sorted again.
        assert_eq!(seqs(&index, json!({"user_id": 42})), [1, 1, 2, 3, 3]);
        // Removing one of a connection's subscriptions leaves the others.
        assert_eq!(index.remove(1, None, Some("again-on-1")).len(), 1);
        assert_eq!(seqs(&index, json!({"user_id": 7})), [1, 2, 3]);
    }

    #[test]
    fn owner_routing_reaches_only_the_owner_and_follows_context_changes() {
        use fluxbase_auth::Role;
        let user = |sub: &str| {
            AuthContext::from_claims(
                json!({"sub": sub, "role": "authenticated"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
        };
        let (a, b) = (
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a22",
        );
        let conn_a = conn_as(1, user(a));
        let conn_b = conn_as(2, user(b));
        let conn_s = conn_as(3, AuthContext::service_role());
        let mut index = Index::default();
        index.set_route(
            "public",
            "todos",
            Some(OwnerRoute {
                index: OwnerIndex::new("owner".into()),
                roles: vec![Role::Anon, Role::Authenticated],
            }),
        );
        index.add(sub("sa", &conn_a, "*", None));
        index.add(sub("sb", &conn_b, "*", None));
        index.add(sub("ss", &conn_s, "*", None));
        // The owner and the service role (not routed), nobody else.
        assert_eq!(
            ids(&index, RowOp::Insert, json!({"owner": a})),
            ["sa", "ss"]
        );
        assert_eq!(ids(&index, RowOp::Insert, json!({"owner": null})), ["ss"]);
        // Owner not in the row (unchanged TOAST): everyone, the decider decides.
        assert_eq!(ids(&index, RowOp::Insert, json!({})), ["sa", "sb", "ss"]);
        // A's token now says b: re-indexed under b.
        conn_a.set_context(user(b));
        index.reindex_conn(1);
        assert_eq!(
            ids(&index, RowOp::Insert, json!({"owner": b})),
            ["sa", "sb", "ss"]
        );
        // Route dropped (policy changed): everyone is a candidate again.
        index.set_route("public", "todos", None);
        assert_eq!(
            ids(&index, RowOp::Insert, json!({"owner": a})),
            ["sa", "sb", "ss"]
        );
    }
}
