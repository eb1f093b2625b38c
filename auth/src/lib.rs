//! fluxbase-auth: passwords (argon2id, bcrypt verify), JWT, sessions and refresh rotation,
//! TOTP and backup codes, service keys, and the `AuthContext` (role + claims) of a request.
//!
//! Today: HS256 token verification and signing, and [`AuthContext`]. Application and
//! dashboard auth (users, sessions, TOTP, service keys) are issue 6.

pub mod audit;
mod context;
pub mod dashboard;
mod jwt;
pub mod password;
pub mod service_keys;
pub mod sessions;
pub mod tokens;
pub mod totp;

pub use context::{AuthContext, Role};
pub use jwt::{JwtError, JwtKeys};
