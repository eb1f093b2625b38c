//! How the engine checks a token a socket sends (`access_token`): through an
//! [`Authenticator`], never by reading a JWT itself. The server gives it the auth service,
//! which verifies the signature, `exp` and `nbf`, and that the token's session is live.

use std::future::Future;
use std::pin::Pin;

use fluxbase_auth::{AuthContext, AuthService};

use super::error::RealtimeError;

/// A boxed future, as object-safe trait methods return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns a bearer token into the context a socket acts as, or refuses it.
pub trait Authenticator: Send + Sync + 'static {
    /// The context of `token`, checked for validity and revocation.
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<AuthContext, RealtimeError>>;
}

impl Authenticator for AuthService {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<AuthContext, RealtimeError>> {
        Box::pin(async move {
            AuthService::authenticate(self, Some(token))
                .await
                .map_err(|err| RealtimeError::from_coded(&err))
        })
    }
}

/// Tokens checked by signature and validity window only (engine tests and benches that
/// have no database sessions).
impl Authenticator for fluxbase_auth::JwtKeys {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<AuthContext, RealtimeError>> {
        Box::pin(async move {
            self.context(token)
                .map_err(|err| RealtimeError::from_coded(&err))
        })
    }
}
