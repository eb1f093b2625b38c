//! The realtime engine: replication transactions fanned out to WebSocket subscribers, with
//! Row-Level Security decided once per distinct auth context.
//!
//! Actors, as tasks with mailboxes: the **dispatcher** (one task) takes transactions in
//! commit order, matches them against the registry's filter index, asks the RLS gate once
//! per distinct context, serializes each change once and `try_send`s it into each
//! recipient's bounded queue, then acknowledges the transaction to replication; each
//! **socket task** (in `api`) drains its connection's queue and handles its client frames.
//! Fan-out never awaits a socket; a client that cannot keep up is closed with 4008.

pub mod catalog;
pub mod connection;
mod dispatch;
pub mod filter;
mod gate;
pub mod protocol;
pub mod registry;
pub mod rls;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytestring::ByteString;
use deadpool_postgres::Pool;
use fluxbase_auth::{AuthContext, JwtKeys};
use fluxbase_migrations::ErrorCode;
use fluxbase_replication::{ReplicationConfig, ReplicationHandle, ReplicationStatus};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use connection::{CloseReason, ConnId, ConnShared, Outbound, close};
use registry::{EventMask, LimitHit, Limits, Registry, Subscription};

/// Settings of the engine (the `realtime.*` keys).
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// `realtime.max_connections`
    pub max_connections: usize,
    /// `realtime.max_connections_per_user`
    pub max_connections_per_user: usize,
    /// `realtime.max_connections_per_ip`
    pub max_connections_per_ip: usize,
    /// `realtime.client_message_queue_size`
    pub queue_size: usize,
    /// `realtime.slow_client_threshold`
    pub slow_client_threshold: usize,
    /// `realtime.slow_client_timeout`
    pub slow_client_timeout: Duration,
    /// `realtime.rls_cache_size`
    pub rls_cache_size: usize,
    /// `realtime.rls_cache_ttl`
    pub rls_cache_ttl: Duration,
    /// `realtime.rls_fallback_connections`: the engine's own pool for the SQL fallback,
    /// TOAST reads and the role watcher, so fan-out never waits for the main pool.
    pub rls_fallback_connections: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions_per_connection: usize,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        RealtimeSettings {
            max_connections: 10_000,
            max_connections_per_user: 100,
            max_connections_per_ip: 1_000,
            queue_size: 1024,
            slow_client_threshold: 100,
            slow_client_timeout: Duration::from_secs(30),
            rls_cache_size: 100_000,
            rls_cache_ttl: Duration::from_secs(30),
            rls_fallback_connections: rls::conn::DEFAULT_FALLBACK_CONNECTIONS,
            max_subscriptions_per_connection: 100,
        }
    }
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

struct Inner {
    settings: RealtimeSettings,
    keys: JwtKeys,
    pool: Pool,
    /// A std lock: held only for index lookups and updates, never across `.await`.
    registry: RwLock<Registry>,
    catalog: catalog::Catalog,
    gate: gate::Gate,
    next_id: AtomicU64,
    replication: Mutex<Option<ReplicationHandle>>,
    shutdown: watch::Sender<bool>,
}

/// Snapshot for `/api/v1/monitoring/metrics` `.realtime`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RealtimeStats {
    /// Open sockets.
    pub connections: usize,
    /// Table subscriptions.
    pub subscriptions: usize,
    /// RLS decision cache entries.
    pub rls_cache_entries: usize,
    /// Replication status, when running.
    pub replication: Option<ReplicationStatus>,
}

impl Engine {
    /// An engine over `pool` (catalog reads at subscribe time), not yet consuming
    /// replication. RLS decisions use a pool of their own, opened from `pg`.
    pub fn new(
        settings: RealtimeSettings,
        keys: JwtKeys,
        pg: tokio_postgres::Config,
        pool: Pool,
        publication: &str,
        schemas: Vec<String>,
    ) -> Engine {
        let gate = gate::Gate::new(
            pg,
            settings.rls_cache_size,
            settings.rls_cache_ttl,
            settings.rls_fallback_connections,
        );
        Engine {
            inner: Arc::new(Inner {
                keys,
                pool,
                registry: RwLock::default(),
                catalog: catalog::Catalog::new(publication, schemas),
                gate,
                next_id: AtomicU64::new(1),
                replication: Mutex::new(None),
                shutdown: watch::channel(false).0,
                settings,
            }),
        }
    }

