//! Integration tests of the migrations crate against a real embedded PostgreSQL.

mod caller;
mod cluster;
mod listen;
mod pool;
mod runner;
mod schema;
