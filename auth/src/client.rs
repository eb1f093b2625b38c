//! Who is calling, as far as sessions and the audit trail record it: the client's address
//! (after the HTTP layer resolved trusted proxies) and its `User-Agent`.

use std::net::IpAddr;

/// Longest `User-Agent` kept on a session or an audit row.
pub const MAX_USER_AGENT: usize = 512;

/// The caller's address and agent.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's IP address.
    pub ip: IpAddr,
    /// The `User-Agent`, cut to [`MAX_USER_AGENT`] bytes.
    pub user_agent: Option<String>,
}

impl Client {
    /// A client at `ip` with `user_agent` (cut on a character boundary).
    pub fn new(ip: IpAddr, user_agent: Option<&str>) -> Client {
        let user_agent = user_agent.map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].to_string()
        });
        Client { ip, user_agent }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let client = Client::new(IpAddr::from([127, 0, 0, 1]), Some(&long));
        let ua = client.user_agent.unwrap();
        assert!(ua.len() <= MAX_USER_AGENT && ua.chars().all(|c| c == 'é'));
    }
}
