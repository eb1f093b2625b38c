//! Connections, subscriptions and channels, with the filter index: (schema, table) → event
//! → equality-filter column → value → subscriptions, so matching a change costs the number
//! of matching subscriptions plus those with non-equality filters, not all of them.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use super::connection::{ConnId, ConnShared};
use super::filter::{Filter, FilterVerdict, value_text};
use super::rls::{OwnerIndex, OwnerRoute, RowOwner, RowRef};

/// Which row events a subscription wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMask {
    /// INSERT
    pub insert: bool,
    /// UPDATE
    pub update: bool,
    /// DELETE
    pub delete: bool,
}

impl EventMask {
    /// Parses `INSERT`, `UPDATE`, `DELETE` or `*` (case-insensitive).
    pub fn parse(text: &str) -> Option<EventMask> {
        let all = EventMask {
            insert: true,
            update: true,
            delete: true,
        };
        let none = EventMask {
            insert: false,
            update: false,
            delete: false,
        };
        match text.to_ascii_uppercase().as_str() {
            "*" => Some(all),
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
            _ => None,
        }
    }

    fn slots(self) -> impl Iterator<Item = usize> {
        [self.insert, self.update, self.delete]
            .into_iter()
            .enumerate()
            .filter_map(|(i, on)| on.then_some(i))
    }
}

/// Index slot of a row operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// INSERT
    Insert = 0,
    /// UPDATE
    Update = 1,
    /// DELETE
    Delete = 2,
}

/// One table subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Server-assigned id.
    pub id: Arc<str>,
    /// Owning connection.
    pub conn: ConnId,
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
    /// The start of this subscription's `postgres_changes` frame, up to the payload:
    /// built once, so a change costs one copy per recipient.
    pub envelope: Arc<str>,
}

impl Subscription {
    /// The envelope prefix for `channel` and subscription `id`.
    pub fn envelope_for(channel: &str, id: &str) -> Arc<str> {
        Arc::from(super::protocol::postgres_changes_prefix(channel, &[id]))
    }
}

/// Subscriptions of one (table, event).
#[derive(Debug, Default)]
struct EventIndex {
    /// Equality filters: column → value text → subscription ids.
    eq: HashMap<String, HashMap<String, Vec<Arc<str>>>>,
    /// No filter, or a filter other than `eq`: checked one by one. A set: removing one of
    /// many thousands must not cost a scan.
    rest: HashSet<Arc<str>>,
    /// Owner-routed subscriptions (the table's policies are owner-only and the
    /// subscriber's role is subject to them), by the subscriber's `auth.uid()`.
    owners: HashMap<u128, Vec<Arc<str>>>,
    /// Owner-routed subscriptions whose context owns no row (no `sub`): they only see rows
    /// whose owner cannot be read from the change.
    ownerless: Vec<Arc<str>>,
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

/// One table's subscriptions: per event, plus the owner route when there is one.
#[derive(Debug, Default)]
struct TableIndex {
    events: [EventIndex; 3],
    route: Option<OwnerRoute>,
    /// The subscriptions of this table, for re-indexing when the route changes.
    subs: HashSet<Arc<str>>,
}

impl EventIndex {
    fn insert(&mut self, sub: &Subscription, slot: Slot) {
        match slot {
            Slot::Owner(key) => return self.owners.entry(key).or_default().push(sub.id.clone()),
            Slot::Ownerless => return self.ownerless.push(sub.id.clone()),
            Slot::Unrouted => {}
        }
        match sub.filter.as_ref().and_then(|f| f.eq_key().map(|k| (f, k))) {
            Some((f, key)) => self
                .eq
                .entry(f.column.clone())
                .or_default()
                .entry(key.to_string())
                .or_default()
                .push(sub.id.clone()),
            None => {
                self.rest.insert(sub.id.clone());
            }
        }
    }

