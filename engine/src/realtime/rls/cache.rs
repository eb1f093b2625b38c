//! The decision cache: SQL-fallback answers kept in an LRU with a TTL.
//!
//! Keyed by (context fingerprint, relation, primary-key hash, row-values hash): a change to
//! the row changes its key, so it invalidates itself; the TTL bounds how long a change in
//! *another* table a policy reads (a membership row) can go unseen. Keys are 64-bit hashes:
//! a collision between two different rows of the same table and context is possible in
//! principle (about 2^-64 per pair) and accepted.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use serde_json::{Map, Value};

/// Default `realtime.rls_cache_size`.
pub const DEFAULT_CACHE_SIZE: usize = 100_000;
/// Default `realtime.rls_cache_ttl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// The identity of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// `AuthContext::fingerprint()`.
    pub fingerprint: u64,
    /// Table OID.
    pub relid: u32,
    /// Hash of the primary key values.
    pub pk_hash: u64,
    /// Hash of all the row's decoded values.
    pub row_hash: u64,
}

impl CacheKey {
    /// The key of a row change as seen by one context.
    pub fn new(
        fingerprint: u64,
        relid: u32,
        pk: &Map<String, Value>,
        row: &Map<String, Value>,
    ) -> CacheKey {
        CacheKey {
            fingerprint,
            relid,
            pk_hash: hash_map(pk),
            row_hash: hash_map(row),
        }
    }
}

/// Hashes a row version: its values and which `null`s are JSON literals (a row holding
/// JSON `null` is not the row holding SQL NULL).
pub fn hash_row(row: super::image::RowRef<'_>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hash_object(row.values, &mut hasher);
    let mut nulls: Vec<&String> = row.json_nulls.iter().collect();
    nulls.sort();
    nulls.dedup();
    nulls.hash(&mut hasher);
    hasher.finish()
}

/// Hashes a JSON object; serde_json's map iterates in key order, so equal maps hash equal.
pub fn hash_map(map: &Map<String, Value>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hash_object(map, &mut hasher);
    hasher.finish()
}

fn hash_object(map: &Map<String, Value>, hasher: &mut impl Hasher) {
    map.len().hash(hasher);
    for (key, value) in map {
        key.hash(hasher);
        hash_value(value, hasher);
    }
}

fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    // A tag per variant so that e.g. "1" and 1 differ.
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => (2u8, n.to_string()).hash(hasher),
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            items.iter().for_each(|v| hash_value(v, hasher));
        }
        Value::Object(map) => {
            5u8.hash(hasher);
            hash_object(map, hasher);
        }
    }
}

/// A bounded LRU of decisions with a time to live.
#[derive(Debug)]
pub struct DecisionCache {
    /// A std mutex: it is never held across an `.await`, and lookups are short. The `u64`
    /// is the generation: [`DecisionCache::clear`] starts a new one.
    entries: Mutex<Generation>,
    ttl: Duration,
}

/// The decisions, each with when it was made, and the generation they belong to.
type Generation = (LruCache<CacheKey, (bool, Instant)>, u64);

impl DecisionCache {
    /// A cache of at most `capacity` decisions (at least one), each valid for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> DecisionCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        DecisionCache {
            entries: Mutex::new((LruCache::new(capacity), 0)),
            ttl,
        }
    }

    /// The cached decision, if present and not expired (expired entries are removed).
    pub fn get(&self, key: &CacheKey) -> Option<bool> {
        self.get_at(key, Instant::now())
    }

    fn get_at(&self, key: &CacheKey, now: Instant) -> Option<bool> {
        let (entries, _) = &mut *self.lock();
        let &(allowed, inserted) = entries.get(key)?;
        if now.duration_since(inserted) >= self.ttl {
            entries.pop(key);
            return None;
        }
        Some(allowed)
    }

    /// The current generation: what a decision about to be asked of PostgreSQL is stored
    /// under (see [`DecisionCache::insert`]).
    pub fn generation(&self) -> u64 {
        self.lock().1
    }

    /// Stores a decision asked for in `generation`; dropped when the cache was cleared
    /// since (the policies or role facts it was made under are gone: storing it would
    /// keep an old answer past the reload).
    pub fn insert(&self, key: CacheKey, allowed: bool, generation: u64) {
        let (entries, current) = &mut *self.lock();
        if *current == generation {
            entries.put(key, (allowed, Instant::now()));
        }
    }

    /// Drops every decision and starts a new generation (policies or roles changed).
    pub fn clear(&self) {
        let (entries, generation) = &mut *self.lock();
        entries.clear();
        *generation += 1;
    }

    /// Number of entries, expired ones included until they are looked up or evicted.
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        // A panic while holding the lock cannot leave the LRU inconsistent for our use:
        // recover the guard rather than propagate the poison.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn row_changes_change_the_key() {
        let pk = obj(json!({"id": 1}));
        let a = CacheKey::new(7, 1, &pk, &obj(json!({"id": 1, "x": "a"})));
        let b = CacheKey::new(7, 1, &pk, &obj(json!({"id": 1, "x": "b"})));
        let c = CacheKey::new(7, 1, &pk, &obj(json!({"x": "a", "id": 1})));
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_ne!(
            hash_map(&obj(json!({"x": 1}))),
            hash_map(&obj(json!({"x": "1"})))
        );
        let row = obj(json!({"x": null}));
        let literal = ["x".to_string()];
        let sql_null = super::super::image::RowRef::plain(&row);
        let json_null = super::super::image::RowRef {
            values: &row,
            json_nulls: &literal,
        };
        assert_ne!(hash_row(sql_null), hash_row(json_null));
    }

    #[test]
    fn bounded_and_expiring() {
        let cache = DecisionCache::new(2, Duration::from_secs(10));
        let key = |n| CacheKey {
            fingerprint: n,
            relid: 1,
            pk_hash: 0,
            row_hash: 0,
        };
        let generation = cache.generation();
        cache.insert(key(1), true, generation);
        cache.insert(key(2), false, generation);
        cache.insert(key(3), true, generation);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(1)), None);
        assert_eq!(cache.get(&key(2)), Some(false));
        let later = Instant::now() + Duration::from_secs(11);
        assert_eq!(cache.get_at(&key(3), later), None);
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_decision_asked_before_a_clear_is_not_stored_after_it() {
        let cache = DecisionCache::new(8, Duration::from_secs(10));
        let key = CacheKey {
            fingerprint: 1,
            relid: 1,
            pk_hash: 0,
            row_hash: 0,
        };
        // Asked of PostgreSQL under the old policies; a reload clears meanwhile.
        let asked_in = cache.generation();
        cache.clear();
        cache.insert(key, true, asked_in);
        assert_eq!(
            cache.get(&key),
            None,
            "an answer from before the reload was kept"
        );
        // Asked after the reload: stored.
        cache.insert(key, false, cache.generation());
        assert_eq!(cache.get(&key), Some(false));
    }
}
