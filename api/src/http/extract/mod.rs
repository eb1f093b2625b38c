//! Extractors: the caller's identity under a policy ([`Guard`]), the credential readers,
//! the JSON body ([`Json`]) and the client's address and agent ([`Peer`]).

pub mod client;
pub mod credentials;
pub mod guard;
pub mod json;

pub use client::Peer;
pub use guard::{Admin, Anyone, DashboardAdmin, Guard, KeyAdmin, Policy, ServiceRole, User};
pub use json::{Json, OptionalJson};