    /// Starts replication and the dispatcher, the slow-client sweep and the DDL watcher, on
    /// the current tokio runtime, and waits (up to `ready_timeout`) for the stream to be
    /// live, so subscriptions made right after start see the publication. Returns whether
    /// it became live in time; if not it keeps retrying in the background.
    pub async fn start(
        &self,
        replication: ReplicationConfig,
        ready_timeout: Duration,
    ) -> Result<bool, fluxbase_replication::ReplicationError> {
        let (handle, transactions) = fluxbase_replication::start(replication)?;
        *self.inner.replication.lock().expect("replication lock") = Some(handle.clone());
        let mut status = handle.watch_status();
        tokio::spawn(dispatch::run(
            self.clone(),
            transactions,
            handle,
            self.inner.shutdown.subscribe(),
        ));
        tokio::spawn(dispatch::sweep(
            self.clone(),
            self.inner.shutdown.subscribe(),
        ));
        tokio::spawn(dispatch::watch_ddl(
            self.clone(),
            self.inner.shutdown.subscribe(),
        ));
        let live = tokio::time::timeout(ready_timeout, status.wait_for(|s| s.connected)).await;
        Ok(matches!(live, Ok(Ok(_))))
    }

    /// Reconnects replication now (`POST /api/v1/admin/realtime/restart`); policies and the
    /// catalog are re-read too.
    pub async fn restart(&self) -> bool {
        self.reload().await;
        match self
            .inner
            .replication
            .lock()
            .expect("replication lock")
            .as_ref()
        {
            Some(handle) => {
                handle.restart();
                true
            }
            None => false,
        }
    }

    /// Re-reads the catalog and RLS policies (on DDL), and re-routes subscriptions of
    /// tables whose policies became (or stopped being) owner-only.
    pub async fn reload(&self) {
        self.inner.catalog.invalidate();
        self.inner.gate.reload().await;
        let tables = self.inner.registry.read().expect("registry lock").tables();
        let Ok(client) = self.inner.pool.get().await else {
            return;
        };
        for (schema, table) in tables {
            let route = match self.inner.catalog.lookup(&client, &schema, &table).await {
                Ok(info) => self.inner.gate.owner_route(info.relid).await,
                Err(_) => None,
            };
            self.inner
                .registry
                .write()
                .expect("registry lock")
                .set_route(&schema, &table, route);
        }
    }

