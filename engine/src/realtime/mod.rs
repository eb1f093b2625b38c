//! The realtime engine: replication transactions fanned out to WebSocket subscribers, with
//! Row-Level Security decided once per distinct auth context; and channels (broadcast,
//! presence) between sockets.
//!
//! - **The hub** ([`Engine`], [`hub`]): a typed, protocol-neutral API — connect (within
//!   limits), subscribe, unsubscribe, join, leave, track, broadcast, set the context,
//!   disconnect — answering values or a [`RealtimeError`] with its code. No JSON frame and
//!   no JWT is read inside it: tokens go through an [`Authenticator`] (the auth service).
//! - **Codecs** ([`codec`]): a protocol per socket ([`codec::native`], and
//!   [`codec::phoenix`] for realtime-js). Each change is encoded once per format.
//! - **The socket loop** ([`socket`]): one per WebSocket, over a codec: queue, pings,
//!   expiry, backpressure, close reasons. The HTTP layer only upgrades and calls
//!   [`Engine::serve`].
//! - **State**: [`connections`] (limits), the filter [`index`], [`channels`] behind a
//!   [`channels::Bus`].
//! - **Actors** ([`pipeline`], [`channels`]): the replication consumer, the dispatcher, the
//!   DDL/role watcher, the slow-client sweeper and the channels, each supervised
//!   ([`crate::supervise`]). Fan-out never awaits a socket; a client that cannot keep up is
//!   closed with 4008.

pub mod auth;
pub mod channels;
pub mod cluster;
pub mod codec;
pub mod connection;
pub mod connections;
mod engine;
pub mod error;
#[cfg(debug_assertions)]
pub mod fault;
pub mod filter;
mod gate;
pub mod hub;
pub mod index;
pub mod pipeline;
mod restart;
pub mod rls;
mod settings;
mod socket;
pub mod tables;

pub use auth::Authenticator;
pub use connection::{CloseReason, ConnId, ConnShared, Outbound, close};
pub use engine::{Engine, EngineOptions, RealtimeStats};
pub use error::RealtimeError;
pub use settings::{
    DEFAULT_CLIENT_QUEUE_BYTES, DEFAULT_MAX_CHANNEL_NAME_LENGTH,
    DEFAULT_MAX_CHANNELS_PER_CONNECTION, RealtimeSettings,
};
