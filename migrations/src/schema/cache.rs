//! The running cache: holds the current [`Schema`] snapshot, replaces it when the schema
//! changes, and tells consumers (realtime re-reads its policies, REST drops its prepared
//! statements) through a version watch.
//!
//! Changes are learned from `NOTIFY fluxbase_ddl`, sent by the `fluxbase_ddl` event trigger
//! after every DDL statement (migrations 0003 and 0007), debounced so that a burst of DDL
//! gives one or two reloads. Publication DDL (`ALTER PUBLICATION … ADD TABLE`, which the
//! realtime engine runs on a table's first subscription) changes nothing a snapshot holds
//! and reloads nothing; every notice, and every reload, moves the
//! [`SchemaCache::ddl_epoch`] instead, by which realtime re-checks publication membership.
//! Creating an event trigger needs a superuser; where there is
//! none, the cache polls a cheap [`Fingerprint`] of the catalogs every
//! [`CacheOptions::poll_interval`] instead. After the LISTEN connection comes back it
//! reloads, since notifications sent meanwhile are lost. A failed reload keeps the previous
//! snapshot, is logged once, and is retried.
//!
//! Anyone may force a reload with `NOTIFY fluxbase_ddl` (like PostgREST's
//! `NOTIFY pgrst, 'reload schema'`), or with [`SchemaCache::request_reload`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Socket};

use super::fingerprint::Fingerprint;
use super::load::SchemaError;
use super::snapshot::Schema;
use crate::listen::{ListenEvent, ListenOptions, Listener, stop_requested};

/// The channel the DDL event trigger notifies (migration 0003), also used by realtime.
pub const DDL_CHANNEL: &str = "fluxbase_ddl";

/// The event trigger that sends [`DDL_CHANNEL`] notifications.
const DDL_TRIGGER: &str = "fluxbase_ddl";

/// How often, while on notifications, the cache checks that the event trigger still
/// exists (dropping it sends no notification).
const TRIGGER_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// How the cache learns about schema changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshMode {
    /// Notifications when the event trigger exists, polling otherwise (checked at start,
    /// after each reconnection and every 30 s, switching either way).
    #[default]
    Auto,
    /// Always poll the fingerprint, never LISTEN: for connections through a pooler that
    /// drops notifications (PgBouncer in transaction mode), and for tests.
    Poll,
}

/// Where the cache's reloads currently come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSource {
    /// `NOTIFY fluxbase_ddl` from the event trigger.
    Notifications,
    /// The catalog fingerprint, polled.
    Polling,
}

/// Tuning of a [`SchemaCache`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Notifications or polling.
    pub mode: RefreshMode,
    /// How often the fingerprint is read when polling.
    pub poll_interval: Duration,
    /// How long after a DDL notification the reload starts, gathering the rest of a burst
    /// (the deadline is not pushed back by later notifications).
    pub debounce: Duration,
    /// How long after a failed reload the next attempt starts.
    pub retry_interval: Duration,
    /// The LISTEN connection's tuning.
    pub listen: ListenOptions,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            mode: RefreshMode::Auto,
            poll_interval: Duration::from_secs(1),
            debounce: Duration::from_millis(50),
            retry_interval: Duration::from_secs(1),
            listen: ListenOptions::default(),
        }
    }
}

/// The schema cache, cheap to clone and share. Reads never wait on a reload.
#[derive(Clone)]
pub struct SchemaCache {
    shared: Arc<Shared>,
}

/// What the handles and the refresh task share.
struct Shared {
    /// The current snapshot. A std lock held only to clone or replace the `Arc` (never
    /// across `.await`), so readers are never blocked by a reload in progress.
    current: RwLock<Arc<Schema>>,
    /// The current version, sent after `current` is replaced.
    version: watch::Sender<u64>,
    /// Wakes the task for [`SchemaCache::request_reload`].
    reload: Notify,
    /// Whether reloads come from polling (see [`RefreshSource`]).
    polling: AtomicBool,
    /// Failed reloads and fingerprint reads since start.
    failures: AtomicU64,
    /// Moved by every DDL notice (publication DDL included) and every reload: see
    /// [`SchemaCache::ddl_epoch`].
    ddl_epoch: AtomicU64,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("version", &self.version())
            .field("source", &self.refresh_source())
            .finish()
    }
}

