//! The engine's long-lived services as actix actors under [`actix::Supervisor`]s
//! (DESIGN §2): the replication [`Consumer`], the [`Dispatcher`] (fan-out, in
//! [`fanout`]), the DDL/role [`Watcher`] and the slow-client [`Sweeper`]; channels are in
//! [`super::channels`]. Each registers in the engine's [`Supervision`](crate::supervise)
//! registry: a failure is logged, counted in `fluxbase_engine_restarts_total{actor}`, shows
//! as `realtime: degraded` in the health endpoint, and the actor restarts after a short,
//! growing pause.

mod consumer;
mod dispatcher;
mod fanout;
mod sweeper;
mod watcher;
mod webhooks;

pub use consumer::Consumer;
pub(crate) use consumer::dispatch;
pub use dispatcher::{Crashed, Dispatch, Dispatcher, POISON_CRASHES};
pub use sweeper::Sweeper;
pub use watcher::Watcher;
pub(crate) use webhooks::WebhookLane;

/// Makes the engine's counters exist from the first scrape (at zero), so dashboards and
/// alerts never see them missing.
pub(crate) fn register_metrics() {
    for name in [
        fluxbase_replication::metrics::DECODE_ERRORS_TOTAL,
        "fluxbase_realtime_messages_sent_total",
        "fluxbase_realtime_messages_dropped_total",
        "fluxbase_realtime_slow_clients_total",
        "fluxbase_realtime_poison_changes_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    // Until the stream's first lag sample (within seconds of its start).
    metrics::gauge!(fluxbase_replication::metrics::LAG_BYTES).set(0.0);
    metrics::gauge!("fluxbase_realtime_connections").set(0.0);
    metrics::gauge!("fluxbase_realtime_subscriptions").set(0.0);
}
