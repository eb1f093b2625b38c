//! Refusals of the command line: the exit code is 2 and the message names the flag.

use crate::harness;

fn refused(args: &[&str], flag: &str) {
    let out = harness(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(flag),
        "{args:?} should name {flag}: {stderr}"
    );
}

#[test]
fn rows_per_commit_is_bounded_and_only_where_rows_are_written() {
    let db = "--database-url=postgres://u@127.0.0.1:1/db";
    let secret = "--jwt-secret=s";
    refused(
        &["realtime-owner", db, secret, "--rows-per-commit", "0"],
        "--rows-per-commit",
    );
    refused(
        &["realtime-public", db, secret, "--rows-per-commit", "10001"],
        "--rows-per-commit",
    );
    refused(
        &["connect-storm", db, secret, "--rows-per-commit", "5"],
        "--rows-per-commit",
    );
    refused(
        &[
            "rest",
            "--case",
            "get-by-key",
            db,
            secret,
            "--rows-per-commit",
            "5",
        ],
        "--rows-per-commit",
    );
    // 1,000 rows per transaction at 100 rows/s over 4 writers: one commit every 40 s.
    refused(
        &[
            "realtime-owner",
            db,
            secret,
            "--rows-per-commit",
            "1000",
            "--duration",
            "10",
        ],
        "--rows-per-commit",
    );
    refused(&["rest", "--rows-per-commit", "abc"], "--rows-per-commit");
}

#[test]
fn rest_baselines_need_a_case() {
    let db = "--database-url=postgres://u@127.0.0.1:1/db";
    refused(
        &["rest", db, "--baseline", "sql"],
        "--baseline sql and http-floor need --case",
    );
    refused(
        &["rest", db, "--baseline", "http-floor"],
        "--baseline sql and http-floor need --case",
    );
    // The floor verifies the users' tokens: it needs the secret they are signed with.
    refused(
        &[
            "rest",
            db,
            "--case",
            "get-by-key",
            "--baseline",
            "http-floor",
        ],
        "jwt_secret",
    );
    refused(
        &["rest", db, "--case", "insert", "--path", "/api/v1/x"],
        "--path and --case",
    );
    refused(&["ws-ceiling", "--case", "insert"], "--case");
    refused(&["rest", db, "--sessions"], "--sessions needs --case");
}
