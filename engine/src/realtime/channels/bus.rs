//! The [`Bus`]: what carries channel events (broadcast, presence diffs) between instances,
//! and holds presence state. One instance uses [`super::LocalBus`]; scale-out (issue 17)
//! adds a Redis Streams bus behind the same trait.
//!
//! # A Redis bus, sketched
//!
//! ```ignore
//! impl Bus for RedisBus {
//!     fn attach(&self, sink: Recipient<Deliver>) {
//!         // One reader task: XREAD BLOCK on the channel stream from the last id seen,
//!         // decoding each entry into a ChannelEvent and `sink.do_send(Deliver(event))`.
//!         // Reconnects resume from the last id (no gap); entries are at most once per
//!         // instance because each instance reads the whole stream once.
//!     }
//!     fn publish(&self, event: Arc<ChannelEvent>) {
//!         // Queued to a writer task (never blocks the caller): XADD MAXLEN ~ N.
//!     }
//!     fn track(&self, channel, key, state) -> … {
//!         // HSET presence:<channel> <key> <state>, and the key in this instance's
//!         // heartbeat set with a TTL: an instance that dies loses its presences.
//!     }
//!     fn presence(&self, channel) -> … { /* HGETALL presence:<channel> */ }
//! }
//! ```
//! Connection ids and native presence keys are `<instance>-<n>` ([`super::super::ConnId`]),
//! unique across instances, so presence state merges without collisions.

use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

use super::{ChannelEvent, Presence};
use crate::realtime::auth::BoxFuture;

/// Why the bus could not do something.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus (its server) cannot be reached now.
    #[error("the channel bus is unavailable: {0}")]
    Unavailable(String),
}

/// A channel event delivered by the bus to this instance's channels actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<ChannelEvent>);

/// Carries channel events to every instance and keeps presence state.
pub trait Bus: Send + Sync + 'static {
    /// The bus's name (health, logs): `local`, `redis`.
    fn name(&self) -> &'static str;

    /// Delivers every event published from now on — this instance's own included — to
    /// `sink`, in publish order per channel. Called when the channels actor starts (again
    /// after a restart: the new sink replaces the old one).
    fn attach(&self, sink: Recipient<Deliver>);

    /// Publishes an event to the channel's members on every instance. Never waits.
    fn publish(&self, event: Arc<ChannelEvent>);

    /// Sets `key`'s presence state in `channel`; returns the previous state.
    fn track<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<Option<Value>, BusError>>;

    /// Clears `key`'s presence in `channel`; returns the state it had.
    fn untrack<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BusError>>;

    /// Every presence of `channel`, across instances.
    fn presence<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<Presence>, BusError>>;
}
