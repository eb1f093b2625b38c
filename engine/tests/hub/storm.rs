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
    // and one more check by subscribers that see the notice of that ALTER PUBLICATION
    // (it moves the cache's DDL epoch, not its version): three. Each subscriber on its
    // own would be 2 × 64.
    assert!(
        lookups <= 3,
        "{STORM} subscribers took {lookups} connections from the main pool"
    );
    engine.stop().await;
}

/// Whether `table` is in the engine's publication.
async fn published(client: &tokio_postgres::Client, db: &TestDb, table: &str) -> bool {
    client
        .query_opt(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2",
            &[&format!("pub_{}", db.name()), &table],
        )
        .await
        .unwrap()
        .is_some()
}

#[actix::test]
async fn a_table_an_operator_unpublished_is_published_again_by_the_next_subscribe() {
    let db = TestDb::new().await;
    let (pool, _) = counting_pool(&db);
    let engine = TestEngine::new(&db, pool, RealtimeSettings::default()).await;
    engine.start(&db).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.unpublished (id int PRIMARY KEY);
             GRANT SELECT ON public.unpublished TO anon;",
        )
        .await
        .unwrap();
    let (first, _rx) = connect(&engine.engine, AuthContext::anon());
    subscribe(&engine.engine, &first, "unpublished").await;
    assert!(published(&client, &db, "unpublished").await);

    // The publication DDL reloads no schema snapshot; its notice moves the DDL epoch,
    // and the engine's memory of the table being published must not outlive it.
    let epoch = engine.schema.ddl_epoch();
    client
        .batch_execute(&format!(
            "ALTER PUBLICATION pub_{} DROP TABLE public.unpublished",
            db.name()
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while engine.schema.ddl_epoch() == epoch {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ALTER PUBLICATION notice never reached the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!published(&client, &db, "unpublished").await);

    let (second, _rx2) = connect(&engine.engine, AuthContext::anon());
    subscribe(&engine.engine, &second, "unpublished").await;
    assert!(
        published(&client, &db, "unpublished").await,
        "the subscribe trusted a publication check older than the operator's DROP"
    );
    engine.stop().await;
}
