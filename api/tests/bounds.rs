//! Bounds of issue 11, each against a real server and PostgreSQL: a stalled request body
//! (item 8), text PostgreSQL cannot store (item 9), `GET /realtime` without an upgrade
//! (item 10), and the password hashing bound (item 11).

use std::time::Duration;

use fluxbase_migrations::test_utils::TestDb;

use crate::support::http::exchange;
use crate::support::plain_server;

/// Item 8: `Content-Length: 4000`, nine bytes, then silence. The body is cut after
/// `server.body_timeout` with a JSON 408, and the connection is closed (the read below only
/// ends when the server closes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_with_a_json_408_and_its_connection_closed() {
    let db = TestDb::new().await;
    let (server, _dir) = plain_server(&db, &[("FLUXBASE_SERVER_BODY_TIMEOUT", "1s")]).await;
    let head = format!(
        "POST /api/v1/auth/signup HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 4000",
        server.addr
    );
    let res = exchange(
        &server.addr,
        &head,
        br#"{"email":"#,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(res.status, 408, "{res:?}");
    let body = res.json();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.body_timeout"),
        "{body}"
    );
    assert_eq!(res.header("connection"), Some("close"), "{}", res.headers);

    // A body that keeps coming (slowly, within the timeout between chunks) is read whole.
    let head = format!(
        "POST /api/v1/auth/signup HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 2",
        server.addr
    );
    let res = exchange(&server.addr, &head, b"{}", Duration::from_secs(20)).await;
    assert_eq!(res.status, 400, "{res:?}");
    assert!(res.body.contains("missing field"), "{}", res.body);
}
