//! Integration tests of the migrations crate against a real embedded PostgreSQL.

mod caller;
mod cluster;
mod listen;
mod runner;
mod schema;
