//! The REST service (`fluxbase_api::rest`) against a real PostgreSQL, called directly:
//! reads, filters, embeds, writes, calls, headers and preferences, callers under RLS, and
//! every error mapping.

mod harness;
mod read;
