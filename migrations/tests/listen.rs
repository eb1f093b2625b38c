//! The LISTEN helper against a real PostgreSQL: notifications arrive in order on the
//! channels asked for, a killed connection comes back with `Reconnected`, a slow consumer
//! loses nothing silently, and shutdown ends it.

use std::time::Duration;

use fluxbase_migrations::listen::{ListenEvent, ListenOptions, Listener, Notification};
use fluxbase_migrations::test_utils::TestDb;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_postgres::NoTls;

/// Generous: an event normally takes milliseconds, but the machine is shared.
const DEADLINE: Duration = Duration::from_secs(15);

async fn next(listener: &mut Listener) -> ListenEvent {
    timeout(DEADLINE, listener.recv())
        .await
        .expect("an event before the deadline")
        .expect("the listener is running")
}

fn notification(channel: &str, payload: &str) -> ListenEvent {
    ListenEvent::Notification(Notification {
        channel: channel.to_string(),
        payload: payload.to_string(),
    })
}

#[tokio::test]
async fn notifications_arrive_in_order_on_the_channels_listened_to() {
    let db = TestDb::new().await;
    let (_stop, shutdown) = watch::channel(false);
    let mut listener = Listener::spawn(
        db.config(),
        NoTls,
        &["jobs", "Mixed \"Case\""],
        ListenOptions::default(),
        shutdown,
    );
    assert_eq!(next(&mut listener).await, ListenEvent::Listening);

    let client = db.client().await;
    client
        .batch_execute(
            "SELECT pg_notify('jobs', 'first');
             SELECT pg_notify('elsewhere', 'not listened to');
             SELECT pg_notify('mixed \"case\"', 'case differs: another channel');
             SELECT pg_notify('Mixed \"Case\"', '');
             SELECT pg_notify('jobs', 'last');",
        )
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, notification("jobs", "first"));
    assert_eq!(
        next(&mut listener).await,
        notification("Mixed \"Case\"", "")
    );
    assert_eq!(next(&mut listener).await, notification("jobs", "last"));
}

#[tokio::test]
async fn a_terminated_connection_reconnects_and_says_so() {
    let db = TestDb::new().await;
    let mut config = db.config();
    config.application_name("listen_reconnect_test");
    let (_stop, shutdown) = watch::channel(false);
    let mut listener =
        Listener::spawn(config, NoTls, &["jobs"], ListenOptions::default(), shutdown);
    assert_eq!(next(&mut listener).await, ListenEvent::Listening);

    let client = db.client().await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'listen_reconnect_test'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the listener's connection was found");
    assert_eq!(next(&mut listener).await, ListenEvent::Reconnected);

    // Listening again on the new connection.
    client
        .batch_execute("SELECT pg_notify('jobs', 'after')")
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, notification("jobs", "after"));
}

#[tokio::test]
async fn a_slow_consumer_is_told_how_many_it_missed() {
    let db = TestDb::new().await;
    let (_stop, shutdown) = watch::channel(false);
    let options = ListenOptions {
        buffer: 2,
        ..ListenOptions::default()
    };
    let mut listener = Listener::spawn(db.config(), NoTls, &["burst"], options, shutdown);
    assert_eq!(next(&mut listener).await, ListenEvent::Listening);

    // 200 notifications at one commit; nobody reads until they are all sent.
    const SENT: u64 = 200;
    db.client()
        .await
        .batch_execute(&format!(
            "SELECT pg_notify('burst', i::text) FROM generate_series(1, {SENT}) i"
        ))
        .await
        .unwrap();

    // Each one is either delivered, in order, or counted in a Lagged.
    let (mut delivered, mut missed, mut last) = (0u64, 0u64, 0u64);
    while delivered + missed < SENT {
        match next(&mut listener).await {
            ListenEvent::Notification(n) => {
                let value: u64 = n.payload.parse().unwrap();
                assert!(value > last, "{value} after {last}: out of order");
                last = value;
                delivered += 1;
            }
            ListenEvent::Lagged { missed: m } => missed += m,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered + missed, SENT, "nothing counted twice");
    // Still listening normally afterwards.
    db.client()
        .await
        .batch_execute("SELECT pg_notify('burst', 'again')")
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, notification("burst", "again"));
}

#[tokio::test]
async fn shutdown_ends_the_listener() {
    let db = TestDb::new().await;
    let mut config = db.config();
    config.application_name("listen_shutdown_test");
    let (stop, shutdown) = watch::channel(false);
    let mut listener =
        Listener::spawn(config, NoTls, &["jobs"], ListenOptions::default(), shutdown);
    assert_eq!(next(&mut listener).await, ListenEvent::Listening);

    stop.send(true).unwrap();
    let end = timeout(DEADLINE, listener.recv())
        .await
        .expect("ends in time");
    assert_eq!(end, None, "no event after shutdown");
    timeout(DEADLINE, listener.join()).await.expect("task ends");

    // Its connection is closed: wait for the backend to go (it exits asynchronously).
    let client = db.client().await;
    let gone = async {
        loop {
            let left: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = 'listen_shutdown_test'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(DEADLINE, gone)
        .await
        .expect("the listener's connection closes");
}

#[tokio::test]
async fn a_listener_started_before_the_server_is_reachable_keeps_trying() {
    // A port nothing listens on: connection refused, retried with backoff, until shutdown.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("nobody")
        .dbname("none");
    let (stop, shutdown) = watch::channel(false);
    let options = ListenOptions {
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ListenOptions::default()
    };
    let mut listener = Listener::spawn(config, NoTls, &["jobs"], options, shutdown);
    // Nothing to report while it cannot connect...
    assert!(
        timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "no event without a connection"
    );
    // ...and it still stops when told to.
    stop.send(true).unwrap();
    let end = timeout(DEADLINE, listener.recv())
        .await
        .expect("ends in time");
    assert_eq!(end, None);
}