impl SchemaCache {
    /// Loads the schema once, then keeps it fresh until `shutdown` turns true (or its
    /// sender is dropped). Connects with `config` and `tls`: one connection for loading,
    /// and in [`RefreshMode::Auto`] one for LISTEN. Fails when the first load fails.
    pub async fn start<T>(
        config: Config,
        tls: T,
        options: CacheOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<SchemaCache, SchemaError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let mut listener = (options.mode == RefreshMode::Auto).then(|| {
            let opts = options.listen.clone();
            Listener::spawn(
                config.clone(),
                tls.clone(),
                &[DDL_CHANNEL],
                opts,
                shutdown.clone(),
            )
        });
        // LISTEN before the first load, so DDL committed in between is not missed. If the
        // LISTEN is slow to come up, its `Listening` event triggers a reload later.
        if let Some(listener) = listener.as_mut() {
            let first = tokio::time::timeout(options.listen.connect_timeout, listener.recv());
            if !matches!(first.await, Ok(Some(ListenEvent::Listening))) {
                tracing::warn!("schema cache: LISTEN not ready, loading without it");
            }
        }
        let mut loader = Loader {
            config,
            tls,
            client: None,
            fingerprint: None,
        };
        let polling = loader.polling_needed(options.mode).await?;
        let mut schema = loader.load(polling).await?;
        schema.version = 1;
        tracing::info!(
            relations = schema.relations().len(),
            functions = schema.functions().len(),
            duration_ms = schema.load_duration().as_millis() as u64,
            source = if polling { "polling" } else { "notifications" },
            "schema cache loaded"
        );
        let shared = Arc::new(Shared {
            current: RwLock::new(Arc::new(schema)),
            version: watch::channel(1).0,
            reload: Notify::new(),
            polling: AtomicBool::new(polling),
            failures: AtomicU64::new(0),
            ddl_epoch: AtomicU64::new(1),
        });
        let refresher = Refresher {
            shared: shared.clone(),
            loader,
            options,
            failing: false,
        };
        tokio::spawn(refresher.run(listener, shutdown));
        Ok(SchemaCache { shared })
    }

    /// The current snapshot: a clone of an `Arc`, never a catalog query.
    pub fn snapshot(&self) -> Arc<Schema> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The current version (the snapshot's).
    pub fn version(&self) -> u64 {
        *self.shared.version.borrow()
    }

    /// A counter that moves on every DDL notice received (publication DDL too, which
    /// reloads nothing) and after every reload: a fact read from the catalog outside the
    /// snapshot (a table's publication membership) holds while this has not moved past the
    /// value read before it.
    pub fn ddl_epoch(&self) -> u64 {
        self.shared.ddl_epoch.load(Ordering::Acquire)
    }

    /// A watch of the version: changes after each reload, once the new snapshot is in
    /// place (so `snapshot()` then returns that version or a newer one).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.version.subscribe()
    }

    /// Where reloads currently come from.
    pub fn refresh_source(&self) -> RefreshSource {
        if self.shared.polling.load(Ordering::Relaxed) {
            RefreshSource::Polling
        } else {
            RefreshSource::Notifications
        }
    }