    /// Closes every socket (1001) and stops replication.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let conns = self
            .inner
            .registry
            .read()
            .expect("registry lock")
            .all_conns();
        for conn in conns {
            conn.request_close(CloseReason {
                code: close::GOING_AWAY,
                reason: "server shutting down".into(),
                label: "shutdown",
            });
        }
        let handle = self
            .inner
            .replication
            .lock()
            .expect("replication lock")
            .take();
        if let Some(handle) = handle {
            handle.shutdown().await;
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RealtimeSettings {
        &self.inner.settings
    }

    /// Verifies a token into a context (`None` → anon).
    pub fn authenticate(
        &self,
        token: Option<&str>,
    ) -> Result<AuthContext, fluxbase_auth::JwtError> {
        match token {
            None => Ok(AuthContext::anon()),
            Some(t) => self.inner.keys.context(t),
        }
    }

    /// Registers a socket, or refuses it with the close reason naming the limit.
    pub fn connect(
        &self,
        ip: IpAddr,
        context: AuthContext,
    ) -> Result<(Arc<ConnShared>, mpsc::Receiver<Outbound>), CloseReason> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let user = context.uid().map(str::to_string);
        let (conn, rx) = ConnShared::new(id, ip, context, self.inner.settings.queue_size);
        let s = &self.inner.settings;
        let limits = Limits {
            max_connections: s.max_connections,
            per_user: s.max_connections_per_user,
            per_ip: s.max_connections_per_ip,
        };
        let result = self
            .inner
            .registry
            .write()
            .expect("registry lock")
            .add_conn(conn.clone(), user, limits);
        if let Err(hit) = result {
            let reason = match hit {
                LimitHit::Total(n) => {
                    format!("too many connections (realtime.max_connections = {n})")
                }
                LimitHit::User(n) => format!(
                    "too many connections for this user (realtime.max_connections_per_user = {n})"
                ),
                LimitHit::Ip(n) => format!(
                    "too many connections from this address (realtime.max_connections_per_ip = {n})"
                ),
            };
            metrics::counter!("fluxbase_realtime_disconnects_total", "reason" => "limit")
                .increment(1);
            return Err(CloseReason {
                code: close::LIMIT,
                reason,
                label: "limit",
            });
        }
        self.publish_gauges();
        Ok((conn, rx))
    }

    /// Unregisters a socket; presence leaves go to the channels it was in.
    pub fn disconnect(&self, conn: &ConnShared, label: &'static str) {
        let left = self
            .inner
            .registry
            .write()
            .expect("registry lock")
            .remove_conn(conn.id);
        metrics::counter!("fluxbase_realtime_disconnects_total", "reason" => label).increment(1);
        for (channel, state) in left {
            if let Some(state) = state {
                self.presence_diff(&channel, conn.id, None, Some(state));
            }
        }
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        let reg = self.inner.registry.read().expect("registry lock");
        metrics::gauge!("fluxbase_realtime_connections").set(reg.conn_count() as f64);
        metrics::gauge!("fluxbase_realtime_subscriptions").set(reg.sub_count() as f64);
    }

    /// Counters for monitoring.
    pub fn stats(&self) -> RealtimeStats {
        let reg = self.inner.registry.read().expect("registry lock");
        RealtimeStats {
            connections: reg.conn_count(),
            subscriptions: reg.sub_count(),
            rls_cache_entries: self.inner.gate.cache_len(),
            replication: self
                .inner
                .replication
                .lock()
                .expect("replication lock")
                .as_ref()
                .map(ReplicationHandle::status),
        }
    }

    /// Handles one client text frame; returns the frames to send back at once.
    pub async fn handle_text(&self, conn: &Arc<ConnShared>, text: &str) -> Vec<ByteString> {
        let frame = match protocol::decode(text) {
            Ok(frame) => frame,
            Err(err) => return vec![protocol::error(err.code, &err.message, None)],
        };
        match frame {
            protocol::ClientFrame::Heartbeat => vec![protocol::heartbeat()],
            protocol::ClientFrame::Subscribe { channel, config } => {
                vec![self.subscribe(conn, &channel, config).await]
            }
            protocol::ClientFrame::Unsubscribe {
                channel,
                subscription_id,
            } => {
                let removed = self
                    .inner
                    .registry
                    .write()
                    .expect("registry lock")
                    .remove_subs(conn.id, channel.as_deref(), subscription_id.as_deref());
                self.publish_gauges();
                vec![protocol::encode(&json!({
                    "type": "ack", "subscribed": false, "channel": channel,
                    "subscription_ids": removed,
                }))]
            }
            protocol::ClientFrame::AccessToken { token } => match self.inner.keys.context(&token) {
                Ok(context) => {
                    let user = context.uid().map(str::to_string);
                    conn.set_context(context);
                    let mut registry = self.inner.registry.write().expect("registry lock");
                    registry.set_user(conn.id, user);
                    // Owner routing follows the new `sub`.
                    registry.reindex_conn(conn.id);
                    drop(registry);
                    vec![protocol::system("access token updated")]
                }
                Err(err) => vec![protocol::error(err.code().as_str(), &err.to_string(), None)],
            },
            protocol::ClientFrame::Broadcast { channel, payload } => {
                self.inner
                    .registry
                    .write()
                    .expect("registry lock")
                    .join(&channel, conn.id);
                let frame = protocol::encode(
                    &json!({"type": "broadcast", "channel": channel, "payload": payload}),
                );
                self.send_to_channel(&channel, &frame, Some(conn.id));
                Vec::new()
            }
            protocol::ClientFrame::Presence { channel, payload } => {
                let replies = self.join_channel(conn, &channel);
                let state =
                    (payload.event == "track").then(|| payload.state.unwrap_or(Value::Null));
                let previous = self
                    .inner
                    .registry
                    .write()
                    .expect("registry lock")
                    .set_presence(&channel, conn.id, state.clone());
                self.presence_diff(&channel, conn.id, state, previous);
                replies
            }
        }
    }

