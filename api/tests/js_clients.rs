//! The real `@supabase/supabase-js` under Node.js against the running binary (installed by
//! `deploy/scripts/install-deps.sh js`).

use serde_json::json;

use fluxbase_migrations::test_utils::TestDb;

use crate::support::{js, plain_server, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supabase_client_loads_and_reaches_the_server() {
    let db = TestDb::new().await;
    let (server, _dir) = plain_server(&db, &[]).await;
    let anon = token(json!({"role": "anon"}));
    let url = format!("http://{}", server.addr);
    let got = js::run("smoke.mjs", &[("FLUXBASE_URL", &url), ("ANON_KEY", &anon)]).await;
    assert_eq!(got["health"]["status"], "healthy", "{got}");
    assert_eq!(got["client"], "function", "{got}");
    assert!(got["node"].as_str().unwrap().starts_with("22."), "{got}");
}
