//! `auth.*` and `dashboard.*`: token signing and lifetimes, password rules and hashing
//! bounds, the dashboard lockout; and the auth service's settings built from them.

use serde::{Deserialize, Serialize};

use super::Dur;

/// Default `auth.access_token_ttl`: one hour, as Supabase.
pub const DEFAULT_ACCESS_TOKEN_TTL: Dur = Dur::secs(3600);
/// Default `auth.refresh_token_ttl`: 30 days of inactivity ends a session.
pub const DEFAULT_REFRESH_TOKEN_TTL: Dur = Dur::secs(30 * 24 * 3600);
/// Default `auth.password_min_length`.
pub const DEFAULT_PASSWORD_MIN_LENGTH: u32 = 8;
/// Default `auth.service_key_rotation_grace`: a rotated key stops at once.
pub const DEFAULT_SERVICE_KEY_ROTATION_GRACE: Dur = Dur::secs(0);
/// Default `auth.jwt_leeway`: clock skew tolerated on a token's `nbf`.
pub const DEFAULT_JWT_LEEWAY: Dur = Dur::secs(5);
/// Default `auth.password_hash_queue`: hashes waiting for a slot before new ones are shed.
pub const DEFAULT_PASSWORD_HASH_QUEUE: u32 = 8;

/// `auth.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret (`FLUXBASE_JWT_SECRET`). Required with a real database; generated and
    /// kept in `.fluxbase/jwt-secret` in embedded mode.
    pub jwt_secret: Option<String>,
    /// Lifetime of application-user access tokens.
    pub access_token_ttl: Dur,
    /// A refresh token unused for this long no longer refreshes (each use issues a new one).
    pub refresh_token_ttl: Dur,
    /// Shortest password accepted at signup and password change (in characters).
    pub password_min_length: u32,
    /// How long a service key keeps working after it is rotated.
    pub service_key_rotation_grace: Dur,
    /// How far in the future a token's `nbf` may be and still count as valid (clock skew
    /// of other issuers); `exp` gets no leeway.
    pub jwt_leeway: Dur,
    /// Password hashes (argon2id, 19 MiB each) running at once; 0: the number of cores.
    pub password_hash_concurrency: u32,
    /// Hashes waiting for a slot; beyond, sign-ins and sign-ups get 503 `overloaded` with
    /// `Retry-After`.
    pub password_hash_queue: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            password_min_length: DEFAULT_PASSWORD_MIN_LENGTH,
            service_key_rotation_grace: DEFAULT_SERVICE_KEY_ROTATION_GRACE,
            jwt_leeway: DEFAULT_JWT_LEEWAY,
            password_hash_concurrency: 0,
            password_hash_queue: DEFAULT_PASSWORD_HASH_QUEUE,
        }
    }
}

/// Default `dashboard.max_failed_logins`: consecutive failures that lock an account.
pub const DEFAULT_MAX_FAILED_LOGINS: u32 = 5;
/// Default `dashboard.lockout_duration`.
pub const DEFAULT_LOCKOUT_DURATION: Dur = Dur::secs(15 * 60);
/// Default `dashboard.access_token_ttl`: admin tokens are short-lived, refreshed often.
pub const DEFAULT_DASHBOARD_ACCESS_TOKEN_TTL: Dur = Dur::secs(15 * 60);
/// Default `dashboard.refresh_token_ttl`: an admin unseen for a day logs in again.
pub const DEFAULT_DASHBOARD_REFRESH_TOKEN_TTL: Dur = Dur::secs(24 * 3600);
/// Default `dashboard.password_min_length`: stricter than application users.
pub const DEFAULT_DASHBOARD_PASSWORD_MIN_LENGTH: u32 = 12;

/// `dashboard.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Consecutive failed logins (password or 2FA code) that lock an account.
    pub max_failed_logins: u32,
    /// How long a locked account refuses every login, even with the right password.
    pub lockout_duration: Dur,
    /// Lifetime of admin access tokens.
    pub access_token_ttl: Dur,
    /// A refresh token older than this no longer refreshes (each use issues a new one).
    pub refresh_token_ttl: Dur,
    /// Shortest admin password accepted (in characters).
    pub password_min_length: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            max_failed_logins: DEFAULT_MAX_FAILED_LOGINS,
            lockout_duration: DEFAULT_LOCKOUT_DURATION,
            access_token_ttl: DEFAULT_DASHBOARD_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_DASHBOARD_REFRESH_TOKEN_TTL,
            password_min_length: DEFAULT_DASHBOARD_PASSWORD_MIN_LENGTH,
        }
    }
}

impl super::Config {
    /// The auth service's settings from `auth.*` and `dashboard.*`.
    pub fn auth_settings(&self) -> fluxbase_auth::AuthSettings {
        let (auth, dash) = (&self.auth, &self.dashboard);
        fluxbase_auth::AuthSettings {
            app: fluxbase_auth::RealmSettings {
                access_token_ttl: auth.access_token_ttl.get(),
                refresh_token_ttl: auth.refresh_token_ttl.get(),
                password_min_length: auth.password_min_length as usize,
            },
            dashboard: fluxbase_auth::RealmSettings {
                access_token_ttl: dash.access_token_ttl.get(),
                refresh_token_ttl: dash.refresh_token_ttl.get(),
                password_min_length: dash.password_min_length as usize,
            },
            lockout: fluxbase_auth::LockoutSettings {
                max_failed_logins: dash.max_failed_logins,
                duration: dash.lockout_duration.get(),
            },
            service_key_rotation_grace: auth.service_key_rotation_grace.get(),
            jwt_leeway: auth.jwt_leeway.get(),
            hashing: fluxbase_auth::password::HashingSettings {
                concurrency: auth.password_hash_concurrency as usize,
                queue: auth.password_hash_queue as usize,
            },
        }
    }
}
