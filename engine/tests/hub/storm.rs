//! A connect storm onto a table nobody subscribed to yet: its first subscribers share one
//! lookup of the table (cache catch-up, publication check) instead of each running its own
//! on the main pool, which queued them behind each other for hundreds of milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Hook, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use fluxbase_auth::AuthContext;
use fluxbase_engine::realtime::RealtimeSettings;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::tls::MakeRustlsConnect;

use super::{TestEngine, connect, subscribe};

/// Subscribers arriving together.
const STORM: usize = 64;

/// A main pool that counts every connection handed out (new or reused).
fn counting_pool(db: &TestDb) -> (Pool, Arc<AtomicU64>) {
    let taken = Arc::new(AtomicU64::new(0));
    let manager = Manager::from_config(
        db.config(),
        MakeRustlsConnect::new(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let (created, reused) = (taken.clone(), taken.clone());
    let pool = Pool::builder(manager)
        .max_size(8)
        .runtime(Runtime::Tokio1)
        .post_create(Hook::sync_fn(move |_, _| {
            created.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }))
        .post_recycle(Hook::sync_fn(move |_, _| {
            reused.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }))
        .build()
        .expect("a runtime and a size are set");
    (pool, taken)
}

#[actix::test]
async fn the_first_subscribers_of_a_table_share_one_lookup() {
    let db = TestDb::new().await;
    let (pool, taken) = counting_pool(&db);
    let engine = TestEngine::new(&db, pool, RealtimeSettings::default()).await;
    engine.start(&db).await;
    let client = db.client().await;
    // Created just before the storm, as a deploy that adds a table and reconnects its
    // clients would: the cache may not have it yet, the publication does not.
    client
        .batch_execute(
            "CREATE TABLE public.storm (id int PRIMARY KEY, body text);
             GRANT SELECT ON public.storm TO anon;",
        )
        .await
        .unwrap();
    let conns: Vec<_> = (0..STORM)
        .map(|_| connect(&engine.engine, AuthContext::anon()).0)
        .collect();

    let before = taken.load(Ordering::Relaxed);
    let subscribed =
        futures_util::future::join_all(conns.iter().map(|c| subscribe(&engine.engine, c, "storm")))
            .await;
    let lookups = taken.load(Ordering::Relaxed) - before;

    assert_eq!(subscribed.len(), STORM);
    assert!(subscribed.iter().all(|s| s.table == "storm"));
    // One probe and reload for the cache, one publication check (which adds the table),
    // and one more check by subscribers that already see the cache reloaded after that
    // ALTER PUBLICATION: three. Each subscriber on its own would be 2 × 64.
    assert!(
        lookups <= 3,
        "{STORM} subscribers took {lookups} connections from the main pool"
    );
    engine.stop().await;
}
