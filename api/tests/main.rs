//! Integration tests of the `fluxbase` server: the HTTP app in-process, and the binary as a
//! user runs it, all against real PostgreSQL.

mod auth_users;
mod bounds;
mod cli;
mod dashboard;
mod deploy;
mod fuzz;
mod http;
mod jobs;
mod js_clients;
mod loadtest;
mod realtime;
mod realtime_rls;
mod rest;
mod rest_http;
mod revocation;
mod scaleout;
mod security;
mod serve;
mod storage;
mod supabase_auth;
mod supabase_realtime;
mod support;
