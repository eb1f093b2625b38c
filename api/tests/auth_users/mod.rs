//! Application-user auth (`/api/v1/auth/*`) and service keys (`/api/v1/admin/service-keys`)
//! in-process over a real database, the runbook's two SQL procedures, bad input, and
//! `fluxbase keys` as a user runs it.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use fluxbase_auth::JwtKeys;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TEST_SECRET, TempDir, TestApp, assert_error, bearer, fluxbase, keys, post, raw, token,
};

fn creds(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

async fn audit_actions(app: &TestApp, actor: Uuid) -> Vec<String> {
    let client = app.db().client().await;
    client
        .query(
            "SELECT action FROM auth.audit_log_entries WHERE actor_id = $1 ORDER BY id",
            &[&actor],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn has_attempt(metrics: &str, result: &str, reason: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("fluxbase_auth_attempts_total{")
            && l.contains(&format!("result=\"{result}\""))
            && l.contains(&format!("reason=\"{reason}\""))
    })
}

mod bad_input;
mod binary;
mod flows;
mod service_keys;
