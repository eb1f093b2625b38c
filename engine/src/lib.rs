//! fluxbase-engine: the actor system of Fluxbase — `realtime` (hub, subscriptions, filter
//! index, RLS decisions and their cache, backpressure, broadcast, presence) and, later,
//! `jobs` (scheduler, workers, retries, dead letters); the long-lived services of both are
//! actix actors under [`supervise`]ion.

pub mod jobs;
pub mod realtime;
pub mod supervise;
