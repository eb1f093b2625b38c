//! The real `@supabase/postgrest-js` (through supabase-js's `createClient` with a
//! signed-in user's token, and as a bare `PostgrestClient`) against the running binary:
//! `api/tests/js/postgrest.mjs` runs the operations, this test judges their outcomes.

use serde_json::{Value, json};

use super::*;
use crate::support::js;

/// An operation's `data`, after checking it had no error and the status.
#[track_caller]
fn data(out: &Value, name: &str, status: u16) -> Value {
    let op = &out[name];
    assert!(op["error"].is_null(), "{name}: {op}");
    assert_eq!(op["status"], status, "{name}: {op}");
    op["data"].clone()
}

/// An operation's error object, after checking its status and code.
#[track_caller]
fn error(out: &Value, name: &str, status: u16, code: &str) -> Value {
    let op = &out[name];
    assert_eq!(op["status"], status, "{name}: {op}");
    let err = op["error"].clone();
    assert_eq!(err["code"], code, "{name}: {op}");
    for key in ["message", "details", "hint"] {
        assert!(err.get(key).is_some(), "{name}: no {key} in {err}");
    }
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_js_and_supabase_js_work_unchanged() {
    let api = Api::start(&[]).await;
    let alice = api.sign_up("alice@example.com").await;
    let bob = api.sign_up("bob@example.com").await;
    let url = format!("http://{}", api.server.addr);
    let out = js::run(
        "postgrest.mjs",
        &[
            ("FLUXBASE_URL", &url),
            ("ANON_KEY", &anon_token()),
            ("ALICE_TOKEN", &alice.token),
            ("BOB_TOKEN", &bob.token),
            ("SERVICE_TOKEN", &service_token()),
        ],
    )
    .await;

    // Reads.
    assert_eq!(
        data(&out, "filters", 200),
        json!([{"id": 2, "title": "Jeanne Dielman"}, {"id": 3, "title": "News from Home"}])
    );
    assert_eq!(data(&out, "in_ilike", 200), json!([{"id": 4}]));
    assert_eq!(data(&out, "or", 200), json!([{"id": 1}, {"id": 4}]));
    assert_eq!(data(&out, "is_not", 200), json!([{"id": 3}]));
    assert_eq!(data(&out, "contains", 200), json!([{"id": 1}, {"id": 2}]));
    assert_eq!(data(&out, "fts", 200), json!([{"id": 2}]));
    assert_eq!(data(&out, "match", 200), json!([{"id": 3}]));
    assert_eq!(
        data(&out, "embed_to_one", 200),
        json!({"title": "Cléo from 5 to 7", "directors": {"name": "Agnès Varda"}})
    );
    assert_eq!(
        data(&out, "embed_to_many", 200),
        json!([{"id": 1, "reviews": [{"stars": 4}, {"stars": 5}]}])
    );
    assert_eq!(
        data(&out, "embed_many_to_many", 200),
        json!([{"title": "Vagabond", "actors": [{"name": "Sandrine Bonnaire"}]}])
    );
    assert_eq!(
        data(&out, "embed_two_levels", 200),
        json!([{"name": "Chantal Akerman", "films": [
            {"title": "Jeanne Dielman", "reviews": [{"stars": 5}]},
            {"title": "News from Home", "reviews": []}
        ]}])
    );
    assert_eq!(
        data(&out, "embed_inner_filtered", 200),
        json!([{"id": 1, "reviews": [{"stars": 5}]}, {"id": 2, "reviews": [{"stars": 5}]}])
    );
    assert_eq!(
        data(&out, "order_range", 200),
        json!([{"id": 3}, {"id": 2}])
    );
    assert_eq!(
        data(&out, "count_exact", 206),
        json!([{"id": 1}, {"id": 2}])
    );
    assert_eq!(out["count_exact"]["count"], 5);
    data(&out, "count_head", 200);
    assert_eq!(out["count_head"]["count"], 5);
    assert_eq!(data(&out, "single", 200), json!({"id": 2}));
    let err = error(&out, "single_of_many", 406, "PGRST116");
    assert!(err["details"].as_str().unwrap().contains("5 rows"), "{err}");
    assert_eq!(data(&out, "maybe_single_none", 200), Value::Null);
    assert_eq!(data(&out, "maybe_single_one", 200), json!({"id": 3}));
    assert_eq!(
        data(&out, "schema", 200),
        json!([{"id": 1, "body": "in api"}])
    );
    assert_eq!(data(&out, "csv", 200), json!("id,year\n1,1962\n2,1975"));

    // Writes, under owner-only RLS.
    let one = data(&out, "insert_one", 201);
    assert_eq!(one["title"], "js 1");
    assert_eq!(one["user_id"], alice.id.as_str());
    let first = one["id"].clone();
    assert_eq!(
        data(&out, "insert_many", 201),
        json!([{"title": "js 2"}, {"title": "js 3"}])
    );
    assert_eq!(
        data(&out, "upsert", 200),
        json!([{"id": first, "title": "js 1 upserted"}])
    );
    assert_eq!(data(&out, "upsert_ignore", 201), json!([]));
    assert_eq!(
        data(&out, "update", 200),
        json!([{"title": "js 2", "done": true}])
    );
    assert_eq!(data(&out, "delete", 200), json!([{"title": "js 3"}]));
    assert_eq!(
        data(&out, "alice_sees", 200),
        json!([{"title": "js 1 upserted"}, {"title": "js 2"}])
    );
    assert_eq!(data(&out, "bob_sees_before", 200), json!([]));
    assert_eq!(data(&out, "bob_insert", 201), json!([{"title": "bob js"}]));
    assert_eq!(data(&out, "bob_update_alices", 200), json!([]));
    assert_eq!(
        data(&out, "service_sees", 200),
        json!([{"title": "bob js"}, {"title": "js 1 upserted"}, {"title": "js 2"}])
    );

    // RPC.
    assert_eq!(data(&out, "rpc_scalar", 200), json!(3));
    assert_eq!(data(&out, "rpc_get", 200), json!("hello js"));
    assert_eq!(data(&out, "rpc_set", 200), json!([{"id": 3}, {"id": 4}]));
    assert_eq!(
        data(&out, "rpc_caller", 200),
        json!({"role": "authenticated", "uid": alice.id})
    );
    assert_eq!(out["rpc_count"]["count"], 4, "{}", out["rpc_count"]);

    // Errors, with PostgREST's code, message, details and hint.
    let err = error(&out, "error_unknown_table", 404, "PGRST205");
    assert!(
        err["message"].as_str().unwrap().contains("public.nope"),
        "{err}"
    );
    let err = error(&out, "error_type", 400, "22P02");
    assert!(
        err["message"].as_str().unwrap().contains("\"abc\""),
        "{err}"
    );
    let err = error(&out, "error_unique", 409, "23505");
    assert_eq!(err["details"], "Key (id)=(1) already exists.", "{err}");
    let err = error(&out, "error_raise", 400, "P0001");
    assert_eq!(
        (&err["message"], &err["hint"]),
        (&json!("boom"), &json!("a hint"))
    );
    let err = error(&out, "error_rls", 403, "42501");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("row-level security"),
        "{err}"
    );
    let err = error(&out, "error_unknown_function", 404, "PGRST202");
    assert!(
        err["message"].as_str().unwrap().contains("public.nope"),
        "{err}"
    );

    // What the clients did is in the database.
    assert_eq!(api.count("SELECT count(*) FROM public.todos").await, 3);
}
