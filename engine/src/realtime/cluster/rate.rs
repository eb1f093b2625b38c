//! Rate limits across instances: a fixed-window counter per key in Redis, incremented and
//! given its window by one script (atomic across instances). The HTTP layer's per-minute
//! limits use it when the bus is Redis.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::Cluster;

/// KEYS: the counter. ARGV: window (ms). Returns the count and the window's remaining ms.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Shared counters; cheap to clone.
#[derive(Clone)]
pub struct SharedRate {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    script: redis::Script,
    /// A tokio lock: held while (re)connecting only.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for SharedRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRate").finish_non_exhaustive()
    }
}

impl SharedRate {
    /// Counters in `cluster`'s namespace.
    pub fn new(cluster: Cluster) -> SharedRate {
        SharedRate {
            inner: Arc::new(Inner {
                cluster,
                script: redis::Script::new(HIT),
                conn: tokio::sync::Mutex::new(None),
            }),
        }
    }

    async fn conn(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut guard = self.inner.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.inner.cluster.connect(false).await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Counts one hit of `key` in `scope` (`limit` per `window`): `Ok(None)` when within the
    /// limit, `Ok(Some(wait))` when over it (until the window ends), `Err` when Redis cannot
    /// answer.
    pub async fn hit(
        &self,
        scope: &str,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> redis::RedisResult<Option<Duration>> {
        let mut conn = self.conn().await?;
        let counter = self.inner.cluster.key(&format!("rate:{scope}:{key}"));
        let result: redis::RedisResult<(u64, i64)> = self
            .inner
            .script
            .key(counter)
            .arg(window.as_millis() as u64)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok((n, ttl)) if n > u64::from(limit) => {
                Ok(Some(Duration::from_millis(ttl.max(1) as u64)))
            }
            Ok(_) => Ok(None),
            Err(err) => {
                *self.inner.conn.lock().await = None;
                Err(err)
            }
        }
    }
}
