//! Integration tests of the engine against real PostgreSQL.

mod rls;
