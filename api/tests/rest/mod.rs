//! The REST service (`fluxbase_api::rest`) against a real PostgreSQL, called directly:
//! reads, filters, embeds, writes, calls, headers and preferences, callers under RLS, and
//! every error mapping.

mod adapter;
mod cache;
mod embed;
mod errors;
pub mod harness;
mod openapi;
mod property;
mod read;
mod rpc;
mod security;
mod write;
