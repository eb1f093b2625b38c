//! fluxbase-auth: the auth service of Fluxbase, for both kinds of user — application users
//! (`auth.*`) and dashboard administrators (`dashboard.*`) — under one set of rules:
//!
//! - [`AuthService`]: sign-up, sign-in, refresh rotation with reuse detection, sign-out and
//!   the user's record ([`users`]); administrators with lockout and TOTP 2FA ([`admins`]);
//!   service keys ([`service_keys`]); and [`AuthService::identify`] /
//!   [`AuthService::authenticate`], which every HTTP route (through the API's guard) and
//!   the realtime socket use to turn credentials into an identity — signature, `exp`, `nbf`
//!   and a live session;
//! - one email policy ([`email`]), one password policy with a bounded argon2id hasher
//!   ([`password`]), one session semantics ([`sessions`]), one audit sink ([`audit`]);
//! - the email flow of application users — confirmation, recovery, magic links, email
//!   change, invitations ([`verification`]) — over one-time tokens ([`one_time`]) and an
//!   SMTP or log sender ([`mail`]); the service role's user management ([`user_admin`]);
//! - JWT ([`JwtKeys`]), the claims of the tokens it issues ([`tokens`], [`dashboard`]), TOTP
//!   and backup codes ([`totp`]), and the [`AuthContext`] (role + claims) a request or a
//!   socket acts as;
//! - [`AuthError`]: every refusal with its code in the one error vocabulary.
//!
//! It depends on `fluxbase-migrations` (the pool, error kinds and vocabulary) and on no
//! other workspace crate.

pub mod admins;
pub mod audit;
mod client;
mod context;
pub mod dashboard;
pub mod email;
mod error;
mod identity;
mod jwt;
pub mod mail;
pub mod one_time;
pub mod password;
mod realm;
mod service;
pub mod service_keys;
pub mod sessions;
pub mod tokens;
pub mod totp;
pub mod user_admin;
pub mod users;
pub mod verification;

pub use admins::{AdminSignUp, LoginOutcome};
pub use client::Client;
pub use context::{AuthContext, Role};
pub use error::{AuthError, RefreshRefusal};
pub use identity::{AdminSession, Caller, Credentials, ServiceKeyCaller, UserSession};
pub use jwt::{DEFAULT_LEEWAY, JwtError, JwtKeys};
pub use mail::{EmailSettings, SenderSettings, SmtpSettings, SmtpTls};
pub use one_time::VerifyType;
pub use realm::Realm;
pub use service::{AuthService, AuthSettings, LockoutSettings, RealmSettings};
pub use tokens::Grant;
pub use user_admin::{AdminAttributes, UserPage};
pub use users::{MetadataMerge, SignOutScope, SignUp, SignedUp, UserUpdate};
pub use verification::{GeneratedLink, LinkKind, Links, Proof};
