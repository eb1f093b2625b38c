//! Prepared statements cached per pooled connection and per query shape: an LRU keyed by
//! the statement text (a request's shape; its values are parameters), so a warm request
//! costs no Parse round trip. Dropping a statement from the cache closes it on the server.
//!
//! Each pooled connection is known by its deadpool statement cache's allocation, held
//! through a `Weak`: while the entry lives, that allocation cannot be reused by another
//! connection, and an entry whose connection is gone is swept. An entry remembers the
//! schema-cache version its statements were prepared under; a request planned against
//! another version clears it first, so no statement outlives the DDL that changed what
//! it reads.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, Weak};

use deadpool_postgres::{ClientWrapper, StatementCache};
use lru::LruCache;
use tokio_postgres::Statement;

/// Statements kept per connection by default.
pub const DEFAULT_STATEMENTS_PER_CONNECTION: usize = 256;

/// One connection's statements.
struct Entry {
    /// The connection (its deadpool statement cache), to tell it is still the same one.
    owner: Weak<StatementCache>,
    /// The schema-cache version the statements were prepared under.
    version: u64,
    /// Statement text → prepared statement, least recently used first out.
    lru: LruCache<String, Statement>,
}

/// Every connection's statements. A std mutex: held only for a map lookup, never across
/// `.await`.
pub(crate) struct PreparedStatements {
    /// Statements per connection.
    capacity: NonZeroUsize,
    /// Keyed by the address of the connection's deadpool statement cache.
    entries: Mutex<HashMap<usize, Entry>>,
}

impl PreparedStatements {
    /// A cache keeping at most `capacity` statements per connection.
    pub fn new(capacity: usize) -> Self {
        PreparedStatements {
            capacity: NonZeroUsize::new(capacity.max(1)).expect("at least one"),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The statement for `sql` on `client`, prepared (one round trip) on a miss.
    pub async fn get(
        &self,
        client: &ClientWrapper,
        sql: &str,
        version: u64,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.lookup(client, sql, version) {
            return Ok(statement);
        }
        let statement = client.prepare(sql).await?;
        self.insert(client, sql, statement.clone(), version);
        Ok(statement)
    }

    /// How many statements are cached for `client`.
    pub fn len(&self, client: &ClientWrapper) -> usize {
        let entries = self.lock();
        entries
            .get(&key(client))
            .filter(|e| same(e, client))
            .map_or(0, |e| e.lru.len())
    }

    /// A cached statement, if any (clearing the connection's entry on a version change).
    fn lookup(&self, client: &ClientWrapper, sql: &str, version: u64) -> Option<Statement> {
        let mut entries = self.lock();
        let entry = entries.get_mut(&key(client))?;
        if !same(entry, client) {
            return None;
        }
        if entry.version != version {
            entry.lru.clear();
            entry.version = version;
            return None;
        }
        entry.lru.get(sql).cloned()
    }

    /// Caches a statement just prepared.
    fn insert(&self, client: &ClientWrapper, sql: &str, statement: Statement, version: u64) {
        let mut entries = self.lock();
        let k = key(client);
        let fresh = match entries.get(&k) {
            Some(entry) => !same(entry, client),
            None => true,
        };
        if fresh {
            // A new connection: forget those that closed since.
            entries.retain(|_, e| e.owner.strong_count() > 0);
            entries.insert(
                k,
                Entry {
                    owner: Arc::downgrade(&client.statement_cache),
                    version,
                    lru: LruCache::new(self.capacity),
                },
            );
        }
        let entry = entries.get_mut(&k).expect("inserted above");
        if entry.version != version {
            entry.lru.clear();
            entry.version = version;
        }
        entry.lru.put(sql.to_owned(), statement);
    }

    /// The map, even after a panic elsewhere (its state stays consistent).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connection's key: the address of its deadpool statement cache.
fn key(client: &ClientWrapper) -> usize {
    Arc::as_ptr(&client.statement_cache) as usize
}

/// Whether `entry` belongs to `client` (and not to a closed connection).
fn same(entry: &Entry, client: &ClientWrapper) -> bool {
    entry
        .owner
        .upgrade()
        .is_some_and(|owner| Arc::ptr_eq(&owner, &client.statement_cache))
}
