//! Integration tests of background jobs: real PostgreSQL, real local HTTP receivers, real
//! worker processes.

mod guards;
mod lifecycle;
mod support;
