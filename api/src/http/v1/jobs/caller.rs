//! Who calls the jobs routes, as the job service sees it: [`Submitter`] admits application
//! users (who see only their own jobs), service keys, `service_role` tokens and dashboard
//! admins (who see all); the admin routes use [`Admin`](crate::http::extract::Admin) and
//! [`admin_caller`].

use fluxbase_auth::{Caller as AuthCaller, Role};
use fluxbase_engine::jobs::Caller;
use uuid::Uuid;

use crate::error::{ApiError, Code};
use crate::http::extract::Policy;

/// Who may use `/api/v1/jobs…`: an application user (a live session, or a token minted with
/// the server secret whose role is `authenticated` and whose `sub` is a user id), a service
/// key or `service_role` token, or a dashboard admin. Anonymous callers are refused.
#[derive(Debug)]
pub enum Submitter {}

impl Policy for Submitter {
    type Identity = Caller;

    fn admit(caller: AuthCaller, presented: bool) -> Result<Caller, ApiError> {
        if let Some(trusted) = trusted(&caller) {
            return Ok(trusted);
        }
        match caller {
            AuthCaller::User(user) => Ok(Caller::User(user.user_id)),
            AuthCaller::Token(ctx) if *ctx.role() == Role::Authenticated => ctx
                .uid()
                .and_then(|sub| Uuid::parse_str(sub).ok())
                .map(Caller::User)
                .ok_or_else(|| {
                    ApiError::new(
                        Code::Forbidden,
                        "this token's `sub` is not a user id: jobs belong to a user",
                    )
                }),
            _ if !presented => Err(ApiError::new(
                Code::Unauthorized,
                "sign in first: jobs need a user's access token, a service key or an admin",
            )),
            _ => Err(ApiError::new(
                Code::Forbidden,
                "jobs need a user's access token, a service key or an admin",
            )),
        }
    }
}

/// The job caller of a dashboard admin, service key or `service_role` token.
fn trusted(caller: &AuthCaller) -> Option<Caller> {
    match caller {
        AuthCaller::Admin(admin) => Some(Caller::Admin(admin.user_id.to_string())),
        AuthCaller::ServiceKey(key) => Some(Caller::Service(key.name.clone())),
        other if other.is_service_role() => Some(Caller::Service("service_role".into())),
        _ => None,
    }
}

/// The job caller of a request admitted by the `Admin` policy (a dashboard admin or
/// `service_role`): trusted with the whole queue.
pub fn admin_caller(caller: &AuthCaller) -> Result<Caller, ApiError> {
    trusted(caller).ok_or_else(|| ApiError::new(Code::Forbidden, "admin role required"))
}

#[cfg(test)]
mod tests {
    use fluxbase_auth::AuthContext;
    use serde_json::json;

    use super::*;

    fn token(claims: serde_json::Value) -> AuthCaller {
        AuthCaller::Token(AuthContext::from_claims(
            claims.as_object().cloned().unwrap(),
        ))
    }

    #[test]
    fn users_own_their_jobs_and_trusted_callers_see_all() {
        let user = Uuid::new_v4();
        let minted = token(json!({"role": "authenticated", "sub": user.to_string()}));
        assert_eq!(Submitter::admit(minted, true).unwrap(), Caller::User(user));
        let service = token(json!({"role": "service_role"}));
        assert_eq!(
            Submitter::admit(service, true).unwrap(),
            Caller::Service("service_role".into())
        );
        let anon = AuthCaller::Anon(AuthContext::anon());
        assert_eq!(
            Submitter::admit(anon.clone(), false).unwrap_err().code,
            Code::Unauthorized
        );
        assert_eq!(
            Submitter::admit(token(json!({"role": "anon"})), true)
                .unwrap_err()
                .code,
            Code::Forbidden
        );
        let odd = token(json!({"role": "authenticated", "sub": "not-a-uuid"}));
        assert_eq!(
            Submitter::admit(odd, true).unwrap_err().code,
            Code::Forbidden
        );
        assert!(admin_caller(&anon).is_err());
    }
}