    /// How many reloads (or fingerprint reads) have failed since start: health reporting.
    pub fn failed_reloads(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Asks for a reload now (e.g. after DDL the caller knows the trigger cannot see).
    pub fn request_reload(&self) {
        self.shared.reload.notify_one();
    }

    /// Waits until a snapshot satisfies `ready` and returns it (the current one if it
    /// already does). Wrap it in a timeout: it waits for as long as it takes.
    pub async fn wait_for(&self, ready: impl Fn(&Schema) -> bool) -> Arc<Schema> {
        let mut versions = self.subscribe();
        loop {
            let snapshot = self.snapshot();
            if ready(&snapshot) {
                return snapshot;
            }
            // The sender lives in `shared`, which `self` keeps alive: never an error.
            let _ = versions.changed().await;
        }
    }

    /// Whether the catalog has the relation `schema.name`, asked through `client`: what a
    /// caller checks before [`SchemaCache::load_relation`] when this cache lacks it (a table
    /// created a moment ago, before its DDL notice reached the cache).
    pub async fn catalog_has(
        client: &Client,
        schema: &str,
        name: &str,
    ) -> Result<bool, tokio_postgres::Error> {
        Ok(client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await?
            .is_some())
    }

    /// Reloads now and waits up to `wait` for a snapshot holding `schema.name` (the
    /// current one if it already does); `None` when none came in time.
    pub async fn load_relation(
        &self,
        schema: &str,
        name: &str,
        wait: Duration,
    ) -> Option<Arc<Schema>> {
        let has = |s: &Schema| s.relation(schema, name).is_some();
        let snapshot = self.snapshot();
        if has(&snapshot) {
            return Some(snapshot);
        }
        self.request_reload();
        tokio::time::timeout(wait, self.wait_for(has)).await.ok()
    }
}

/// How to read: the loading connection (reconnected lazily) and the last fingerprint.
struct Loader<T> {
    config: Config,
    tls: T,
    client: Option<Client>,
    /// The fingerprint read just before the current snapshot's load, when polling.
    fingerprint: Option<Fingerprint>,
}

impl<T> Loader<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    /// The loading connection, made anew if there is none or it broke.
    async fn client(&mut self) -> Result<&mut Client, SchemaError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let (client, connection) = self
                .config
                .connect(self.tls.clone())
                .await
                .map_err(SchemaError::Connect)?;
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "schema cache connection ended");
                }
            });
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Whether the cache must poll: forced, or no enabled event trigger.
    async fn polling_needed(&mut self, mode: RefreshMode) -> Result<bool, SchemaError> {
        if mode == RefreshMode::Poll {
            return Ok(true);
        }
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_event_trigger
                                WHERE evtname = $1 AND evtenabled <> 'D')",
                &[&DDL_TRIGGER],
            )
            .await
            .map_err(|source| SchemaError::Query {
                what: "event trigger",
                source,
            })?;
        Ok(!row.get::<_, bool>(0))
    }

    /// Loads a snapshot; when polling, reads the fingerprint first, so a change committed
    /// during the load shows as a changed fingerprint at the next poll.
    async fn load(&mut self, polling: bool) -> Result<Schema, SchemaError> {
        let client = self.client().await?;
        let fingerprint = match polling {
            true => Some(read_fingerprint(client).await?),
            false => None,
        };
        let schema = Schema::load(client).await?;
        self.fingerprint = fingerprint;
        Ok(schema)
    }

    /// Whether the catalogs changed since the current snapshot was loaded.
    async fn changed(&mut self) -> Result<bool, SchemaError> {
        let now = read_fingerprint(self.client().await?).await?;
        Ok(self.fingerprint.as_ref() != Some(&now))
    }
}

async fn read_fingerprint(client: &Client) -> Result<Fingerprint, SchemaError> {
    Fingerprint::read(client)
        .await
        .map_err(|source| SchemaError::Query {
            what: "fingerprint",
            source,
        })
}

/// When to read: the refresh task.
struct Refresher<T> {
    shared: Arc<Shared>,
    loader: Loader<T>,
    options: CacheOptions,
    /// The last reload failed (its error was logged; the next ones are not).
    failing: bool,
}

