//! Middleware, one noun each, in the order a request meets them (outermost first):
//! [`observe`] (request id, log line, metrics), [`body_timeout`], [`headers`] (security
//! headers), [`cors`], [`rate_limit`], [`csrf`]. [`client_ip`] resolves the client's
//! address behind trusted proxies for all of them.

pub mod body_timeout;
pub mod client_ip;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod observe;
pub mod rate_limit;
