//! `Db` lanes: the budget is split between them, and a lane's connections are driven by
//! the worker that claimed it, whoever asked for them.

use std::sync::mpsc;
use std::time::Duration;

use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};

fn settings(max: usize) -> PoolSettings {
    PoolSettings {
        max_connections: max,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        ..PoolSettings::default()
    }
}

async fn select_one(db: &Db) {
    let conn = db.conn().await.unwrap();
    let row = conn.query_one("SELECT 1::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn lanes_split_the_budget_never_below_one_connection_each() {
    let test = TestDb::new().await;
    let db = Db::with_lanes(test.config(), settings(5), 2);
    assert_eq!(db.stats().max_size, 5);
    let db = Db::with_lanes(test.config(), settings(2), 8);
    assert_eq!(db.stats().max_size, 2, "at most one lane per connection");
    // An unclaimed thread takes from the lanes in turn: both serve.
    select_one(&db).await;
    select_one(&db).await;
    assert_eq!(db.stats().size, 2);
}

/// A worker thread with its own single-threaded runtime: claims a lane, queries through
/// it, then runs until told to stop.
fn worker(db: Db) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            db.claim_lane();
            select_one(&db).await;
            ready_tx.send(()).unwrap();
            // Keep the runtime running (it drives the lane's connections) until stopped.
            while stop_rx.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (stop_tx, thread)
}

#[tokio::test]
async fn a_claimed_lane_is_driven_by_its_worker_and_freed_when_it_ends() {
    let test = TestDb::new().await;
    let db = Db::with_lanes(test.config(), settings(4), 2);
    let (stop, thread) = worker(db.clone());

    // From this (unclaimed) thread, in turn: lane 0 (the worker's), then lane 1 (none).
    let on_worker = db.conn().await.unwrap();
    let on_nobody = db.conn().await.unwrap();
    for conn in [&on_worker, &on_nobody] {
        let row = conn.query_one("SELECT 2::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
    }
    assert!(!on_worker.is_closed() && !on_nobody.is_closed());

    // The worker's runtime ends: the connection it drove ends with it, although this
    // thread opened it; the other lane's connection, driven here, lives on.
    stop.send(()).unwrap();
    thread.join().unwrap();
    assert!(
        on_worker.is_closed(),
        "lane 0's connection was not driven by its worker"
    );
    assert!(!on_nobody.is_closed());
    let row = on_nobody.query_one("SELECT 3::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    drop((on_worker, on_nobody));

    // The lane is free again: a new worker claims it and is served.
    let (stop, thread) = worker(db.clone());
    stop.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(db.stats().max_size, 4);
}
