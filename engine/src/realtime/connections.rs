//! The connections of this instance and their limits (`realtime.max_connections`,
//! `max_connections_per_user`, `max_connections_per_ip`), checked atomically when a socket
//! connects and when `access_token` moves it to another user.
//!
//! Concurrent maps (`dashmap`, sharded locks): sockets connect and disconnect on every
//! worker thread while the dispatcher fans out; no global lock is taken on either path, and
//! the filter index (a separate lock) is not touched by a connect at all.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::connection::ConnShared;

/// Limits checked when a connection registers or changes user.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `realtime.max_connections`
    pub max_connections: usize,
    /// `realtime.max_connections_per_user`
    pub per_user: usize,
    /// `realtime.max_connections_per_ip`
    pub per_ip: usize,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// Instance-wide.
    Total(usize),
    /// Per user.
    User(usize),
    /// Per IP.
    Ip(usize),
}

impl LimitHit {
    /// The refusal's text, naming the key.
    pub fn message(self) -> String {
        match self {
            LimitHit::Total(n) => {
                format!("too many connections (realtime.max_connections = {n})")
            }
            LimitHit::User(n) => format!(
                "too many connections for this user (realtime.max_connections_per_user = {n})"
            ),
            LimitHit::Ip(n) => format!(
                "too many connections from this address (realtime.max_connections_per_ip = {n})"
            ),
        }
    }
}

/// Every connection, by user and by IP.
#[derive(Debug, Default)]
pub struct Connections {
    /// By `ConnShared::seq`.
    conns: DashMap<u64, Arc<ConnShared>>,
    /// Each connection's user (`sub`), if it has one.
    conn_user: DashMap<u64, String>,
    users: DashMap<String, HashSet<u64>>,
    ips: DashMap<IpAddr, usize>,
    total: AtomicUsize,
}

impl Connections {
    /// Adds a connection if the limits allow.
    pub fn add(
        &self,
        conn: Arc<ConnShared>,
        user: Option<String>,
        limits: Limits,
    ) -> Result<(), LimitHit> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitHit::Total(limits.max_connections));
        }
        {
            let mut ip = self.ips.entry(conn.ip).or_default();
            if *ip >= limits.per_ip {
                drop(ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(LimitHit::Ip(limits.per_ip));
            }
            *ip += 1;
        }
        if let Some(user) = user {
            let mut set = self.users.entry(user.clone()).or_default();
            if set.len() >= limits.per_user {
                drop(set);
                self.release_ip(conn.ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(LimitHit::User(limits.per_user));
            }
            set.insert(conn.seq);
            drop(set);
            self.conn_user.insert(conn.seq, user);
        }
        self.conns.insert(conn.seq, conn);
        Ok(())
    }

    fn release_ip(&self, ip: IpAddr) {
        self.ips.remove_if_mut(&ip, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }

    fn release_user(&self, seq: u64) {
        if let Some((_, user)) = self.conn_user.remove(&seq) {
            self.users.remove_if_mut(&user, |_, set| {
                set.remove(&seq);
                set.is_empty()
            });
        }
    }

    /// Removes a connection; returns it if it was registered.
    pub fn remove(&self, seq: u64) -> Option<Arc<ConnShared>> {
        let (_, conn) = self.conns.remove(&seq)?;
        self.release_user(seq);
        self.release_ip(conn.ip);
        self.total.fetch_sub(1, Ordering::AcqRel);
        Some(conn)
    }

    /// Moves a connection to `user` (after `access_token`), unless that user is at
    /// `per_user` connections already: `access_token` must not be a way around the limit.
    pub fn set_user(
        &self,
        seq: u64,
        user: Option<String>,
        per_user: usize,
    ) -> Result<(), LimitHit> {
        let current = self.conn_user.get(&seq).map(|u| u.clone());
        if current == user {
            return Ok(());
        }
        if let Some(user) = &user {
            let mut set = self.users.entry(user.clone()).or_default();
            if set.len() >= per_user {
                let empty = set.is_empty();
                drop(set);
                if empty {
                    self.users.remove_if(user, |_, s| s.is_empty());
                }
                return Err(LimitHit::User(per_user));
            }
            set.insert(seq);
        }
        self.release_user(seq);
        if let Some(user) = user {
            self.conn_user.insert(seq, user);
        }
        Ok(())
    }

    /// Connections of a user (`sub`).
    pub fn of_user(&self, user: &str) -> Vec<Arc<ConnShared>> {
        let seqs: Vec<u64> = self
            .users
            .get(user)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        seqs.iter()
            .filter_map(|seq| self.conns.get(seq).map(|c| c.clone()))
            .collect()
    }

    /// Every connection.
    pub fn all(&self) -> Vec<Arc<ConnShared>> {
        self.conns.iter().map(|c| c.value().clone()).collect()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fluxbase_auth::AuthContext;

    use super::*;
    use crate::realtime::codec::native::NATIVE;
    use crate::realtime::connection::{ConnId, QueueLimits};

    fn conn(seq: u64) -> Arc<ConnShared> {
        ConnShared::new(
            seq,
            ConnId::new("t", seq),
            "127.0.0.1".parse().unwrap(),
            AuthContext::anon(),
            &NATIVE,
            QueueLimits {
                capacity: 8,
                bytes: 1 << 20,
                threshold: 8,
                timeout: Duration::from_secs(1),
            },
        )
        .0
    }

    #[test]
    fn limits_are_enforced_and_released() {
        let conns = Connections::default();
        let limits = Limits {
            max_connections: 3,
            per_user: 1,
            per_ip: 2,
        };
        conns.add(conn(1), Some("u".into()), limits).unwrap();
        assert_eq!(
            conns.add(conn(2), Some("u".into()), limits),
            Err(LimitHit::User(1))
        );
        conns.add(conn(3), None, limits).unwrap();
        assert_eq!(conns.add(conn(4), None, limits), Err(LimitHit::Ip(2)));
        assert_eq!(conns.len(), 2);
        conns.remove(1).unwrap();
        conns.add(conn(5), Some("u".into()), limits).unwrap();
        assert_eq!(conns.of_user("u").len(), 1);
    }

    #[test]
    fn changing_user_respects_the_per_user_limit() {
        let conns = Connections::default();
        let limits = Limits {
            max_connections: 10,
            per_user: 2,
            per_ip: 10,
        };
        conns.add(conn(1), Some("u".into()), limits).unwrap();
        conns.add(conn(2), Some("u".into()), limits).unwrap();
        conns.add(conn(3), None, limits).unwrap();
        // An anonymous socket cannot become u's third.
        assert_eq!(
            conns.set_user(3, Some("u".into()), 2),
            Err(LimitHit::User(2))
        );
        assert_eq!(conns.of_user("u").len(), 2);
        // Once u has room, it can.
        conns.remove(2).unwrap();
        conns.set_user(3, Some("u".into()), 2).unwrap();
        assert_eq!(conns.of_user("u").len(), 2);
        // Moving away frees the slot.
        conns.set_user(3, Some("v".into()), 2).unwrap();
        assert_eq!(conns.of_user("u").len(), 1);
        assert_eq!(conns.of_user("v").len(), 1);
    }
}
