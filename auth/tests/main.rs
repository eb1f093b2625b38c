//! Integration tests of the auth service against real PostgreSQL (a fresh database per
//! test): one session semantics for both realms, the session check of `authenticate`, the
//! runbook's SQL, and the first-admin rule.

mod email_flow;
mod sessions;
mod support;
