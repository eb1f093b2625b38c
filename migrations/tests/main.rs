//! Integration tests of the migrations crate against a real embedded PostgreSQL.

mod cluster;
mod runner;
