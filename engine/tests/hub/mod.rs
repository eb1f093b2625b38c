//! The engine in-process over a real database: started inside an actix system (its actors
//! need one), with its own slot and publication, sockets stood in for by their queues.

mod storm;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use fluxbase_auth::AuthContext;
use fluxbase_engine::realtime::codec::native::{NATIVE, Native};
use fluxbase_engine::realtime::codec::{Codec, Frame};
use fluxbase_engine::realtime::hub::{Session, SubscribeRequest, Subscribed};
use fluxbase_engine::realtime::{ConnShared, Engine, EngineOptions, Outbound, RealtimeSettings};
use fluxbase_engine::supervise::Supervision;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::tls::MakeRustlsConnect;
use fluxbase_migrations::{CacheOptions, SchemaCache};
use tokio::sync::{mpsc, watch};

/// How long a test waits for its engine to stream, or for a frame. Creating a logical slot
/// waits until every transaction running in the cluster that holds an xid has ended, and
/// the tests share one cluster: some hold such a transaction on purpose for a few seconds
/// (a table lock, an uncommitted writer). On a loaded 2-core machine that adds up.
const SLOT_READY: Duration = Duration::from_secs(90);

/// The secret of the engine's authenticator.
pub const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";

/// A started engine and what stops it.
pub struct TestEngine {
    pub engine: Engine,
    pub slot: String,
    /// The engine's schema cache.
    pub schema: SchemaCache,
    cache_stop: watch::Sender<bool>,
}

/// The replication settings of the engine of `db` (its own slot and publication).
pub fn replication(db: &TestDb) -> fluxbase_replication::ReplicationConfig {
    let mut r = fluxbase_replication::ReplicationConfig::new(db.config());
    r.slot_name = format!("slot_{}", db.name());
    r.publication_name = format!("pub_{}", db.name());
    r.status_interval = Duration::from_millis(100);
    r
}

impl TestEngine {
    /// An engine over `db` with `pool` as its main pool, not started.
    pub async fn new(
        db: &TestDb,
        pool: deadpool_postgres::Pool,
        settings: RealtimeSettings,
    ) -> TestEngine {
        let (cache_stop, stop) = watch::channel(false);
        let schema = SchemaCache::start(
            db.config(),
            MakeRustlsConnect::new(),
            CacheOptions::default(),
            stop,
        )
        .await
        .expect("schema cache");
        let engine = Engine::new(EngineOptions {
            settings,
            auth: Arc::new(fluxbase_auth::JwtKeys::hs256(SECRET)),
            pg: db.config(),
            pool,
            schema: schema.clone(),
            publication: format!("pub_{}", db.name()),
            schemas: vec!["public".into()],
            supervision: Supervision::default(),
            bus: None,
            cluster: None,
        });
        TestEngine {
            engine,
            slot: format!("slot_{}", db.name()),
            schema,
            cache_stop,
        }
    }

    /// Starts it (inside an actix system) and waits for the stream.
    pub async fn start(&self, db: &TestDb) {
        assert!(
            self.engine
                .start(replication(db), SLOT_READY)
                .await
                .expect("engine starts"),
            "replication did not become live"
        );
    }

    /// Stops it (the slot stays).
    pub async fn stop(self) {
        self.engine.shutdown().await;
        let _ = self.cache_stop.send(true);
    }
}

/// A connection of `context` and its queue.
pub fn connect(
    engine: &Engine,
    context: AuthContext,
) -> (Arc<ConnShared>, mpsc::Receiver<Outbound>) {
    engine
        .connect("127.0.0.1".parse().unwrap(), context, &NATIVE)
        .expect("under the limits")
}

/// Subscribes `conn` to `table` (all events).
pub async fn subscribe(engine: &Engine, conn: &Arc<ConnShared>, table: &str) -> Subscribed {
    let envelope = |id: &str| Native.envelope("c", &[id]);
    Session::new(engine, conn)
        .subscribe(SubscribeRequest {
            channel: "c",
            schema: None,
            table: table.into(),
            event: None,
            filter: None,
            envelope: &envelope,
        })
        .await
        .expect("subscribed")
}

/// The next change frame of a queue, as JSON.
pub async fn next_change(rx: &mut mpsc::Receiver<Outbound>) -> serde_json::Value {
    loop {
        let item = tokio::time::timeout(SLOT_READY, rx.recv())
            .await
            .expect("a frame in time")
            .expect("queue open");
        let frame = match item {
            Outbound::Change { sub, body } => Native.change(std::slice::from_ref(&sub), &body),
            Outbound::Changes { subs, body } => Native.change(&subs, &body),
            _ => continue,
        };
        let Frame::Text(text) = frame else {
            panic!("binary change frame")
        };
        return serde_json::from_str(&text).expect("JSON frame");
    }
}