    /// Unsubscribes everything of a connection (its token expired).
    pub fn drop_subscriptions(&self, conn: &ConnShared) -> usize {
        let n = self
            .inner
            .registry
            .write()
            .expect("registry lock")
            .remove_subs(conn.id, None, None)
            .len();
        self.publish_gauges();
        n
    }

    /// Sends a server-side broadcast (`POST /api/v1/realtime/broadcast`); returns the number
    /// of sockets it was queued for.
    pub fn broadcast(&self, channel: &str, event: &str, data: Value) -> usize {
        let frame = protocol::encode(&json!({
            "type": "broadcast", "channel": channel,
            "payload": {"event": event, "data": data},
        }));
        self.send_to_channel(channel, &frame, None)
    }

    fn join_channel(&self, conn: &ConnShared, channel: &str) -> Vec<ByteString> {
        let mut reg = self.inner.registry.write().expect("registry lock");
        if !reg.join(channel, conn.id) {
            return Vec::new();
        }
        let state: serde_json::Map<String, Value> = reg
            .channel(channel)
            .map(|c| {
                c.presence
                    .iter()
                    .map(|(id, s)| (id.to_string(), s.clone()))
                    .collect()
            })
            .unwrap_or_default();
        vec![protocol::encode(
            &json!({"type": "presence_state", "channel": channel, "payload": state}),
        )]
    }

    fn presence_diff(
        &self,
        channel: &str,
        conn: ConnId,
        joined: Option<Value>,
        left: Option<Value>,
    ) {
        if joined.is_none() && left.is_none() {
            return;
        }
        let key = conn.to_string();
        let joins: serde_json::Map<String, Value> =
            joined.map(|s| (key.clone(), s)).into_iter().collect();
        let leaves: serde_json::Map<String, Value> = left.map(|s| (key, s)).into_iter().collect();
        let frame = protocol::encode(&json!({
            "type": "presence_diff", "channel": channel,
            "payload": {"joins": joins, "leaves": leaves},
        }));
        self.send_to_channel(channel, &frame, None);
    }

    fn send_to_channel(&self, channel: &str, frame: &ByteString, except: Option<ConnId>) -> usize {
        let conns = self
            .inner
            .registry
            .read()
            .expect("registry lock")
            .channel_conns(channel);
        let s = &self.inner.settings;
        let mut sent = 0;
        for conn in conns.iter().filter(|c| Some(c.id) != except) {
            if conn.push(
                frame.clone(),
                s.slow_client_threshold,
                s.slow_client_timeout,
            ) == connection::PushOutcome::Queued
            {
                sent += 1;
            }
        }
        metrics::counter!("fluxbase_realtime_messages_sent_total").increment(sent as u64);
        sent
    }