    fn remove(&mut self, sub: &Subscription, slot: Slot) {
        match slot {
            Slot::Owner(key) => {
                if let Some(ids) = self.owners.get_mut(&key) {
                    ids.retain(|id| id != &sub.id);
                    if ids.is_empty() {
                        self.owners.remove(&key);
                    }
                }
                return;
            }
            Slot::Ownerless => return self.ownerless.retain(|id| id != &sub.id),
            Slot::Unrouted => {}
        }
        match sub.filter.as_ref().and_then(|f| f.eq_key().map(|k| (f, k))) {
            Some((f, key)) => {
                if let Some(values) = self.eq.get_mut(&f.column) {
                    if let Some(ids) = values.get_mut(&key) {
                        ids.retain(|id| id != &sub.id);
                        if ids.is_empty() {
                            values.remove(&key);
                        }
                    }
                    if values.is_empty() {
                        self.eq.remove(&f.column);
                    }
                }
            }
            None => {
                self.rest.remove(&sub.id);
            }
        }
    }
}

/// A broadcast/presence channel.
#[derive(Debug, Default)]
pub struct Channel {
    /// Member connections.
    pub members: HashSet<ConnId>,
    /// Presence state per tracking connection.
    pub presence: HashMap<ConnId, Value>,
}

/// Limits checked atomically when a connection registers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `realtime.max_connections`
    pub max_connections: usize,
    /// `realtime.max_connections_per_user`
    pub per_user: usize,
    /// `realtime.max_connections_per_ip`
    pub per_ip: usize,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// Instance-wide.
    Total(usize),
    /// Per user.
    User(usize),
    /// Per IP.
    Ip(usize),
}

/// The matches of one change: (connection, subscription) pairs sorted by connection id, so
/// a connection's subscriptions are adjacent.
pub type Matches = Vec<(Arc<ConnShared>, Arc<Subscription>)>;

/// Everything the hub knows about sockets.
#[derive(Debug, Default)]
pub struct Registry {
    conns: HashMap<ConnId, Arc<ConnShared>>,
    conn_user: HashMap<ConnId, String>,
    conn_subs: HashMap<ConnId, Vec<Arc<str>>>,
    subs: HashMap<Arc<str>, Arc<Subscription>>,
    /// Where each subscription is indexed (its slot depends on the route and its context).
    slots: HashMap<Arc<str>, Slot>,
    tables: HashMap<(Arc<str>, Arc<str>), TableIndex>,
    users: HashMap<String, HashSet<ConnId>>,
    ips: HashMap<IpAddr, usize>,
    channels: HashMap<String, Channel>,
}

impl Registry {
    /// Adds a connection if the limits allow.
    pub fn add_conn(
        &mut self,
        conn: Arc<ConnShared>,
        user: Option<String>,
        limits: Limits,
    ) -> Result<(), LimitHit> {
        if self.conns.len() >= limits.max_connections {
            return Err(LimitHit::Total(limits.max_connections));
        }
        if let Some(user) = &user
            && self.users.get(user).map_or(0, HashSet::len) >= limits.per_user
        {
            return Err(LimitHit::User(limits.per_user));
        }
        if self.ips.get(&conn.ip).copied().unwrap_or(0) >= limits.per_ip {
            return Err(LimitHit::Ip(limits.per_ip));
        }
        *self.ips.entry(conn.ip).or_default() += 1;
        if let Some(user) = user {
            self.users.entry(user.clone()).or_default().insert(conn.id);
            self.conn_user.insert(conn.id, user);
        }
        self.conns.insert(conn.id, conn);
        Ok(())
    }

    /// Removes a connection with its subscriptions; returns the channels it was in (for
    /// presence leaves).
    pub fn remove_conn(&mut self, id: ConnId) -> Vec<(String, Option<Value>)> {
        for sub in self.conn_subs.remove(&id).unwrap_or_default() {
            self.remove_sub_by_id(&sub);
        }
        if let Some(user) = self.conn_user.remove(&id)
            && let Some(set) = self.users.get_mut(&user)
        {
            set.remove(&id);
            if set.is_empty() {
                self.users.remove(&user);
            }
        }
        if let Some(conn) = self.conns.remove(&id)
            && let Some(n) = self.ips.get_mut(&conn.ip)
        {
            *n -= 1;
            if *n == 0 {
                self.ips.remove(&conn.ip);
            }
        }
        let mut left = Vec::new();
        self.channels.retain(|name, channel| {
            if channel.members.remove(&id) {
                left.push((name.clone(), channel.presence.remove(&id)));
            }
            !channel.members.is_empty()
        });
        left
    }

    /// Moves a connection to another user (after `access_token` with another `sub`).
    pub fn set_user(&mut self, id: ConnId, user: Option<String>) {
        if let Some(old) = self.conn_user.remove(&id)
            && let Some(set) = self.users.get_mut(&old)
        {
            set.remove(&id);
            if set.is_empty() {
                self.users.remove(&old);
            }
        }
        if let Some(user) = user {
            self.users.entry(user.clone()).or_default().insert(id);
            self.conn_user.insert(id, user);
        }
    }

