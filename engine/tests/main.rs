//! Integration tests of the engine against real PostgreSQL.

mod compare;
mod image;
mod jobs;
mod rls;
