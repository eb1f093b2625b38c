//! Integration tests of background jobs: real PostgreSQL, real local HTTP receivers, real
//! worker processes.

mod guards;
mod kinds;
mod lifecycle;
mod schedules;
mod support;
mod webhooks;
