//! `security.*`: per-IP, per-user and per-key rate limits, CSRF, CORS.

use serde::{Deserialize, Serialize};

use super::Dur;

/// `security.*`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Per-IP request limit per minute.
    pub rate_limit: SecurityRateLimit,
    /// Double-submit-cookie CSRF protection for cookie sessions.
    pub csrf: CsrfConfig,
    /// Cross-origin requests from browsers.
    pub cors: CorsConfig,
}

/// `security.cors.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Whether CORS headers are sent at all.
    pub enabled: bool,
    /// Allowed origins (`https://app.example.com`), or `*`.
    pub allowed_origins: Vec<String>,
    /// Methods allowed in preflight answers.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in preflight answers.
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials` (never with `*`).
    pub allow_credentials: bool,
    /// How long browsers cache a preflight answer.
    pub max_age: Dur,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: true,
            allowed_origins: vec!["*".into()],
            allowed_methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .map(String::from)
                .to_vec(),
            allowed_headers: [
                "authorization",
                "apikey",
                "content-type",
                "x-client-info",
                "x-supabase-api-version",
                "x-request-id",
                "x-service-key",
                "x-csrf-token",
                "prefer",
                "range",
                "range-unit",
                "accept-profile",
                "content-profile",
            ]
            .map(String::from)
            .to_vec(),
            allow_credentials: false,
            max_age: Dur::secs(3600),
        }
    }
}

/// `security.rate_limit.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityRateLimit {
    /// Whether rate limiting applies.
    pub enabled: bool,
    /// Requests per minute per IP (the runbook's global limit). Health, readiness, metrics
    /// and WebSocket upgrades are exempt (probes, scrapes; sockets have their own limits).
    pub requests_per_minute: u32,
    /// Login attempts per (IP, account) per `login_window`.
    pub login_attempts: u32,
    /// Window of `login_attempts`.
    pub login_window: Dur,
    /// Requests per minute per authenticated user.
    pub per_user_per_minute: u32,
    /// Requests per minute per service key.
    pub per_service_key_per_minute: u32,
}

impl Default for SecurityRateLimit {
    fn default() -> Self {
        SecurityRateLimit {
            enabled: true,
            requests_per_minute: 100,
            login_attempts: 5,
            login_window: Dur::secs(15 * 60),
            per_user_per_minute: 500,
            per_service_key_per_minute: 1000,
        }
    }
}

/// `security.csrf.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfConfig {
    /// Off by default: API clients send bearer tokens, not cookies.
    pub enabled: bool,
    /// Send the CSRF cookie with `Secure` (HTTPS only).
    pub cookie_secure: bool,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            enabled: false,
            cookie_secure: true,
        }
    }
}