    /// The slot of a subscription under `route`, from its connection's current context.
    fn slot_for(&self, sub: &Subscription, route: Option<&OwnerRoute>) -> Slot {
        let (Some(route), Some(conn)) = (route, self.conns.get(&sub.conn)) else {
            return Slot::Unrouted;
        };
        let ctx = conn.context();
        if !route.routes(&ctx) {
            return Slot::Unrouted;
        }
        OwnerIndex::context_owner(&ctx).map_or(Slot::Ownerless, Slot::Owner)
    }

    /// Adds a subscription.
    pub fn add_sub(&mut self, sub: Subscription) {
        let key = (sub.schema.clone(), sub.table.clone());
        let route = self.tables.get(&key).and_then(|t| t.route.clone());
        let slot = self.slot_for(&sub, route.as_ref());
        let table = self.tables.entry(key).or_default();
        for event in sub.events.slots() {
            table.events[event].insert(&sub, slot);
        }
        table.subs.insert(sub.id.clone());
        self.conn_subs
            .entry(sub.conn)
            .or_default()
            .push(sub.id.clone());
        self.slots.insert(sub.id.clone(), slot);
        self.subs.insert(sub.id.clone(), Arc::new(sub));
    }

    fn remove_sub_by_id(&mut self, id: &str) -> Option<Subscription> {
        let sub = Arc::unwrap_or_clone(self.subs.remove(id)?);
        let slot = self.slots.remove(id).unwrap_or(Slot::Unrouted);
        let key = (sub.schema.clone(), sub.table.clone());
        if let Some(table) = self.tables.get_mut(&key) {
            for event in sub.events.slots() {
                table.events[event].remove(&sub, slot);
            }
            table.subs.remove(&sub.id);
            if table.subs.is_empty() && table.route.is_none() {
                self.tables.remove(&key);
            }
        }
        Some(sub)
    }

    /// Sets a table's owner route (from its RLS policies) and re-indexes its subscriptions
    /// when it changed.
    pub fn set_route(&mut self, schema: &str, table: &str, route: Option<OwnerRoute>) {
        let key: (Arc<str>, Arc<str>) = (Arc::from(schema), Arc::from(table));
        let current = self.tables.get(&key).and_then(|t| t.route.clone());
        if current == route {
            return;
        }
        let ids: Vec<Arc<str>> = self
            .tables
            .get(&key)
            .map(|t| t.subs.iter().cloned().collect())
            .unwrap_or_default();
        let subs: Vec<Subscription> = ids
            .iter()
            .filter_map(|id| self.remove_sub_by_id(id))
            .collect();
        for sub in &subs {
            if let Some(list) = self.conn_subs.get_mut(&sub.conn) {
                list.retain(|s| s != &sub.id);
            }
        }
        self.tables.entry(key).or_default().route = route;
        for sub in subs {
            self.add_sub(sub);
        }
    }

    /// Tables with subscriptions or a route: (schema, table).
    pub fn tables(&self) -> Vec<(Arc<str>, Arc<str>)> {
        self.tables.keys().cloned().collect()
    }

    /// Re-indexes a connection's subscriptions (its context changed).
    pub fn reindex_conn(&mut self, conn: ConnId) {
        let ids = self.conn_subs.remove(&conn).unwrap_or_default();
        let subs: Vec<Subscription> = ids
            .iter()
            .filter_map(|id| self.remove_sub_by_id(id))
            .collect();
        for sub in subs {
            self.add_sub(sub);
        }
    }

