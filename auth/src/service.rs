//! [`AuthService`]: the one auth service of both realms. It owns the pool handle, the
//! signing keys, the bounded password hasher, the session store, the email sender and the
//! audit sink; its flows live in [`crate::users`], [`crate::verification`],
//! [`crate::user_admin`], [`crate::admins`], [`crate::service_keys`] and
//! [`crate::identity`] (each an `impl AuthService` block).

use std::sync::Arc;
use std::time::Duration;

use fluxbase_migrations::Db;

use crate::audit::AuditSink;
use crate::mail::{EmailSettings, Mailer};
use crate::password::{HashingSettings, PasswordHasher, PasswordPolicy};
use crate::sessions::SessionStore;
use crate::totp::TwoFactorKeys;
use crate::{AuthError, JwtKeys, Realm};

/// Token lifetimes and password minimum of one realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealmSettings {
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// A refresh token older than this ends its session instead of rotating.
    pub refresh_token_ttl: Duration,
    /// Shortest new password, in characters.
    pub password_min_length: usize,
}

/// Dashboard lockout: `max_failed_logins` consecutive failures (password or 2FA code) lock
/// the account for `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failures that lock.
    pub max_failed_logins: u32,
    /// How long a lock lasts.
    pub duration: Duration,
}

/// Everything the service is configured with (the binary fills it from `auth.*` and
/// `dashboard.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Application users (`auth.*`).
    pub app: RealmSettings,
    /// Dashboard administrators (`dashboard.*`).
    pub dashboard: RealmSettings,
    /// `dashboard.max_failed_logins`, `dashboard.lockout_duration`.
    pub lockout: LockoutSettings,
    /// `auth.service_key_rotation_grace`: how long a rotated key keeps working.
    pub service_key_rotation_grace: Duration,
    /// `auth.jwt_leeway`: clock skew tolerated on `nbf`.
    pub jwt_leeway: Duration,
    /// `auth.password_hash_concurrency`, `auth.password_hash_queue`.
    pub hashing: HashingSettings,
    /// The email flow: confirmation, one-time tokens, links, the sender.
    pub email: EmailSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            app: RealmSettings {
                access_token_ttl: Duration::from_secs(3600),
                refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
                password_min_length: 8,
            },
            dashboard: RealmSettings {
                access_token_ttl: Duration::from_secs(15 * 60),
                refresh_token_ttl: Duration::from_secs(24 * 3600),
                password_min_length: 12,
            },
            lockout: LockoutSettings {
                max_failed_logins: 5,
                duration: Duration::from_secs(15 * 60),
            },
            service_key_rotation_grace: Duration::ZERO,
            jwt_leeway: crate::jwt::DEFAULT_LEEWAY,
            hashing: HashingSettings::default(),
            email: EmailSettings::default(),
        }
    }
}

impl AuthSettings {
    /// The settings of `realm`.
    pub fn realm(&self, realm: Realm) -> &RealmSettings {
        match realm {
            Realm::App => &self.app,
            Realm::Dashboard => &self.dashboard,
        }
    }
}

/// The auth service; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

/// What one service holds; behind an `Arc` so clones are cheap.
struct Inner {
    db: Db,
    keys: Option<JwtKeys>,
    two_factor: Option<TwoFactorKeys>,
    settings: AuthSettings,
    hasher: PasswordHasher,
    audit: AuditSink,
    sessions: SessionStore,
    mailer: Mailer,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("signing", &self.inner.keys.is_some())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// The service over `db`. Without a `secret` nothing can be signed or verified: every
    /// flow that needs keys answers [`AuthError::NotConfigured`] (in-process tests of other
    /// surfaces run that way).
    pub fn new(db: Db, secret: Option<&[u8]>, settings: AuthSettings) -> Self {
        let keys = secret.map(|s| JwtKeys::hs256(s).with_leeway(settings.jwt_leeway));
        let two_factor = secret.map(TwoFactorKeys::new);
        AuthService {
            inner: Arc::new(Inner {
                audit: AuditSink::new(db.clone()),
                sessions: SessionStore::new(db.clone()),
                hasher: PasswordHasher::new(settings.hashing),
                mailer: Mailer::new(settings.email.sender.clone()),
                db,
                keys,
                two_factor,
                settings,
            }),
        }
    }

    /// The signing and verification keys, or [`AuthError::NotConfigured`].
    pub fn keys(&self) -> Result<&JwtKeys, AuthError> {
        self.inner.keys.as_ref().ok_or(AuthError::NotConfigured)
    }

    /// The keys when configured (the realtime engine verifies with the same ones).
    pub fn jwt_keys(&self) -> Option<&JwtKeys> {
        self.inner.keys.as_ref()
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The bounded password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The pool.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The audit sink.
    pub(crate) fn audit(&self) -> &AuditSink {
        &self.inner.audit
    }

    /// The session store.
    pub(crate) fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    /// The email sender.
    pub(crate) fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    /// The keys of 2FA material at rest, or [`AuthError::NotConfigured`].
    pub(crate) fn two_factor_keys(&self) -> Result<&TwoFactorKeys, AuthError> {
        self.inner
            .two_factor
            .as_ref()
            .ok_or(AuthError::NotConfigured)
    }

    /// The password policy of `realm`.
    pub fn password_policy(&self, realm: Realm) -> PasswordPolicy {
        PasswordPolicy {
            min_chars: self.inner.settings.realm(realm).password_min_length,
            min_key: match realm {
                Realm::App => "auth.password_min_length",
                Realm::Dashboard => "dashboard.password_min_length",
            },
        }
    }
}
