//! [`Engine`]: the hub's state and its lifecycle — construction, the supervised actors'
//! start, reloads, the admin restart, health and shutdown. The typed calls of sockets are
//! in [`super::hub`], fan-out in [`super::pipeline`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix::{Addr, Supervisor};
use deadpool_postgres::Pool;
use fluxbase_migrations::SchemaCache;
use fluxbase_replication::{ReplicationConfig, ReplicationHandle, ReplicationStatus};
use tokio::sync::watch;

use super::auth::Authenticator;
use super::channels::{Bus, Channels, LocalBus};
use super::cluster::{Cluster, ClusterStats, Leader, RedisBus, Role, Service, SharedLimits};
use super::connection::{CloseReason, close};
use super::connections::Connections;
use super::gate::Gate;
use super::index::Index;
use super::pipeline::{Consumer, Dispatcher, Sweeper, Watcher};
use super::settings::RealtimeSettings;
use super::tables::Tables;
use crate::jobs::Webhooks;
use crate::supervise::{ServiceState, Supervision};

/// What an engine is built from.
pub struct EngineOptions {
    /// The `realtime.*` settings.
    pub settings: RealtimeSettings,
    /// Checks the tokens sockets send (`access_token`): the auth service.
    pub auth: Arc<dyn Authenticator>,
    /// How to connect (the RLS pool, the replication stream).
    pub pg: tokio_postgres::Config,
    /// The server's pool: subscribe-time lookups (never fan-out).
    pub pool: Pool,
    /// The schema cache shared with REST.
    pub schema: SchemaCache,
    /// `replication.publication_name`
    pub publication: String,
    /// `replication.schemas`: schemas whose tables are published when subscribed to.
    pub schemas: Vec<String>,
    /// The supervision registry (shared with the jobs' actors).
    pub supervision: Supervision,
    /// The channel bus; `None`: in-process (or over Redis with `cluster`).
    pub bus: Option<Arc<dyn Bus>>,
    /// Scale-out over Redis (`realtime.bus: redis`); `None`: one instance, as before.
    pub cluster: Option<Cluster>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

/// The engine's shared state.
pub(super) struct Inner {
    pub(super) settings: RealtimeSettings,
    pub(super) auth: Arc<dyn Authenticator>,
    pub(super) pool: Pool,
    pub(super) tables: Tables,
    pub(super) gate: Gate,
    pub(super) connections: Connections,
    /// A std lock: held only for index lookups and updates, never across `.await`.
    pub(super) index: RwLock<Index>,
    pub(super) bus: Arc<dyn Bus>,
    /// The channels actor, once started.
    pub(super) channels: RwLock<Option<Addr<Channels>>>,
    pub(super) supervision: Supervision,
    pub(super) replication: Mutex<Option<ReplicationHandle>>,
    /// Database webhooks, when jobs run: they take each transaction before it is
    /// acknowledged.
    pub(super) webhooks: RwLock<Option<Webhooks>>,
    pub(super) shutdown: watch::Sender<bool>,
    /// This instance's id: the prefix of its connection ids.
    pub(super) instance: String,
    pub(super) next_seq: AtomicU64,
    /// How to connect (the leader lock's session).
    pub(super) pg: tokio_postgres::Config,
    /// Scale-out, when configured.
    pub(super) cluster: Option<Cluster>,
    /// `realtime.max_connections_per_user` across instances (with `cluster`).
    pub(super) shared_limits: Option<SharedLimits>,
}

/// Snapshot for `/api/v1/monitoring/metrics` `.realtime` and the health endpoint.
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
    /// The engine's supervised actors.
    pub actors: BTreeMap<&'static str, ServiceState>,
    /// The channel bus.
    pub bus: &'static str,
    /// Scale-out: this instance's role and the bus, when the bus is Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStats>,
}

impl RealtimeStats {
    /// Whether realtime is degraded: replication lagging or down, or an actor not running
    /// (between a failure and its restart).
    pub fn degraded(&self) -> bool {
        let replication = match &self.cluster {
            // A follower does not stream; the leader's stream must be healthy.
            Some(cluster) => {
                !cluster.connected
                    || cluster.role == Role::Unknown
                    || (cluster.role == Role::Leader
                        && self.replication.as_ref().is_none_or(|r| r.degraded))
            }
            None => self.replication.as_ref().is_none_or(|r| r.degraded),
        };
        replication || self.actors.values().any(|a| !a.running)
    }
}

/// Names of the engine's actors start with this (the registry may be shared with jobs).
pub(super) const ACTOR_PREFIX: &str = "realtime.";

