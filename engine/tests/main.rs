//! Integration tests of the engine against real PostgreSQL.

mod jobs;
mod rls;
