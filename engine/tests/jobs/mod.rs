//! Integration tests of background jobs: real PostgreSQL, real local HTTP receivers, real
//! worker processes.

mod guards;
mod kill;
mod kinds;
mod leases;
mod lifecycle;
mod schedules;
mod support;
mod webhooks;