impl Engine {
    /// An engine, not yet started (see [`Engine::start`]).
    pub fn new(options: EngineOptions) -> Engine {
        let EngineOptions {
            settings,
            auth,
            pg,
            pool,
            schema,
            publication,
            schemas,
            supervision,
            bus,
            cluster,
        } = options;
        let gate = Gate::new(
            pg.clone(),
            settings.rls_cache_size,
            settings.rls_cache_ttl,
            settings.rls_fallback_connections,
        );
        super::pipeline::register_metrics();
        super::cluster::register_metrics();
        let instance = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let bus = bus.unwrap_or_else(|| match &cluster {
            Some(cluster) => Arc::new(RedisBus::new(cluster.clone(), instance.clone())),
            None => Arc::new(LocalBus::new()),
        });
        let shared_limits = cluster
            .as_ref()
            .map(|c| SharedLimits::new(c.clone(), instance.clone()));
        Engine {
            inner: Arc::new(Inner {
                auth,
                pool,
                tables: Tables::new(schema, publication, schemas),
                gate,
                connections: Connections::default(),
                index: RwLock::default(),
                bus,
                channels: RwLock::new(None),
                supervision,
                replication: Mutex::new(None),
                webhooks: RwLock::new(None),
                shutdown: watch::channel(false).0,
                instance,
                next_seq: AtomicU64::new(1),
                pg,
                shared_limits,
                cluster,
                settings,
            }),
        }
    }

    /// Lets database webhooks take each transaction before the slot is acknowledged
    /// (`jobs.webhooks()`). Call before [`Engine::start`]: transactions taken before are
    /// not offered to them.
    pub fn set_webhooks(&self, webhooks: Webhooks) {
        *self
            .inner
            .webhooks
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(webhooks);
    }

    /// Starts the supervised actors — channels, the DDL/role watcher, the slow-client
    /// sweeper, the dispatcher and the replication consumer — inside the current actix
    /// system, and waits (up to `ready_timeout`) for the stream to be live, so
    /// subscriptions made right after see the publication. Returns whether it became live
    /// in time; if not it keeps retrying in the background.
    pub async fn start(
        &self,
        replication: ReplicationConfig,
        ready_timeout: Duration,
    ) -> Result<bool, fluxbase_replication::ReplicationError> {
        replication.validate()?;
        let inner = &self.inner;
        let channels = {
            let (bus, supervision, limits) = (
                inner.bus.clone(),
                inner.supervision.clone(),
                inner.settings.channel_limits(),
            );
            Supervisor::start(move |_| Channels::new(bus, supervision, limits))
        };
        *inner.channels.write().unwrap_or_else(|e| e.into_inner()) = Some(channels);
        let engine = self.clone();
        Supervisor::start(move |_| Watcher::new(engine));
        let engine = self.clone();
        Supervisor::start(move |_| Sweeper::new(engine));
        let engine = self.clone();
        let dispatcher = Supervisor::start(move |_| Dispatcher::new(engine));
        if let Some(cluster) = inner.cluster.clone() {
            return Ok(self
                .start_cluster(cluster, dispatcher, replication, ready_timeout)
                .await);
        }
        let (handle, transactions) = fluxbase_replication::start(replication.clone())?;
        *self.inner.replication.lock().expect("replication lock") = Some(handle.clone());
        // One instance is its own slot leader.
        metrics::gauge!("fluxbase_realtime_leader").set(1.0);
        let mut status = handle.watch_status();
        let engine = self.clone();
        Supervisor::start(move |_| {
            Consumer::new(engine, dispatcher, replication, handle, transactions)
        });
        let live = tokio::time::timeout(ready_timeout, status.wait_for(|s| s.connected)).await;
        Ok(matches!(live, Ok(Ok(_))))
    }

    /// Scale-out: the changes reader (every instance) and the leader loop (the lock's
    /// holder consumes the slot). Ready once this instance knows its role and its readers
    /// have their position (and, as leader, once the stream is live).
    async fn start_cluster(
        &self,
        cluster: Cluster,
        dispatcher: Addr<Dispatcher>,
        replication: ReplicationConfig,
        ready_timeout: Duration,
    ) -> bool {
        let position = Arc::new(tokio::sync::Mutex::new(Default::default()));
        let (engine, reader) = (self.clone(), cluster.clone());
        Service::start(
            "realtime.bus_reader",
            self.inner.supervision.clone(),
            Box::new(move || {
                Box::pin(super::cluster::changes::read(
                    engine.clone(),
                    reader.clone(),
                    dispatcher.clone(),
                    position.clone(),
                ))
            }),
        );
        let (engine, leader) = (self.clone(), cluster.clone());
        Service::start(
            Leader::NAME,
            self.inner.supervision.clone(),
            Box::new(move || {
                Box::pin(Leader::run(
                    engine.clone(),
                    leader.clone(),
                    replication.clone(),
                ))
            }),
        );
        let ready = async {
            cluster.ready().await;
            if cluster.role() == Role::Leader
                && let Some(handle) = self.replication()
            {
                let _ = handle.watch_status().wait_for(|s| s.connected).await;
            }
        };
        tokio::time::timeout(ready_timeout, ready).await.is_ok()
    }

