//! The server under load, and the rule that it must be on this machine.
//!
//! Every address the harness sends traffic to passes [`is_loopback_host`] first:
//! `127.0.0.0/8`, `::1` or `localhost`. Anything else is refused before a socket opens.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};

/// A loopback HTTP server: where `/health`, `/realtime` and the REST API live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resolved address to connect to.
    pub addr: SocketAddr,
    /// The `Host` header / authority as given (`localhost:8080`, `[::1]:8080`).
    pub authority: String,
    /// Path prefix under which the server is mounted, without a trailing slash ("" by default).
    pub prefix: String,
}

impl Target {
    /// Parses `http://host[:port][/prefix]` and refuses non-loopback hosts.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason| Error::Url {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// targets are supported (loopback, no TLS)"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("missing host"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host:port"))?;
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None => 80,
        };
        let ip = loopback_ip(host).ok_or_else(|| Error::NonLoopback {
            what: "server url",
            host: host.to_owned(),
        })?;
        Ok(Target {
            addr: SocketAddr::new(ip, port),
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The full path of an endpoint, with the mount prefix.
    pub fn path(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    /// The `ws://` URL of `path` (which may carry a query string).
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.authority, self.path(path))
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => None, // bare IPv6 without brackets
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

/// True for `localhost`, any `127.0.0.0/8` address and `::1` (with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    loopback_ip(host.trim_start_matches('[').trim_end_matches(']')).is_some()
}

/// The IP to connect to for a loopback host name, or `None` if it is not loopback.
/// `localhost` is taken as 127.0.0.1 without asking a resolver, so no name lookup can
/// redirect the load elsewhere.
fn loopback_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match host.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if v4.is_loopback() => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => Some(IpAddr::V6(v6)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if v4.is_loopback() => Some(IpAddr::V4(v4)),
            _ => None,
        },
        IpAddr::V4(_) => None,
    }
}

/// Refuses a PostgreSQL URL whose TCP hosts are not loopback (unix sockets are local).
pub fn check_database_url(url: &str) -> Result<tokio_postgres::Config> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(Error::database("parsing --database-url"))?;
    for host in config.get_hosts() {
        if let tokio_postgres::config::Host::Tcp(name) = host
            && !is_loopback_host(name)
        {
            return Err(Error::NonLoopback {
                what: "database url",
                host: name.clone(),
            });
        }
    }
    for addr in config.get_hostaddrs() {
        if !addr.is_loopback() {
            return Err(Error::NonLoopback {
                what: "database url hostaddr",
                host: addr.to_string(),
            });
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for host in [
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "8.8.8.8",
            "0.0.0.0",
            "::",
            "fe80::1",
            "example.com",
            "localhost.example.com",
            "128.0.0.1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn parses_server_urls() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            t.ws_url("/realtime?token=x"),
            "ws://127.0.0.1:8080/realtime?token=x"
        );
        let t = Target::parse("http://localhost/base/").unwrap();
        assert_eq!(t.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(t.path("/health"), "/base/health");
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!(t.addr, "[::1]:9000".parse().unwrap());
    }

    #[test]
    fn refuses_bad_or_remote_urls() {
        assert!(matches!(
            Target::parse("http://10.1.2.3:8080"),
            Err(Error::NonLoopback { .. })
        ));
        assert!(matches!(
            Target::parse("http://example.com"),
            Err(Error::NonLoopback { .. })
        ));
        assert!(matches!(
            Target::parse("https://127.0.0.1"),
            Err(Error::Url { .. })
        ));
        assert!(matches!(
            Target::parse("http://127.0.0.1:x"),
            Err(Error::Url { .. })
        ));
    }

    #[test]
    fn database_urls_must_be_local() {
        assert!(check_database_url("postgres://u:p@127.0.0.1:5432/db").is_ok());
        assert!(check_database_url("postgres://u@localhost/db").is_ok());
        assert!(check_database_url("host=/tmp user=postgres").is_ok());
        assert!(matches!(
            check_database_url("postgres://u:p@db.example.com/db"),
            Err(Error::NonLoopback { .. })
        ));
    }
}
