//! The in-process [`Bus`] of a single instance: events go straight to this instance's
//! channels actor; presence state is a map in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use actix::Recipient;
use serde_json::Value;

use super::bus::{Bus, BusError, Deliver};
use super::{ChannelEvent, Presence};
use crate::realtime::auth::BoxFuture;

/// One instance's bus.
#[derive(Debug, Default)]
pub struct LocalBus {
    /// The channels actor (replaced when it restarts). A std lock: never held across
    /// `.await`.
    sink: RwLock<Option<Recipient<Deliver>>>,
    /// Presence per channel, by key (ordered, so a presence state lists keys stably).
    presence: Mutex<HashMap<String, BTreeMap<String, Value>>>,
}

impl LocalBus {
    /// An empty bus.
    pub fn new() -> LocalBus {
        LocalBus::default()
    }

    fn presence_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, Value>>> {
        // Every update is one insert or remove: a poisoned map is still consistent.
        self.presence.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Bus for LocalBus {
    fn name(&self) -> &'static str {
        "local"
    }

    fn attach(&self, sink: Recipient<Deliver>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    fn publish(&self, event: Arc<ChannelEvent>) {
        if let Some(sink) = self.sink.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            sink.do_send(Deliver(event));
        }
    }

    fn track<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<Option<Value>, BusError>> {
        let previous = self
            .presence_lock()
            .entry(channel.to_string())
            .or_default()
            .insert(key.to_string(), state);
        Box::pin(std::future::ready(Ok(previous)))
    }

    fn untrack<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, BusError>> {
        let mut presence = self.presence_lock();
        let previous = presence.get_mut(channel).and_then(|keys| keys.remove(key));
        if presence.get(channel).is_some_and(BTreeMap::is_empty) {
            presence.remove(channel);
        }
        Box::pin(std::future::ready(Ok(previous)))
    }

    fn presence<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<Presence>, BusError>> {
        let state = self
            .presence_lock()
            .get(channel)
            .map(|keys| {
                keys.iter()
                    .map(|(key, state)| Presence {
                        key: key.clone(),
                        state: state.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(state)))
    }
}
