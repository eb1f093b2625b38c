//! Permissions in the signature: `Guard<Policy>` in a handler's arguments identifies the
//! caller through the auth service — signature, `exp`, `nbf`, and a live session for
//! app-user and admin tokens, looked up once per request — and admits it only if the policy
//! does, so a route cannot forget its check.
//!
//! | policy | admits | identity |
//! |---|---|---|
//! | [`Anyone`] | anyone whose credential (if any) is valid | [`Caller`] |
//! | [`User`] | an application user with a live session | [`UserSession`] |
//! | [`ServiceRole`] | a service key or a `service_role` token | [`Caller`] |
//! | [`Admin`] | a dashboard admin (live session) or `service_role` | [`Caller`] |
//! | [`KeyAdmin`] | [`Admin`] without service keys (a key never mints keys) | [`AuthContext`] |
//! | [`DashboardAdmin`] | a dashboard admin with a live session | [`AdminSession`] |
//!
//! A missing credential answers 401, a valid credential of the wrong kind 403, an invalid
//! one 401 with its reason (`invalid_token`, `token_expired`, `session_not_found`…).

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use fluxbase_auth::{AdminSession, AuthContext, AuthService, Caller, Credentials, UserSession};
use futures_util::future::LocalBoxFuture;

use super::credentials::credentials_of;
use crate::error::{ApiError, Code};
use crate::http::middleware::observe::RequestUser;

/// What a route admits, decided from the identified caller.
pub trait Policy: 'static {
    /// What the handler gets.
    type Identity;

    /// Refuses a request on its credentials alone, before any lookup (e.g. a service key
    /// where only a user's token makes sense).
    fn precheck(_credentials: &Credentials) -> Result<(), ApiError> {
        Ok(())
    }

    /// Admits `caller` (`presented`: whether any credential was given) or says why not.
    fn admit(caller: Caller, presented: bool) -> Result<Self::Identity, ApiError>;
}

/// An admitted caller: derefs to the policy's identity.
pub struct Guard<P: Policy> {
    identity: P::Identity,
    policy: PhantomData<P>,
}

impl<P: Policy> Guard<P> {
    /// The identity.
    pub fn into_inner(self) -> P::Identity {
        self.identity
    }
}

impl<P: Policy> std::ops::Deref for Guard<P> {
    type Target = P::Identity;

    fn deref(&self) -> &P::Identity {
        &self.identity
    }
}

impl<P: Policy> std::fmt::Debug for Guard<P>
where
    P::Identity: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Guard").field(&self.identity).finish()
    }
}

impl<P: Policy> FromRequest for Guard<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = req
                .app_data::<web::Data<AuthService>>()
                .cloned()
                .ok_or_else(|| ApiError::new(Code::Internal, "auth service missing"))?;
            let credentials = credentials_of(&req);
            P::precheck(&credentials)?;
            let caller = auth.identify(&credentials).await?;
            if let Some(uid) = caller.user_id() {
                req.extensions_mut().insert(RequestUser(uid.to_string()));
            }
            let identity = P::admit(caller, !credentials.is_empty())?;
            Ok(Guard {
                identity,
                policy: PhantomData,
            })
        })
    }
}

/// 401: no credential, or not one this route can use.
fn unauthorized(message: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, message)
}

/// 403: a valid credential of the wrong kind.
fn forbidden(message: &str) -> ApiError {
    ApiError::new(Code::Forbidden, message)
}

/// Anyone: no credential (anon) or a valid one. The REST surface runs as the caller's
/// context.
#[derive(Debug)]
pub enum Anyone {}

impl Policy for Anyone {
    type Identity = Caller;

    fn admit(caller: Caller, _: bool) -> Result<Caller, ApiError> {
        Ok(caller)
    }
}

/// A signed-in application user: an access token whose role and audience are
/// `authenticated`, whose session is live. Admin tokens, API keys and service keys are not
/// users.
#[derive(Debug)]
pub enum User {}

impl Policy for User {
    type Identity = UserSession;

    fn precheck(credentials: &Credentials) -> Result<(), ApiError> {
        if credentials.service_key.is_some() {
            return Err(unauthorized(
                "a user's access token is required: service keys do not act as a user",
            ));
        }
        if credentials.token.is_none() {
            return Err(unauthorized("sign in first: no access token"));
        }
        Ok(())
    }

    fn admit(caller: Caller, _: bool) -> Result<UserSession, ApiError> {
        match caller {
            Caller::User(user) => Ok(user),
            _ => Err(unauthorized(
                "not an application user's access token (role and audience must be \"authenticated\")",
            )),
        }
    }
}

/// The server's trusted context: a service key or a `service_role` token.
#[derive(Debug)]
pub enum ServiceRole {}

impl Policy for ServiceRole {
    type Identity = Caller;

    fn admit(caller: Caller, presented: bool) -> Result<Caller, ApiError> {
        match (caller.is_service_role(), presented) {
            (true, _) => Ok(caller),
            (false, false) => Err(unauthorized("a service_role token is required")),
            (false, true) => Err(forbidden("this endpoint needs a service_role token")),
        }
    }
}

/// An administrator: a dashboard admin with a live session, or `service_role` (a service
/// key or a service-role token).
#[derive(Debug)]
pub enum Admin {}

impl Policy for Admin {
    type Identity = Caller;

    fn admit(caller: Caller, presented: bool) -> Result<Caller, ApiError> {
        let admin = matches!(caller, Caller::Admin(_)) || caller.is_service_role();
        match (admin, presented) {
            (true, _) => Ok(caller),
            (false, false) => Err(unauthorized("admin authentication required")),
            (false, true) => Err(forbidden("admin role required")),
        }
    }
}

/// Who may manage service keys: [`Admin`] except a service key itself — a key that could
/// mint keys would outlive its own revocation.
#[derive(Debug)]
pub enum KeyAdmin {}

impl Policy for KeyAdmin {
    type Identity = AuthContext;

    fn admit(caller: Caller, presented: bool) -> Result<AuthContext, ApiError> {
        if matches!(caller, Caller::ServiceKey(_)) {
            return Err(forbidden(
                "service keys cannot manage service keys: use an admin or service_role token",
            ));
        }
        Admin::admit(caller, presented).map(|c| c.context().clone())
    }
}

/// A dashboard admin with a live session (`service_role` has no dashboard account).
#[derive(Debug)]
pub enum DashboardAdmin {}

impl Policy for DashboardAdmin {
    type Identity = AdminSession;

    fn admit(caller: Caller, presented: bool) -> Result<AdminSession, ApiError> {
        match caller {
            Caller::Admin(admin) => Ok(admin),
            c if c.is_service_role() => Err(forbidden(
                "this endpoint needs a dashboard admin's token (service_role has no dashboard account)",
            )),
            _ if !presented => Err(unauthorized("admin authentication required")),
            _ => Err(forbidden("admin role required")),
        }
    }
}
