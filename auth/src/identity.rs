//! Who a request or a socket is. [`AuthService::identify`] turns the credentials of a request
//! into a [`Caller`]; [`AuthService::authenticate`] does the same for a bare token and
//! returns its [`AuthContext`] — the realtime socket path calls it on connect and on
//! `access_token`.
//!
//! Both check, in this order: the token's signature, `exp` and `nbf`
//! ([`JwtKeys::verify`](crate::JwtKeys::verify)); then, for a token the service issued for a
//! session (an application user's or a dashboard admin's), that the session is still live.
//! A token whose session was signed out, revoked by reuse detection, expired, or deleted by
//! the runbook's SQL is refused with [`AuthError::SessionEnded`] from the next request on.
//! The check is one primary-key probe on a prepared statement (no cache: a revocation is
//! seen at once; see BENCHMARKS.md for its cost). Tokens that name no session — API keys of
//! `fluxbase keys`, tokens minted with the server secret by another backend — are checked
//! for signature and validity window only: nothing can revoke them but the secret.

use uuid::Uuid;

use crate::{AuthContext, AuthError, AuthService, Realm, dashboard, tokens};

/// The credentials a request presented (read by the HTTP layer).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A JWT (bearer, `apikey`, or the `token` query parameter of WebSocket clients).
    pub token: Option<String>,
    /// A service key (`X-Service-Key`, or an `sk_…` bearer or `apikey`).
    pub service_key: Option<String>,
}

impl Credentials {
    /// Whether anything was presented.
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.service_key.is_none()
    }
}

/// A signed-in application user with a live session.
#[derive(Debug, Clone)]
pub struct UserSession {
    /// `auth.users.id` (`sub`).
    pub user_id: Uuid,
    /// `auth.sessions.id` (`session_id`).
    pub session_id: Uuid,
    /// The token's context (role `authenticated`).
    pub context: AuthContext,
}

/// A dashboard administrator with a live session.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// `dashboard.users.id` (`sub`).
    pub user_id: Uuid,
    /// `dashboard.sessions.id` (`session_id`).
    pub session_id: Uuid,
    /// The token's context (role `dashboard_admin`).
    pub context: AuthContext,
}

/// A valid service key: acts as `service_role`.
#[derive(Debug, Clone)]
pub struct ServiceKeyCaller {
    /// `auth.service_keys.id`.
    pub key_id: Uuid,
    /// The key's name.
    pub name: String,
    /// `service_role` with `service_key_id` and `service_key_name` claims.
    pub context: AuthContext,
}

/// The identity of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No credential.
    Anon(AuthContext),
    /// An application user's access token, session live.
    User(UserSession),
    /// A dashboard admin's access token, session live.
    Admin(AdminSession),
    /// A service key.
    ServiceKey(ServiceKeyCaller),
    /// Any other valid token: a `service_role` or `anon` API key, a token with custom
    /// claims minted with the server secret.
    Token(AuthContext),
}

impl Caller {
    /// The database role and claims the caller acts as.
    pub fn context(&self) -> &AuthContext {
        match self {
            Caller::Anon(ctx) | Caller::Token(ctx) => ctx,
            Caller::User(u) => &u.context,
            Caller::Admin(a) => &a.context,
            Caller::ServiceKey(k) => &k.context,
        }
    }

    /// Whether the caller acts as `service_role` (a service key or a service-role JWT).
    pub fn is_service_role(&self) -> bool {
        self.context().bypasses_rls()
    }

    /// The user id to log and rate-limit by (`sub`), if any.
    pub fn user_id(&self) -> Option<&str> {
        self.context().uid()
    }
}

/// A claim that must be a uuid (the ids the service issues).
fn uuid_claim(ctx: &AuthContext, name: &str) -> Option<Uuid> {
    ctx.claim(name)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl AuthService {
    /// The caller of a request: a service key when one is presented (it wins over a token,
    /// as the HTTP layer always read it first), else the token, else anon.
    pub async fn identify(&self, credentials: &Credentials) -> Result<Caller, AuthError> {
        if let Some(key) = &credentials.service_key {
            return self.service_key_caller(key).await.map(Caller::ServiceKey);
        }
        match &credentials.token {
            None => Ok(Caller::Anon(AuthContext::anon())),
            Some(token) => self.identify_token(token).await,
        }
    }

    /// The context of a token (anon without one), including the session check — what a
    /// realtime socket calls when it opens and on every `access_token` frame.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<AuthContext, AuthError> {
        match token {
            None => Ok(AuthContext::anon()),
            Some(token) => Ok(self.identify_token(token).await?.context().clone()),
        }
    }

    /// A verified token's caller, with the session check for the tokens the service issued.
    async fn identify_token(&self, token: &str) -> Result<Caller, AuthError> {
        let context = self.keys()?.context(token)?;
        if tokens::is_app_user(context.claims()) {
            let (Some(user_id), Some(session_id)) = (
                uuid_claim(&context, "sub"),
                uuid_claim(&context, "session_id"),
            ) else {
                // Not one of ours (we issue uuids): a token minted with the secret.
                return Ok(Caller::Token(context));
            };
            if !self
                .sessions()
                .is_live(Realm::App, session_id, user_id)
                .await?
            {
                return Err(AuthError::SessionEnded);
            }
            return Ok(Caller::User(UserSession {
                user_id,
                session_id,
                context,
            }));
        }
        if dashboard::is_admin(&context) {
            // An admin token always belongs to a session: without one it cannot be revoked,
            // so it is not accepted.
            let (Some(user_id), Some(session_id)) = (
                uuid_claim(&context, "sub"),
                uuid_claim(&context, "session_id"),
            ) else {
                return Err(AuthError::SessionEnded);
            };
            if !self
                .sessions()
                .is_live(Realm::Dashboard, session_id, user_id)
                .await?
            {
                return Err(AuthError::SessionEnded);
            }
            return Ok(Caller::Admin(AdminSession {
                user_id,
                session_id,
                context,
            }));
        }
        Ok(Caller::Token(context))
    }
}
