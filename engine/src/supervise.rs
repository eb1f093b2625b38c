//! Supervision of the engine's long-lived services (replication consumer, dispatcher,
//! watchers, sweepers, channels, job workers). Each is an actix actor started under an
//! [`actix::Supervisor`]; a panic or a fatal error inside a unit of its work is caught
//! ([`catch`], [`catch_async`]), logged with what the actor was doing, counted in
//! `fluxbase_engine_restarts_total{actor}`, shown as not running in the engine's health
//! until the actor runs again, and answered by stopping the actor: the supervisor then
//! restarts it in the same execution context, with its mailbox intact (`restarting`, then
//! `started`). Nothing stops silently.
//!
//! ```ignore
//! impl Actor for Dispatcher {
//!     type Context = Context<Self>;
//!     fn started(&mut self, _: &mut Context<Self>) { self.supervision.running(Self::NAME); }
//! }
//! impl actix::Supervised for Dispatcher {}
//! // in a handler:
//! if let Err(panic) = supervise::catch(|| self.dispatch(&tx)) {
//!     self.supervision.failed(Self::NAME, &format!("lsn {}: {panic}", tx.end_lsn));
//!     ctx.stop(); // the Supervisor restarts the actor
//! }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;

/// What the health endpoint shows of one supervised service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceState {
    /// Running now (false between a failure and the restart's `started`).
    pub running: bool,
    /// Restarts since the process started.
    pub restarts: u64,
    /// The last failure, as logged (never row values or secrets).
    pub last_error: Option<String>,
}

/// The registry of supervised services; cheap to clone, shared by every actor.
#[derive(Debug, Clone, Default)]
pub struct Supervision {
    /// A std lock: held only to read or update a state, never across `.await`.
    services: Arc<Mutex<BTreeMap<&'static str, ServiceState>>>,
}

impl Supervision {
    /// Registers `actor` (not yet running) so its restart counter exists from the first
    /// scrape and its health shows before it starts.
    pub fn register(&self, actor: &'static str) {
        metrics::counter!("fluxbase_engine_restarts_total", "actor" => actor).increment(0);
        self.lock().entry(actor).or_insert(ServiceState {
            running: false,
            restarts: 0,
            last_error: None,
        });
    }

    /// Called from the actor's `started`: it runs (again).
    pub fn running(&self, actor: &'static str) {
        let mut services = self.lock();
        let state = services.entry(actor).or_insert(ServiceState {
            running: false,
            restarts: 0,
            last_error: None,
        });
        if !state.running && state.restarts > 0 {
            tracing::info!(actor, restarts = state.restarts, "actor running again");
        }
        state.running = true;
    }

    /// A unit of `actor`'s work failed (panic or fatal error): logged, counted, marked not
    /// running. The caller then stops the actor so its supervisor restarts it.
    pub fn failed(&self, actor: &'static str, error: &str) {
        tracing::error!(actor, error = %error, "actor failed; restarting it");
        metrics::counter!("fluxbase_engine_restarts_total", "actor" => actor).increment(1);
        let mut services = self.lock();
        let state = services.entry(actor).or_insert(ServiceState {
            running: false,
            restarts: 0,
            last_error: None,
        });
        state.running = false;
        state.restarts += 1;
        state.last_error = Some(error.to_string());
    }

    /// A service that stopped for good (shutdown): not running, not degraded.
    pub fn stopped(&self, actor: &'static str) {
        self.lock().remove(actor);
    }

    /// Every registered service and its state.
    pub fn snapshot(&self) -> BTreeMap<&'static str, ServiceState> {
        self.lock().clone()
    }

    /// The services registered but not running: the engine is degraded while any is.
    pub fn not_running(&self) -> Vec<&'static str> {
        self.lock()
            .iter()
            .filter(|(_, s)| !s.running)
            .map(|(name, _)| *name)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, ServiceState>> {
        // A panic while holding this lock cannot leave the map inconsistent (every update
        // is one field write), so a poisoned lock is still usable.
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f`, turning a panic into `Err(message)`. The actor's state may be half-updated
/// after a panic: callers stop the actor, and `restarting` rebuilds what must be rebuilt.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

/// [`catch`] for a future.
pub async fn catch_async<F: Future>(f: F) -> Result<F::Output, String> {
    AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(p.as_ref()))
}

/// The text of a panic payload (`&str` or `String`; anything else is named generically).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use actix::prelude::*;

    use super::*;

    /// Counts messages; panics on a poisoned one.
    struct Counter {
        supervision: Supervision,
        seen: Arc<Mutex<Vec<u32>>>,
        starts: Arc<Mutex<u32>>,
    }

    impl Actor for Counter {
        type Context = Context<Self>;
        fn started(&mut self, _: &mut Context<Self>) {
            *self.starts.lock().unwrap() += 1;
            self.supervision.running("counter");
        }
    }

    impl Supervised for Counter {}

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Item(u32);

    impl Handler<Item> for Counter {
        type Result = ();
        fn handle(&mut self, Item(n): Item, ctx: &mut Context<Self>) {
            let seen = self.seen.clone();
            if let Err(panic) = catch(|| {
                assert_ne!(n, 13, "poisoned item");
                seen.lock().unwrap().push(n);
            }) {
                self.supervision
                    .failed("counter", &format!("item {n}: {panic}"));
                ctx.stop();
            }
        }
    }

    #[actix::test]
    async fn a_panicking_actor_is_restarted_with_its_mailbox_and_counted() {
        let supervision = Supervision::default();
        supervision.register("counter");
        assert_eq!(supervision.not_running(), vec!["counter"]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let starts = Arc::new(Mutex::new(0));
        let (s, se, st) = (supervision.clone(), seen.clone(), starts.clone());
        let addr = Supervisor::start(move |_| Counter {
            supervision: s,
            seen: se,
            starts: st,
        });
        for n in [1, 2, 13, 3, 4] {
            addr.do_send(Item(n));
        }
        // A request-response message after the others: answered only once they are handled.
        addr.send(Item(5)).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(*starts.lock().unwrap(), 2, "started, then restarted once");
        let state = supervision.snapshot()["counter"].clone();
        assert!(state.running);
        assert_eq!(state.restarts, 1);
        assert!(
            state.last_error.as_deref().unwrap().contains("item 13"),
            "{state:?}"
        );
        assert!(supervision.not_running().is_empty());
    }

    #[actix::test]
    async fn catch_async_turns_a_panicking_future_into_an_error() {
        let err = catch_async(async { panic!("boom") }).await.unwrap_err();
        assert_eq!(err, "panic: boom");
        assert_eq!(catch_async(async { 7 }).await, Ok(7));
    }
}
