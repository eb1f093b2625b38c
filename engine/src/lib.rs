//! fluxbase-engine: the actor system of Fluxbase — `realtime` (hub, subscriptions, filter
//! index, RLS decisions and their cache, backpressure, broadcast, presence) and `jobs`
//! (scheduler, workers, retries, dead letters).
//!
//! Nothing is implemented here yet: the realtime engine is issue 4 and the jobs system a
//! later issue. The crate exists so the workspace has its final shape and dependency
//! direction (`api → engine → replication, auth`).