    /// Reads a table from the catalog (publishing it when needed). The connection is
    /// released before anything else needs one: a burst of subscribes must not hold the
    /// pool while waiting for a second connection.
    async fn lookup_table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Arc<catalog::TableInfo>, (&'static str, String)> {
        let client = self.inner.pool.get().await.map_err(|e| {
            tracing::warn!(error = %e, "realtime catalog unavailable");
            (
                "unavailable",
                "the database is unavailable; try again".to_string(),
            )
        })?;
        match self.inner.catalog.lookup(&client, schema, table).await {
            Ok(info) => Ok(info),
            Err(catalog::CatalogError::Database(e)) => {
                tracing::warn!(error = %e, "realtime catalog read failed");
                Err((
                    "unavailable",
                    "the database is unavailable; try again".into(),
                ))
            }
            Err(e @ catalog::CatalogError::NoReplicaIdentity(..)) => {
                Err(("no_primary_key", e.to_string()))
            }
            Err(e) => Err(("unknown_table", e.to_string())),
        }
    }

    async fn subscribe(
        &self,
        conn: &Arc<ConnShared>,
        channel: &str,
        config: protocol::SubscribeConfig,
    ) -> ByteString {
        let err = |code: &str, msg: String| protocol::error(code, &msg, Some(channel));
        let Some(table) = config.table.clone() else {
            // A channel for broadcast and presence only.
            let mut replies = self.join_channel(conn, channel);
            return replies.pop().unwrap_or_else(|| {
                protocol::encode(&json!({"type": "ack", "channel": channel, "subscribed": true}))
            });
        };
        let schema = config.schema.clone().unwrap_or_else(|| "public".into());
        let event = config.event.clone().unwrap_or_else(|| "*".into());
        let Some(events) = EventMask::parse(&event) else {
            return err(
                "invalid_event",
                format!("event must be INSERT, UPDATE, DELETE or *, got {event:?}"),
            );
        };
        let filter = match config
            .filter
            .as_deref()
            .map(filter::Filter::parse)
            .transpose()
        {
            Ok(f) => f,
            Err(e) => return err("invalid_filter", e.to_string()),
        };
        if self
            .inner
            .registry
            .read()
            .expect("registry lock")
            .subs_of(conn.id)
            >= self.inner.settings.max_subscriptions_per_connection
        {
            return err(
                "too_many_subscriptions",
                format!(
                    "at most {} subscriptions per connection",
                    self.inner.settings.max_subscriptions_per_connection
                ),
            );
        }
        let info = match self.inner.catalog.cached(&schema, &table) {
            Some(info) => info,
            None => match self.lookup_table(&schema, &table).await {
                Ok(info) => info,
                Err((code, message)) => return err(code, message),
            },
        };
        if let Some(f) = &filter
            && !info.has_column(&f.column)
        {
            return err(
                "unknown_column",
                format!("column {:?} does not exist in {schema}.{table}", f.column),
            );
        }
        let route = self.inner.gate.owner_route(info.relid).await;
        // Operands take the column's type; what cannot be compared exactly in-process is
        // left to PostgreSQL (see `filter::Filter::bind`).
        let filter = filter.map(|f| match self.inner.gate.column(info.relid, &f.column) {
            Some(column) => f.bind(&column),
            None => f.bind(&rls::predicate::ColumnInfo {
                name: String::new(),
                ty: rls::value::SqlType::Other(String::new()),
                collation: rls::predicate::Collation::C,
            }),
        });
        let id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let sub = Subscription {
            id: id.clone(),
            conn: conn.id,
            channel: Arc::from(channel),
            schema: Arc::from(schema.as_str()),
            table: Arc::from(table.as_str()),
            events,
            filter,
            envelope: registry::Subscription::envelope_for(channel, &id),
        };
        {
            let mut registry = self.inner.registry.write().expect("registry lock");
            registry.set_route(&schema, &table, route);
            registry.add_sub(sub);
        }
        self.publish_gauges();
        protocol::encode(&json!({
            "type": "ack", "channel": channel, "subscribed": true,
            "subscription_id": &*id, "schema": schema, "table": table,
            "event": event.to_ascii_uppercase(), "filter": config.filter,
        }))
    }
}
