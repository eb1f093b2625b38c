//! Integration tests of the engine against real PostgreSQL.

mod compare;
mod hub;
mod image;
mod jobs;
mod rls;
