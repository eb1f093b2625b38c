//! fluxbase-api: the `fluxbase` binary's library — configuration, the HTTP application,
//! telemetry and the `serve`/`migrate` commands.

pub mod cli;
pub mod config;
pub mod descriptors;
pub mod error;
pub mod http;
pub mod jobs;
pub mod rest;
pub mod server;
pub mod telemetry;
