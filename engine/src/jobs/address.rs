//! Which outbound addresses `http` jobs may reach. Unless `jobs.allow_private_urls`, the
//! server refuses private, loopback, link-local, unique-local, multicast and reserved
//! ranges: a job or webhook must not become a way into the server's own network (cloud
//! metadata at 169.254.169.254, the database, an admin port on localhost).
//!
//! Checked twice: a URL's literal host at submit, and every address a host name resolves
//! to at connect time, by the resolver the HTTP client connects through ([`GuardedResolver`]):
//! the client connects only to addresses that passed, so a name that resolves to a public
//! address when checked and a private one when used (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is one an `http` job may not reach unless private URLs are allowed.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_refused_v4(v4),
        IpAddr::V6(v6) => is_refused_v6(v6),
    }
}

fn is_refused_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()          // 0.0.0.0
        || a == 0                // "this network" 0/8
        || ip.is_private()       // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback()      // 127/8
        || ip.is_link_local()    // 169.254/16 (cloud metadata)
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64/10
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2)       // documentation 192.0.2/24
        || (a == 198 && (b == 18 || b == 19))   // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100)    // documentation 198.51.100/24
        || (a == 203 && b == 0 && c == 113)     // documentation 203.0.113/24
        || ip.is_multicast()     // 224/4
        || a >= 240 // reserved 240/4 and broadcast
}

fn is_refused_v6(ip: Ipv6Addr) -> bool {
    // An IPv4 address in IPv6 clothing is judged as IPv4: ::ffff:a.b.c.d (mapped),
    // 64:ff9b::a.b.c.d (NAT64), and the deprecated ::a.b.c.d (compatible).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_refused_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_refused_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    ip.is_unspecified()                 // ::
        || ip.is_loopback()             // ::1
        || s[0..6] == [0, 0, 0, 0, 0, 0] // ::/96, IPv4-compatible (deprecated)
        || (s[0] & 0xfe00) == 0xfc00    // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80    // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0    // site-local fec0::/10 (deprecated)
        || (s[0] & 0xff00) == 0xff00    // multicast ff00::/8
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
}

/// Whether a host name is one that always means this machine.
pub fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// A host name that resolved only to refused addresses.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves only to private, loopback or reserved addresses (jobs.allow_private_urls is off)"
)]
pub struct RefusedAddress {
    /// The host name (never its addresses: they are the server's network).
    pub host: String,
}

/// The HTTP client's resolver: resolves with the system resolver, then drops refused
/// addresses (all of them pass when private URLs are allowed). The client connects only to
/// what this returns.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// `jobs.allow_private_urls`.
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            if !allow_private && is_local_name(&host) {
                return Err(Box::new(RefusedAddress { host }) as _);
            }
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| allow_private || !is_refused(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(RefusedAddress { host }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_ranges_are_refused() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(is_refused(refused.parse().unwrap()), "{refused}");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
        ] {
            assert!(!is_refused(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn localhost_names_are_local() {
        for name in ["localhost", "LOCALHOST.", "api.localhost"] {
            assert!(is_local_name(name), "{name}");
        }
        assert!(!is_local_name("localhost.example.com"));
    }

    #[tokio::test]
    async fn the_resolver_returns_no_refused_address() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        // localhost is refused by name, 127.0.0.1 by address: nothing reaches a socket.
        for host in ["localhost", "127.0.0.1"] {
            let err = match guarded.resolve(host.parse().unwrap()).await {
                Ok(_) => panic!("{host} resolved"),
                Err(err) => err,
            };
            assert!(err.is::<RefusedAddress>(), "{host}: {err}");
        }
        let open = GuardedResolver {
            allow_private: true,
        };
        let addrs: Vec<_> = match open.resolve("127.0.0.1".parse().unwrap()).await {
            Ok(addrs) => addrs.collect(),
            Err(err) => panic!("{err}"),
        };
        assert_eq!(addrs[0].ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
