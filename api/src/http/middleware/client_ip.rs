//! The client's real address: the peer, or — behind a trusted proxy
//! (`server.trusted_proxies`) — the right-most `X-Forwarded-For` entry that is not itself a
//! trusted proxy. Rate limits, logs, sessions and audit rows all use it.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, web};

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    /// From `server.trusted_proxies` (validated: IP addresses).
    pub fn new(proxies: &[String]) -> Self {
        TrustedProxies(proxies.iter().filter_map(|p| p.parse().ok()).collect())
    }

    /// The client's address given the peer and the headers.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.0.contains(&peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        forwarded
            .split(',')
            .rev()
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.0.contains(ip))
            .or(Some(peer))
    }

    /// Whether the request came over HTTPS (directly never: only via a trusted proxy).
    pub fn is_https(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        peer.is_some_and(|p| self.0.contains(&p))
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }
}

/// The client IP of a request, as limits, logs and the auth service see it.
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    let peer = req.peer_addr().map(|a| a.ip());
    req.app_data::<web::Data<TrustedProxies>>()
        .and_then(|p| p.client_ip(peer, req.headers()))
        .or(peer)
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}
