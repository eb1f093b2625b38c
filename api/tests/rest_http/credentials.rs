//! Who a request runs as, over HTTP: anon, two signed-up users under owner-only RLS (each
//! sees and changes only their rows), a service_role key (sees all), and a user whose
//! session ended (refused at once, on reads and writes, with nothing written) — the session
//! check folded into the request's own transaction.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_under_owner_rls_anon_and_service_role() {
    let api = Api::start(&[]).await;
    let alice = api.sign_up("alice@example.com").await;
    let bob = api.sign_up("bob@example.com").await;
    let (a, b) = (alice.bearer(), bob.bearer());

    // Each inserts through a different mount and credential header; user_id defaults to
    // auth.uid().
    let got = api
        .json(
            "POST",
            "/rest/v1/todos",
            &[("Authorization", &a), ("Prefer", "return=representation")],
            json!([{"title": "a1"}, {"title": "a2"}]),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    assert!(
        got.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user_id"] == alice.id.as_str())
    );
    let got = api
        .json(
            "POST",
            "/api/v1/tables/todos",
            // supabase-js sends the anon key as `apikey` and the user's token as Bearer.
            &[("apikey", &anon_token()), ("Authorization", &b)],
            json!({"title": "b1"}),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    // A user may not write a row for another.
    let got = api
        .json(
            "POST",
            "/rest/v1/todos",
            &[("Authorization", &b)],
            json!({"title": "forged", "user_id": alice.id}),
        )
        .await;
    assert_postgrest_error(&got, 403, "42501", "row-level security");

    let titles = |got: &crate::support::Response| -> Vec<String> {
        got.json()
            .as_array()
            .unwrap_or_else(|| panic!("{}", got.body))
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let got = api
        .get(
            "/rest/v1/todos?select=title&order=title",
            &[("Authorization", &a)],
        )
        .await;
    assert_eq!(titles(&got), ["a1", "a2"]);
    let got = api
        .get(
            "/api/v1/tables/public/todos?select=title",
            &[("Authorization", &b)],
        )
        .await;
    assert_eq!(titles(&got), ["b1"]);
    // Service role sees all; anon is refused by the grants.
    let service = format!("Bearer {}", service_token());
    let got = api
        .get(
            "/rest/v1/todos?select=title&order=title",
            &[("Authorization", &service)],
        )
        .await;
    assert_eq!(titles(&got), ["a1", "a2", "b1"]);
    let got = api
        .get("/rest/v1/todos", &[("apikey", &anon_token())])
        .await;
    assert_postgrest_error(&got, 401, "42501", "permission denied");
    // The query string is never a credential: `apikey=`/`token=` there are filters on
    // columns (that do not exist here), and the request stays anon.
    for name in ["apikey", "token"] {
        let got = api
            .get(
                &format!("/rest/v1/todos?{name}=eq.{}", service_token()),
                &[],
            )
            .await;
        assert_ne!(got.status, 200, "{}", got.body);
        let got = api
            .get(
                &format!("/rest/v1/films?{name}=eq.{}", service_token()),
                &[],
            )
            .await;
        assert_postgrest_error(&got, 400, "42703", name);
    }

    // Bob's PATCH and DELETE reach only his rows.
    let got = api
        .json(
            "PATCH",
            "/rest/v1/todos?title=like.*",
            &[("Authorization", &b), ("Prefer", "count=exact")],
            json!({"done": true}),
        )
        .await;
    assert_eq!(got.status, 204, "{}", got.body);
    assert_eq!(got.header("content-range"), Some("0-0/1"));
    let got = api
        .req(
            "DELETE",
            "/rest/v1/todos?title=eq.a1",
            &[("Authorization", &b)],
            "",
        )
        .await;
    assert_eq!(got.status, 204, "{}", got.body);
    assert_eq!(
        api.count("SELECT count(*) FROM public.todos WHERE done")
            .await,
        1
    );
    assert_eq!(api.count("SELECT count(*) FROM public.todos").await, 3);
    // Alice deletes her own by key.
    let id = api
        .count("SELECT id FROM public.todos WHERE title = 'a1'")
        .await;
    let got = api
        .req(
            "DELETE",
            &format!("/api/v1/tables/public/todos/{id}"),
            &[("Authorization", &a)],
            "",
        )
        .await;
    assert_eq!(got.status, 204, "{}", got.body);
    assert_eq!(api.count("SELECT count(*) FROM public.todos").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_is_refused_at_once_on_reads_and_writes() {
    let api = Api::start(&[]).await;
    let alice = api.sign_up("alice@example.com").await;
    let bob = api.sign_up("bob@example.com").await;
    let (a, b) = (alice.bearer(), bob.bearer());
    let got = api
        .json(
            "POST",
            "/rest/v1/todos",
            &[("Authorization", &a)],
            json!({"title": "mine"}),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.body);
    let got = api.get("/rest/v1/todos", &[("Authorization", &a)]).await;
    assert_eq!(got.json().as_array().unwrap().len(), 1);

    // Alice signs out: her access token is refused from the next request on, on every
    // REST route and method, and nothing it asks is done.
    let got = api
        .req("POST", "/api/v1/auth/signout", &[("Authorization", &a)], "")
        .await;
    assert_eq!(got.status, 204, "{}", got.body);
    let got = api.get("/rest/v1/todos", &[("Authorization", &a)]).await;
    assert_postgrest_error(&got, 401, "PGRST301", "session");
    assert_eq!(got.json()["details"], "session_not_found");
    let got = api
        .get("/api/v1/tables/todos", &[("Authorization", &a)])
        .await;
    assert_fluxbase_error(&got, 401, "session_not_found", "session");
    let writes = [
        ("POST", "/rest/v1/todos", r#"{"title": "after"}"#),
        ("PATCH", "/rest/v1/todos?id=gt.0", r#"{"title": "after"}"#),
        ("DELETE", "/rest/v1/todos?id=gt.0", ""),
        ("POST", "/rest/v1/rpc/touch", "{}"),
        ("GET", "/rest/v1/rpc/whoami", ""),
    ];
    for (method, path, body) in writes {
        let headers = [
            ("Authorization", a.as_str()),
            ("Content-Type", "application/json"),
            ("Prefer", "return=representation"),
        ];
        let got = api.req(method, path, &headers, body).await;
        assert_postgrest_error(&got, 401, "PGRST301", "session");
    }
    assert_eq!(
        api.count("SELECT count(*) FROM public.todos WHERE title = 'mine'")
            .await,
        1,
        "the refused writes changed nothing"
    );
    // Writes that keep their transaction open (a single object asked for) too.
    let got = api
        .json(
            "POST",
            "/rest/v1/todos",
            &[
                ("Authorization", &a),
                ("Accept", "application/vnd.pgrst.object+json"),
                ("Prefer", "return=representation"),
            ],
            json!({"title": "after"}),
        )
        .await;
    assert_postgrest_error(&got, 401, "PGRST301", "session");
    assert_eq!(api.count("SELECT count(*) FROM public.todos").await, 1);

    // Bob is unaffected — until the runbook's SQL ends his sessions. With a time zone the
    // role switch is another statement, with the same probe.
    let zoned = [
        ("Authorization", b.as_str()),
        ("Prefer", "timezone=Asia/Tokyo"),
    ];
    let got = api.get("/rest/v1/todos", &[("Authorization", &b)]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let got = api.get("/rest/v1/todos", &zoned).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.header("preference-applied"),
        Some("timezone=Asia/Tokyo"),
        "{}",
        got.body
    );
    api.sql(&format!(
        "DELETE FROM auth.sessions WHERE user_id = '{}'",
        bob.id
    ))
    .await;
    let got = api.get("/rest/v1/todos", &[("Authorization", &b)]).await;
    assert_postgrest_error(&got, 401, "PGRST301", "session");
    let got = api.get("/rest/v1/todos", &zoned).await;
    assert_postgrest_error(&got, 401, "PGRST301", "session");
}
