//! The `rest.*` keys in force in the binary: `rest.max_rows` caps every response,
//! `rest.statement_timeout` and its per-role overrides end long statements with 504, and
//! `rest.schemas` refuses the schemas that are never exposed.

use serde_json::json;

use super::*;
use crate::support::{TempDir, fluxbase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rows_and_statement_timeouts_per_role() {
    let api = Api::start(&[
        ("FLUXBASE_REST_MAX_ROWS", "2"),
        ("FLUXBASE_REST_STATEMENT_TIMEOUT", "5s"),
        ("FLUXBASE_REST_ROLE_STATEMENT_TIMEOUTS", "anon=200ms"),
    ])
    .await;
    let got = api
        .get(
            "/rest/v1/films?select=id&order=id",
            &[("Prefer", "count=exact")],
        )
        .await;
    assert_eq!(got.json(), json!([{"id": 1}, {"id": 2}]), "{}", got.body);
    assert_eq!(got.header("content-range"), Some("0-1/5"));

    // anon: 200 ms; a signed-in user: the 5 s default.
    let got = api
        .json("POST", "/rest/v1/rpc/nap", &[], json!({"seconds": 1}))
        .await;
    assert_postgrest_error(&got, 504, "57014", "statement timeout");
    let got = api
        .json("POST", "/api/v1/rpc/nap", &[], json!({"seconds": 1}))
        .await;
    assert_fluxbase_error(&got, 504, "timeout", "SQLSTATE 57014");
    let user = api.sign_up("sleeper@example.com").await;
    let got = api
        .json(
            "POST",
            "/rest/v1/rpc/nap",
            &[("Authorization", &user.bearer())],
            json!({"seconds": 0.5}),
        )
        .await;
    assert_eq!(got.status, 204, "{}", got.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_refuses_schemas_that_are_never_exposed() {
    let dir = TempDir::new();
    let out = fluxbase(&dir.0)
        .arg("--config-test")
        .env("FLUXBASE_REST_SCHEMAS", "public,auth")
        .env("FLUXBASE_REST_ROLE_STATEMENT_TIMEOUTS", "anon")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("rest.schemas") && text.contains("\"auth\" is never exposed"),
        "{text}"
    );
    assert!(
        text.contains("rest.role_statement_timeouts")
            && text.contains("role=duration")
            && text.contains("environment variable FLUXBASE_REST_ROLE_STATEMENT_TIMEOUTS"),
        "{text}"
    );
}
