//! Test support: [`TestApp`] (the app in-process, as the binary builds it, over a fresh
//! database), the binary as a user runs it ([`process`]), one raw HTTP client ([`http`]), a
//! WebSocket client ([`ws`]), a Phoenix-channel client ([`phoenix`]), the real Supabase
//! JavaScript clients ([`js`]), and tokens signed with the test secret.

mod app;
pub mod http;
pub mod js;
pub mod phoenix;
pub mod process;
pub mod ws;

use std::time::Duration;

pub use app::{Reply, TestApp, assert_error, bearer, post, raw};
pub use http::{Response, http, request};
pub use process::{Server, TempDir, fluxbase, plain_server, realtime_server};
pub use ws::{Ws, WsEvent};

/// How long any awaited event in these tests may take before the test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The JWT secret of test servers and apps.
pub const TEST_SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256-0123456789";

/// The keys of [`TEST_SECRET`].
pub fn keys() -> fluxbase_auth::JwtKeys {
    fluxbase_auth::JwtKeys::hs256(TEST_SECRET.as_bytes())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    fluxbase_auth::tokens::now_secs()
}

/// A signed token for `claims` (exp one hour ahead unless given).
pub fn token(claims: serde_json::Value) -> String {
    let mut map = claims.as_object().cloned().unwrap_or_default();
    map.entry("exp")
        .or_insert_with(|| serde_json::json!(now() + 3600));
    keys().sign(&map)
}