    /// Reconnects replication now (`POST /api/v1/admin/realtime/restart`); policies are
    /// re-read too.
    pub async fn restart(&self) -> bool {
        // A failed re-read is retried by the watcher's next tick.
        let _ = self.reload().await;
        if let Some(cluster) = &self.inner.cluster {
            // Any instance: its bus reader reconnects (from its last position), and the
            // leader's stream too when this is the leader.
            cluster.restart_reader();
            if let Some(handle) = self.replication() {
                handle.restart();
            }
            return true;
        }
        match self.replication() {
            Some(handle) => {
                handle.restart();
                true
            }
            None => false,
        }
    }

    /// Replaces the current replication stream (the leader's, as it gains or loses the
    /// lock); returns the previous one.
    pub(super) fn set_replication(
        &self,
        handle: Option<ReplicationHandle>,
    ) -> Option<ReplicationHandle> {
        std::mem::replace(
            &mut *self.inner.replication.lock().expect("replication lock"),
            handle,
        )
    }

    /// How to connect to PostgreSQL.
    pub(super) fn pg(&self) -> &tokio_postgres::Config {
        &self.inner.pg
    }

    /// Closes every socket of this instance with `reason`.
    pub(super) fn close_all(&self, reason: CloseReason) {
        for conn in self.inner.connections.all() {
            conn.request_close(reason.clone());
        }
    }

    /// The cluster, when scaled out over Redis.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The current replication stream.
    pub(super) fn replication(&self) -> Option<ReplicationHandle> {
        self.inner
            .replication
            .lock()
            .expect("replication lock")
            .clone()
    }

    /// Re-reads RLS policies (on DDL, on role changes), and re-routes subscriptions of
    /// tables whose policies became (or stopped being) owner-only; whether the policies
    /// were re-read (when not, the caller retries).
    pub async fn reload(&self) -> bool {
        if !self.inner.gate.reload().await {
            return false;
        }
        let tables = self.inner.index.read().expect("index lock").tables();
        let snapshot = self.inner.tables.cache().snapshot();
        for (schema, table) in tables {
            let route = match snapshot.relation(&schema, &table) {
                Some(relation) => self.inner.gate.owner_route(relation.oid).await,
                None => None,
            };
            self.inner
                .index
                .write()
                .expect("index lock")
                .set_route(&schema, &table, route);
        }
        true
    }

    /// Closes every socket (1001) and stops the actors' loops and replication.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        for conn in self.inner.connections.all() {
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

    /// Whether shutdown has begun.
    pub(super) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// The settings.
    pub fn settings(&self) -> &RealtimeSettings {
        &self.inner.settings
    }

    /// The supervision registry.
    pub fn supervision(&self) -> &Supervision {
        &self.inner.supervision
    }

    /// This instance's id (prefix of its connection ids).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Publishes the connection and subscription gauges.
    pub(super) fn publish_gauges(&self) {
        metrics::gauge!("fluxbase_realtime_connections").set(self.inner.connections.len() as f64);
        let subs = self.inner.index.read().expect("index lock").len();
        metrics::gauge!("fluxbase_realtime_subscriptions").set(subs as f64);
    }

    /// Counters for monitoring.
    pub fn stats(&self) -> RealtimeStats {
        let actors = self
            .inner
            .supervision
            .snapshot()
            .into_iter()
            .filter(|(name, _)| name.starts_with(ACTOR_PREFIX))
            .collect();
        RealtimeStats {
            connections: self.inner.connections.len(),
            subscriptions: self.inner.index.read().expect("index lock").len(),
            rls_cache_entries: self.inner.gate.cache_len(),
            replication: self.replication().as_ref().map(ReplicationHandle::status),
            actors,
            bus: self.inner.bus.name(),
            cluster: self.inner.cluster.as_ref().map(Cluster::stats),
        }
    }
}
