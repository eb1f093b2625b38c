//! Integration tests of the replication stream against a real PostgreSQL (one binary).

mod connection;
mod resilience;
mod stream;
mod support;
mod types;
mod wal2json;
