//! Integration tests of the `fluxbase` server: the HTTP app in-process, and the binary as a
//! user runs it, all against real PostgreSQL.

mod auth_users;
mod cli;
mod dashboard;
mod http;
mod loadtest;
mod realtime;
mod realtime_rls;
mod rest;
mod security;
mod serve;
mod support;
