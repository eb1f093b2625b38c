//! The real `@supabase/supabase-js` realtime client (realtime-js over `ws`) against the
//! binary, once per protocol version: own changes, filters, other users' rows, broadcast,
//! presence and heartbeats (api/tests/js/realtime.mjs).

use fluxbase_migrations::test_utils::TestDb;
use serde_json::{Value, json};

use super::{SCHEMA, anon_key};
use crate::support::{js, realtime_server};

/// Runs the script with `vsn` and checks everything it saw.
async fn supabase_js_realtime(vsn: &str) {
    let db = TestDb::new().await;
    db.client().await.batch_execute(SCHEMA).await.unwrap();
    let (server, _dir) = realtime_server(&db, &[]).await;
    let url = format!("http://{}", server.addr);
    let anon = anon_key();
    let tag = vsn.replace('.', "");
    let got = js::run(
        "realtime.mjs",
        &[
            ("FLUXBASE_URL", url.as_str()),
            ("ANON_KEY", anon.as_str()),
            ("VSN", vsn),
            ("TAG", tag.as_str()),
        ],
    )
    .await;
    assert_eq!(got["vsn"], vsn);
    let ok = json!({"status": "SUBSCRIBED", "error": null});
    for (name, status) in got["subscribe"].as_object().unwrap() {
        assert_eq!(status, &ok, "{name}: {got}");
    }
    assert_eq!(got["bindingIds"], json!(["string"]), "{got}");
    let system = &got["aliceSystem"][0];
    assert_eq!(system["message"], "Subscribed to PostgreSQL", "{got}");
    assert_eq!(system["status"], "ok");
    assert_eq!(system["extension"], "postgres_changes");

    let ids = &got["ids"];
    let (alice, bob) = (&got["aliceId"], &got["bobId"]);
    let row = |id: &Value, title: &str, done: bool, user: &Value| json!({"id": id, "user_id": user, "title": title, "done": done});
    let change = |kind: &str, new: Value, old: Value| {
        json!({"eventType": kind, "table": "todos", "schema": "public", "new": new, "old": old,
               "errors": null, "commit_timestamp": "string"})
    };
    // Own INSERT/UPDATE/DELETE in commit order (full old rows: REPLICA IDENTITY FULL);
    // bob's row (committed before the marker) never arrived.
    assert_eq!(
        got["aliceAll"],
        json!([
            change(
                "INSERT",
                row(&ids["wanted"], "wanted", false, alice),
                json!({})
            ),
            change(
                "INSERT",
                row(&ids["other"], "other", false, alice),
                json!({})
            ),
            change(
                "UPDATE",
                row(&ids["other"], "other", true, alice),
                json!({"id": ids["other"]}),
            ),
            change(
                "DELETE",
                json!({}),
                row(&ids["wanted"], "wanted", false, alice)
            ),
            change(
                "INSERT",
                row(&ids["marker"], "wanted", false, alice),
                json!({})
            ),
        ]),
        "{got}"
    );
    // The filtered channel: only alice's rows titled "wanted" (bob's matched the filter but
    // is not hers).
    assert_eq!(
        got["aliceFiltered"],
        json!([
            change(
                "INSERT",
                row(&ids["wanted"], "wanted", false, alice),
                json!({})
            ),
            change(
                "INSERT",
                row(&ids["marker"], "wanted", false, alice),
                json!({})
            ),
        ]),
        "{got}"
    );
    // Bob's socket: his two rows, none of alice's (her marker came before his).
    assert_eq!(
        got["bobAll"],
        json!([
            change(
                "INSERT",
                row(&ids["bobRow"], "wanted", false, bob),
                json!({})
            ),
            change(
                "INSERT",
                row(&ids["bobMarker"], "bob-marker", false, bob),
                json!({})
            ),
        ]),
        "{got}"
    );

    // Broadcast, self off: each got the other's wave and the REST one, never its own.
    assert_eq!((&got["sendA"], &got["sendB"]), (&json!("ok"), &json!("ok")));
    assert_eq!(got["httpSend"], json!({"success": true}), "{got}");
    assert_eq!(
        got["aliceWaves"],
        json!([{"n": 2, "from": "bob"}, {"n": 3, "from": "rest"}]),
        "{got}"
    );
    assert_eq!(
        got["bobWaves"],
        json!([{"n": 1, "from": "alice"}, {"n": 3, "from": "rest"}]),
        "{got}"
    );
    // Self and ack on: acknowledged, and back to the sender.
    assert_eq!(got["ackedSend"], "ok");
    assert_eq!(got["selfWaves"], json!([{"me": true}]));

    // Presence: both sides synced both keys; alice saw bob's untrack.
    assert_eq!(
        (&got["trackA"], &got["trackB"], &got["untrackB"]),
        (&json!("ok"), &json!("ok"), &json!("ok"))
    );
    let sees = &got["aliceSees"];
    assert_eq!(sees["alice"][0]["name"], "Alice", "{got}");
    assert_eq!(sees["bob"][0]["name"], "Bob", "{got}");
    assert!(sees["bob"][0]["presence_ref"].is_string(), "{got}");
    assert_eq!(sees["bob"].as_array().unwrap().len(), 1, "{got}");

    assert_eq!(got["heartbeats"]["ok"], true, "{got}");
    assert_eq!(got["removed"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_js_realtime_works_unchanged_vsn_1() {
    supabase_js_realtime("1.0.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_js_realtime_works_unchanged_vsn_2() {
    supabase_js_realtime("2.0.0").await;
}
