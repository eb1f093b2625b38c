//! `rest --baseline http-floor` on a real, migrated PostgreSQL: the floor answers a user's
//! own row and nothing else, refuses what the server refuses, and a whole run of each case
//! through the harness binary is clean, with the child's CPU sampled as the server's.

use std::path::Path;

use fluxbase_loadtest::config::RestCase;
use fluxbase_loadtest::floor::Setup;
use fluxbase_loadtest::floor::child::FloorServer;
use fluxbase_loadtest::http::HttpConnection;
use fluxbase_loadtest::scenario::rest::Shape;
use fluxbase_loadtest::target::Target;
use fluxbase_loadtest::todos::TodoTables;
use fluxbase_loadtest::token::TokenMinter;
use fluxbase_migrations::test_utils::TestDb;
use serde_json::Value;
use uuid::Uuid;

use crate::{ReportPath, harness};

const SECRET: &str = "http-floor-test-secret-of-32-bytes!";

/// A table suffix no other test uses.
fn suffix() -> String {
    format!("f{:08x}", rand::random::<u32>())
}

#[tokio::test(flavor = "multi_thread")]
async fn floor_answers_only_the_callers_row_and_refuses_what_the_server_refuses() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let tables = TodoTables::new(&suffix());
    tables.create(&client, &users, 30).await.unwrap();
    let shape = Shape {
        case: RestCase::GetByKey,
        tables: tables.clone(),
        users: 3,
        rows: 30,
        rows_per_request: 1,
    };
    let setup = Setup {
        database_url: db.url(),
        jwt_secret: SECRET.to_owned(),
        shape: shape.clone(),
        sessions: false,
        pool: 4,
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_fluxbase-loadtest"));
    let server = FloorServer::start(exe, &setup).await.unwrap();
    let mut http = HttpConnection::new(Target::parse(&format!("http://{}", server.addr)).unwrap());
    let token = TokenMinter::new(SECRET, 3600).user(users[1]).unwrap();
    let bearer = format!("Bearer {token}");
    let path = |query: &str| format!("/rest/v1/{}?{query}", tables.todos);
    let mut get = async |path: &str, authorization: Option<&str>| {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("Authorization", value))
            .into_iter()
            .collect();
        http.request_with("GET", path, &headers, None)
            .await
            .unwrap()
    };

    // User 1 (of 3) owns rows 2, 5, 8, …: row 5 comes back whole, as the server's array.
    let own = get(&path("id=eq.5"), Some(&bearer)).await;
    assert_eq!(own.status, 200);
    let rows: Vec<Value> = serde_json::from_slice(&own.body).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], 5);
    assert_eq!(rows[0]["user_id"], users[1].to_string());
    assert_eq!(shape.check_read(1, 5, &own.body), Ok(()));

    // Row 6 is user 2's: RLS hides it, and the harness counts the empty answer as an error.
    let other = get(&path("id=eq.6"), Some(&bearer)).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, b"[]");
    assert_eq!(
        shape.check_read(1, 6, &other.body),
        Err("body:rows_0_of_1".to_owned())
    );

    // Not an id, another filter, no token, a token of another secret, another table: each
    // refused with a non-2xx status, which the harness counts as an error.
    let foreign = TokenMinter::new("another-secret", 3600)
        .user(users[1])
        .unwrap();
    let refusals = [
        (path("id=eq.abc"), Some(bearer.clone()), 400),
        (path("id=eq.-1"), Some(bearer.clone()), 400),
        (path("title=eq.5"), Some(bearer.clone()), 400),
        (path("id=eq.5"), None, 401),
        (path("id=eq.5"), Some(format!("Bearer {foreign}")), 401),
        (
            format!("/rest/v1/{}?id=eq.5", tables.lists),
            Some(bearer.clone()),
            404,
        ),
    ];
    for (path, authorization, status) in refusals {
        let answer = get(&path, authorization.as_deref()).await;
        assert_eq!(answer.status, status, "{path}");
    }
    // The same connection still serves after the refusals.
    assert_eq!(get(&path("id=eq.8"), Some(&bearer)).await.status, 200);
    server.shutdown().await;
    tables.drop_tables(&client).await;
}

/// Runs `rest --baseline http-floor` through the harness binary and returns its report,
/// after checking it was clean (`--strict` exits 1 otherwise).
fn floor_run(db: &TestDb, suffix: &str, extra: &[&str]) -> Value {
    let report = ReportPath::new("floor");
    let url = db.url();
    let mut args = vec![
        "rest",
        "--baseline",
        "http-floor",
        "--database-url",
        &url,
        "--jwt-secret",
        SECRET,
        "--connections",
        "3",
        "--rows",
        "30",
        "--duration",
        "1",
        "--table-suffix",
        suffix,
        "--quiet",
        "--strict",
        "--out",
        report.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = harness(&args);
    assert!(
        out.status.success(),
        "{extra:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report.read();
    let requests = &report["requests"];
    let ok = requests["ok"].as_u64().unwrap();
    assert!(ok > 0, "{report:#}");
    assert_eq!(requests["sent"].as_u64(), Some(ok), "{report:#}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report:#}");
    // The requests went to the floor, a child process sampled apart from the harness.
    let (server, harness) = (&report["server"]["pid"], &report["harness"]["pid"]);
    assert!(server.as_u64().is_some() && server != harness, "{report:#}");
    assert!(report["server"]["cpu_avg_percent"].as_f64().unwrap() > 0.0);
    assert!(
        report["config"]["server_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(report["config"]["baseline"], "http-floor");
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn floor_runs_of_every_case_are_clean() {
    let db = TestDb::new().await;
    for extra in [
        &["--case", "get-by-key"][..],
        &["--case", "get-by-key", "--sessions"],
        &["--case", "get-by-key", "--api", "api-v1"],
        &["--case", "list-embed"],
    ] {
        let report = floor_run(&db, &suffix(), extra);
        let statuses = &report["requests"]["by_status"];
        assert_eq!(
            statuses.as_object().unwrap().len(),
            1,
            "{extra:?}: {statuses}"
        );
        assert!(
            statuses["200"].as_u64().unwrap() > 0,
            "{extra:?}: {statuses}"
        );
    }

    // Inserts: every 201 is a row in the table (kept to be counted; each run re-creates
    // its tables with 30 seeded rows).
    let client = db.client().await;
    let name = suffix();
    let count = format!("SELECT count(*) FROM public.lt_todos_{name}");
    for (rows, extra) in [
        (1, &["--case", "insert", "--keep-tables"][..]),
        (
            50,
            &[
                "--case",
                "insert",
                "--keep-tables",
                "--rows-per-commit",
                "50",
            ],
        ),
    ] {
        let report = floor_run(&db, &name, extra);
        let created = report["requests"]["by_status"]["201"].as_u64().unwrap();
        assert_eq!(Some(created), report["requests"]["ok"].as_u64());
        let inserted: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(inserted as u64, 30 + created * rows, "{extra:?}");
    }
    TodoTables::new(&name).drop_tables(&client).await;
}