    /// Removes the connection's subscriptions matching `channel` and/or `id`; returns the
    /// removed ids.
    pub fn remove_subs(
        &mut self,
        conn: ConnId,
        channel: Option<&str>,
        id: Option<&str>,
    ) -> Vec<String> {
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
            self.remove_sub_by_id(sub);
        }
        if let Some(list) = self.conn_subs.get_mut(&conn) {
            list.retain(|s| !ids.contains(s));
        }
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// The columns the filters of a table's subscriptions read (to recover unchanged TOAST
    /// values only when a filter needs them).
    pub fn filter_columns(&self, schema: &str, table: &str) -> Vec<String> {
        let Some(index) = self.tables.get(&(Arc::from(schema), Arc::from(table))) else {
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

    /// The connections whose subscriptions match a row change, grouped by connection and
    /// channel. `row` is the new row (insert, update) or the old one (delete).
    pub fn recipients(
        &self,
        schema: &str,
        table: &str,
        op: RowOp,
        row: Option<RowRef<'_>>,
    ) -> Matches {
        let Some(table_index) = self.tables.get(&(Arc::from(schema), Arc::from(table))) else {
            return Vec::new();
        };
        let index = &table_index.events[op as usize];
        let mut matched: Vec<&Arc<str>> = Vec::new();
        if let Some(row) = row {
            for (column, values) in &index.eq {
                if let Some(value) = row.values.get(column).filter(|v| !v.is_null())
                    && let Some(ids) = values.get(&value_text(value))
                {
                    matched.extend(ids);
                }
            }
        }
        // Filters PostgreSQL must decide stay candidates; the dispatcher asks it.
        let passes = |id: &Arc<str>| match (&self.subs[id].filter, row) {
            (None, _) => true,
            (Some(f), Some(row)) => f.verdict(row) != FilterVerdict::NoMatch,
            (Some(_), None) => false,
        };
        matched.extend(index.rest.iter().filter(|id| passes(id)));
        if let Some(route) = &table_index.route {
            let owner = row.map_or(RowOwner::Unknown, |r| route.index.row_owner(r.values));
            match owner {
                RowOwner::Owner(key) => {
                    if let Some(ids) = index.owners.get(&key) {
                        matched.extend(ids.iter().filter(|id| passes(id)));
                    }
                }
                RowOwner::Nobody => {}
                RowOwner::Unknown => {
                    matched.extend(index.owners.values().flatten().filter(|id| passes(id)));
                    matched.extend(index.ownerless.iter().filter(|id| passes(id)));
                }
            }
        }
        let mut out: Matches = Vec::with_capacity(matched.len());
        for id in matched {
            let sub = &self.subs[id];
            if let Some(conn) = self.conns.get(&sub.conn) {
                out.push((conn.clone(), sub.clone()));
            }
        }
        out.sort_unstable_by_key(|(conn, _)| conn.id);
        out
    }

    /// Connections of a user (`sub`).
    pub fn user_conns(&self, user: &str) -> Vec<Arc<ConnShared>> {
        self.users
            .get(user)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.conns.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every connection.
    pub fn all_conns(&self) -> Vec<Arc<ConnShared>> {
        self.conns.values().cloned().collect()
    }

    /// Number of connections.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of subscriptions.
    pub fn sub_count(&self) -> usize {
        self.subs.len()
    }

    /// Number of subscriptions of one connection.
    pub fn subs_of(&self, conn: ConnId) -> usize {
        self.conn_subs.get(&conn).map_or(0, Vec::len)
    }

    /// Joins a channel; returns whether the connection was new to it.
    pub fn join(&mut self, channel: &str, conn: ConnId) -> bool {
        self.channels
            .entry(channel.to_string())
            .or_default()
            .members
            .insert(conn)
    }

    /// A channel, if it has members.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.get(name)
    }

    /// Sets or clears a connection's presence in a channel; returns the previous state.
    pub fn set_presence(
        &mut self,
        channel: &str,
        conn: ConnId,
        state: Option<Value>,
    ) -> Option<Value> {
        let ch = self.channels.entry(channel.to_string()).or_default();
        ch.members.insert(conn);
        match state {
            Some(s) => ch.presence.insert(conn, s),
            None => ch.presence.remove(&conn),
        }
    }

    /// The live connections of a channel.
    pub fn channel_conns(&self, name: &str) -> Vec<Arc<ConnShared>> {
        self.channels
            .get(name)
            .map(|c| {
                c.members
                    .iter()
                    .filter_map(|id| self.conns.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluxbase_auth::AuthContext;
    use serde_json::json;

    fn conn(id: ConnId) -> Arc<ConnShared> {
        ConnShared::new(id, "127.0.0.1".parse().unwrap(), AuthContext::anon(), 8).0
    }

    fn sub(id: &str, conn: ConnId, event: &str, filter: Option<&str>) -> Subscription {
        Subscription {
            id: id.into(),
            conn,
            channel: "c".into(),
            schema: "public".into(),
            table: "todos".into(),
            events: EventMask::parse(event).unwrap(),
            filter: filter.map(|f| Filter::parse(f).unwrap()),
            envelope: Subscription::envelope_for("c", id),
        }
    }

    const NO_LIMITS: Limits = Limits {
        max_connections: 100,
        per_user: 100,
        per_ip: 100,
    };

    #[test]
    fn index_routes_by_event_and_filter() {
        let mut reg = Registry::default();
        for id in 1..=4 {
            reg.add_conn(conn(id), None, NO_LIMITS).unwrap();
        }
        reg.add_sub(sub("all", 1, "*", None));
        reg.add_sub(sub("eq42", 2, "INSERT", Some("user_id=eq.42")));
        reg.add_sub(sub("gt", 3, "*", Some("n=gt.10")));
        reg.add_sub(sub("del", 4, "DELETE", None));
        let row = json!({"user_id": 42, "n": 5}).as_object().unwrap().clone();
        let mut got: Vec<String> = reg
            .recipients("public", "todos", RowOp::Insert, Some(RowRef::plain(&row)))
            .into_iter()
            .map(|(_, s)| s.id.to_string())
            .collect();
        got.sort();
        assert_eq!(got, ["all", "eq42"]);
        let got: Vec<ConnId> = reg
            .recipients("public", "todos", RowOp::Delete, Some(RowRef::plain(&row)))
            .iter()
            .map(|(c, _)| c.id)
            .collect();
        assert_eq!(got.len(), 2);
        assert!(
            reg.recipients("public", "other", RowOp::Insert, Some(RowRef::plain(&row)))
                .is_empty()
        );

        reg.remove_conn(2);
        let n = reg
            .recipients("public", "todos", RowOp::Insert, Some(RowRef::plain(&row)))
            .len();
        assert_eq!(n, 1);
        assert_eq!(reg.sub_count(), 3);
        assert_eq!(reg.remove_subs(1, Some("c"), None), ["all"]);
        assert_eq!(reg.sub_count(), 2);
    }

    #[test]
    fn owner_routing_reaches_only_the_owner_and_follows_context_changes() {
        use crate::realtime::rls::{OwnerIndex, OwnerRoute};
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
        let mut reg = Registry::default();
        let conn_a = ConnShared::new(1, "127.0.0.1".parse().unwrap(), user(a), 8).0;
        let conn_b = ConnShared::new(2, "127.0.0.1".parse().unwrap(), user(b), 8).0;
        let conn_s = ConnShared::new(
            3,
            "127.0.0.1".parse().unwrap(),
            AuthContext::service_role(),
            8,
        )
        .0;
        for c in [conn_a.clone(), conn_b, conn_s] {
            reg.add_conn(c, None, NO_LIMITS).unwrap();
        }
        reg.set_route(
            "public",
            "todos",
            Some(OwnerRoute {
                index: OwnerIndex::new("owner".into()),
                roles: vec![Role::Anon, Role::Authenticated],
            }),
        );
        for (id, conn) in [("sa", 1), ("sb", 2), ("ss", 3)] {
            reg.add_sub(sub(id, conn, "*", None));
        }
        let ids = |reg: &Registry, row: Value| {
            let row = row.as_object().unwrap().clone();
            let mut v: Vec<String> = reg
                .recipients("public", "todos", RowOp::Insert, Some(RowRef::plain(&row)))
                .into_iter()
                .map(|(_, s)| s.id.to_string())
                .collect();
            v.sort();
            v
        };
        // The owner and the service role (not routed), nobody else.
        assert_eq!(ids(&reg, json!({"owner": a})), ["sa", "ss"]);
        assert_eq!(ids(&reg, json!({"owner": null})), ["ss"]);
        // Owner not in the row (unchanged TOAST): everyone, the decider decides.
        assert_eq!(ids(&reg, json!({})), ["sa", "sb", "ss"]);
        // A's token now says b: re-indexed under b.
        conn_a.set_context(user(b));
        reg.reindex_conn(1);
        assert_eq!(ids(&reg, json!({"owner": b})), ["sa", "sb", "ss"]);
        // Route dropped (policy changed): everyone is a candidate again.
        reg.set_route("public", "todos", None);
        assert_eq!(ids(&reg, json!({"owner": a})), ["sa", "sb", "ss"]);
    }

    #[test]
    fn limits_are_enforced() {
        let mut reg = Registry::default();
        let limits = Limits {
            max_connections: 3,
            per_user: 1,
            per_ip: 2,
        };
        reg.add_conn(conn(1), Some("u".into()), limits).unwrap();
        assert_eq!(
            reg.add_conn(conn(2), Some("u".into()), limits),
            Err(LimitHit::User(1))
        );
        reg.add_conn(conn(3), None, limits).unwrap();
        assert_eq!(reg.add_conn(conn(4), None, limits), Err(LimitHit::Ip(2)));
        reg.remove_conn(1);
        reg.add_conn(conn(5), Some("u".into()), limits).unwrap();
    }
}