impl<T> Refresher<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    async fn run(mut self, mut listener: Option<Listener>, mut shutdown: watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(self.options.poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        poll.reset();
        let mut trigger_check = tokio::time::interval(TRIGGER_CHECK_INTERVAL);
        trigger_check.reset();
        // When the next reload is due.
        let mut due: Option<Instant> = None;
        loop {
            let polling = self.shared.polling.load(Ordering::Relaxed);
            tokio::select! {
                _ = stop_requested(&mut shutdown) => break,
                _ = self.shared.reload.notified() => schedule(&mut due, Duration::ZERO),
                event = next_event(&mut listener) => match event {
                    Some(ListenEvent::Notification(n)) if n.channel == DDL_CHANNEL => {
                        self.shared.ddl_epoch.fetch_add(1, Ordering::AcqRel);
                        if reloads_for(&n.payload) {
                            schedule(&mut due, self.options.debounce);
                        }
                    }
                    Some(ListenEvent::Notification(_)) => {}
                    Some(ListenEvent::Listening | ListenEvent::Reconnected) => {
                        self.check_source().await;
                        schedule(&mut due, Duration::ZERO);
                    }
                    Some(ListenEvent::Lagged { .. }) => schedule(&mut due, Duration::ZERO),
                    // The listener only ends on shutdown.
                    None => break,
                },
                _ = poll.tick(), if polling => match self.loader.changed().await {
                    Ok(true) => schedule(&mut due, Duration::ZERO),
                    // Unchanged since the last good load: the snapshot is current.
                    Ok(false) => self.recovered(),
                    Err(err) => self.failed(&err),
                },
                _ = trigger_check.tick(), if listener.is_some() => {
                    if self.check_source().await {
                        schedule(&mut due, Duration::ZERO);
                    }
                }
                _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    due = None;
                    tokio::select! {
                        _ = stop_requested(&mut shutdown) => break,
                        result = self.reload() => if let Err(err) = result {
                            self.failed(&err);
                            schedule(&mut due, self.options.retry_interval);
                        },
                    }
                }
            }
        }
        if let Some(listener) = listener {
            listener.join().await;
        }
    }

    /// Re-decides between notifications and polling; true when it switched to polling.
    async fn check_source(&mut self) -> bool {
        match self.loader.polling_needed(self.options.mode).await {
            Ok(polling) => {
                let was = self.shared.polling.swap(polling, Ordering::Relaxed);
                if was != polling {
                    let source = if polling { "polling" } else { "notifications" };
                    tracing::info!(source, "schema cache refresh source changed");
                }
                polling && !was
            }
            Err(err) => {
                self.failed(&err);
                false
            }
        }
    }

    async fn reload(&mut self) -> Result<(), SchemaError> {
        let polling = self.shared.polling.load(Ordering::Relaxed);
        let mut schema = self.loader.load(polling).await?;
        let version = *self.shared.version.borrow() + 1;
        schema.version = version;
        tracing::debug!(
            version,
            relations = schema.relations().len(),
            duration_ms = schema.load_duration().as_millis() as u64,
            "schema reloaded"
        );
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(schema);
        self.shared.version.send_replace(version);
        self.shared.ddl_epoch.fetch_add(1, Ordering::AcqRel);
        self.recovered();
        Ok(())
    }

    /// Ends a run of failures, saying so once.
    fn recovered(&mut self) {
        if std::mem::take(&mut self.failing) {
            tracing::info!(
                version = *self.shared.version.borrow(),
                "schema cache recovered"
            );
        }
    }

    /// Counts a failure; logs only the first of a run of failures.
    fn failed(&mut self, err: &SchemaError) {
        self.shared.failures.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(error = %err, "schema reload failed, keeping the previous snapshot");
        } else {
            tracing::debug!(error = %err, "schema reload failed again");
        }
    }
}

/// Whether a DDL notice (its payload is the command tag) calls for a reload: publication
/// DDL changes no relation, column, key, function nor policy of a snapshot. Any other
/// payload does, a hand-sent `NOTIFY fluxbase_ddl` included.
fn reloads_for(tag: &str) -> bool {
    !matches!(
        tag,
        "ALTER PUBLICATION" | "CREATE PUBLICATION" | "DROP PUBLICATION"
    )
}

/// Makes a reload due `after` from now, unless one is due sooner: a later notification
/// never pushes a pending reload back.
fn schedule(due: &mut Option<Instant>, after: Duration) {
    let at = Instant::now() + after;
    *due = Some(due.map_or(at, |pending| pending.min(at)));
}

/// The listener's next event, or never when there is none.
async fn next_event(listener: &mut Option<Listener>) -> Option<ListenEvent> {
    match listener {
        Some(listener) => listener.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::reloads_for;

    #[test]
    fn publication_ddl_alone_reloads_nothing() {
        for tag in [
            "ALTER PUBLICATION",
            "CREATE PUBLICATION",
            "DROP PUBLICATION",
        ] {
            assert!(!reloads_for(tag), "{tag}");
        }
        for tag in [
            "CREATE TABLE",
            "ALTER TABLE",
            "GRANT",
            "CREATE POLICY",
            "COMMENT",
            "reload schema",
            "",
        ] {
            assert!(reloads_for(tag), "{tag}");
        }
    }
}
