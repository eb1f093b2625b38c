//! Integration tests of the migrations crate against a real embedded PostgreSQL.

mod embedded;
mod listen;
mod runner;
mod schema;
