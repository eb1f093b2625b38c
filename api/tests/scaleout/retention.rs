//! An instance that cannot prove it saw every entry of the changes stream closes its
//! sockets with a reason rather than skip events silently.

use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::{Redis, start_instances};
use crate::support::{Ws, WsEvent};

/// Entries missing from the stream (as when a reader fell behind the bounded length and
/// they were trimmed): the stream's numbering jumps. Every socket is closed with 4010 and
/// the reason; a socket opened afterwards gets the next changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_in_the_changes_stream_closes_sockets_with_a_reason() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.notes (id bigserial PRIMARY KEY, body text);
             GRANT SELECT ON public.notes TO anon;",
        )
        .await
        .unwrap();
    let redis = Redis::start().await;
    let instances = start_instances(&db, &redis, 1).await;
    let addr = instances[0].0.addr.clone();
    let mut ws = Ws::connect(&addr, None).await;
    assert_eq!(
        ws.subscribe("notes", json!({"table": "notes"})).await["type"],
        "ack"
    );
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('first')")
        .await
        .unwrap();
    let f = ws.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["body"], "first");

    // Five entries this instance never read (trimmed before it got to them).
    let key = format!("fluxbase:slot_{}:changes:seq", db.name());
    assert_eq!(redis.command(&["INCRBY", &key, "5"]).await, ":6");
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('after the hole')")
        .await
        .unwrap();
    loop {
        match ws.next_event().await {
            WsEvent::Closed(Some((code, reason))) => {
                assert_eq!(code, 4010, "{reason}");
                assert!(reason.contains("fell behind"), "{reason}");
                break;
            }
            WsEvent::Closed(None) => panic!("closed without a reason"),
            // The change after the hole may or may not be queued before the close.
            WsEvent::Frame(_) => {}
        }
    }
    // The instance goes on from there.
    let mut again = Ws::connect(&addr, None).await;
    assert_eq!(
        again.subscribe("notes", json!({"table": "notes"})).await["type"],
        "ack"
    );
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('next')")
        .await
        .unwrap();
    let f = again.frame_of("postgres_changes").await;
    assert_eq!(f["payload"]["record"]["body"], "next");
}
