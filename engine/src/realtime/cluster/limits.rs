//! `realtime.max_connections_per_user` across instances: each user's sockets are counted
//! per instance in one Redis hash, checked and incremented by one script (atomic across
//! instances). The counts of an instance whose heartbeat key expired (it died with its
//! sockets) are dropped by the next check, so a crash does not lock its users out.

use std::sync::Arc;

use dashmap::DashMap;
use redis::aio::MultiplexedConnection;

use super::Cluster;

/// KEYS: the user's hash. ARGV: instance, limit, heartbeat key prefix.
const ACQUIRE: &str = r"
local all = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #all, 2 do
  local inst, n = all[i], tonumber(all[i + 1])
  if inst ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. inst) == 0 then
    redis.call('HDEL', KEYS[1], inst)
  else
    total = total + n
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
";

/// KEYS: the user's hash. ARGV: instance.
const RELEASE: &str = r"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
";

/// Per-user connection counts shared by the instances; cheap to clone.
#[derive(Clone)]
pub struct SharedLimits {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    instance: String,
    /// Users of this instance's counted connections, by connection sequence number.
    counted: DashMap<u64, String>,
    acquire: redis::Script,
    release: redis::Script,
    /// A tokio lock: held while (re)connecting only.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl SharedLimits {
    /// The limits of `instance` in `cluster`.
    pub fn new(cluster: Cluster, instance: String) -> SharedLimits {
        SharedLimits {
            inner: Arc::new(Inner {
                cluster,
                instance,
                counted: DashMap::new(),
                acquire: redis::Script::new(ACQUIRE),
                release: redis::Script::new(RELEASE),
                conn: tokio::sync::Mutex::new(None),
            }),
        }
    }

    fn user_key(&self, user: &str) -> String {
        self.inner.cluster.key(&format!("conns:{user}"))
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

    /// Counts connection `seq` of `user` if the user has fewer than `limit` across the
    /// instances; `Err` when Redis cannot answer (the caller decides: the per-instance
    /// limit still holds).
    pub async fn acquire(&self, user: &str, seq: u64, limit: usize) -> redis::RedisResult<bool> {
        let mut conn = self.conn().await?;
        let result: redis::RedisResult<i64> = self
            .inner
            .acquire
            .key(self.user_key(user))
            .arg(&self.inner.instance)
            .arg(limit)
            .arg(self.inner.cluster.key("instance:"))
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok(1) => {
                self.inner.counted.insert(seq, user.to_string());
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(err) => {
                *self.inner.conn.lock().await = None;
                Err(err)
            }
        }
    }

    /// Uncounts connection `seq` (if it was counted), in the background.
    pub fn release(&self, seq: u64) {
        let Some((_, user)) = self.inner.counted.remove(&seq) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(mut conn) = this.conn().await else {
                tracing::warn!("connection count not released: redis unreachable");
                return;
            };
            let released: redis::RedisResult<i64> = this
                .inner
                .release
                .key(this.user_key(&user))
                .arg(&this.inner.instance)
                .invoke_async(&mut conn)
                .await;
            if let Err(err) = released {
                tracing::warn!(error = %err, "connection count not released");
            }
        });
    }
}
