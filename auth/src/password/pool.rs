//! The bounded password hasher. argon2id is CPU- and memory-heavy by design (19 MiB and
//! tens of milliseconds per hash), so hashing is admitted, not just scheduled:
//!
//! - at most `concurrency` hashes run at once (about the number of cores: more would only
//!   share the same cores and multiply the memory);
//! - at most `queue` more wait for a slot;
//! - anything beyond is shed at once with [`AuthError::Overloaded`] (503 `overloaded` with
//!   `Retry-After`), instead of piling threads and buffers up until the machine swaps;
//! - each running hash borrows one of at most `concurrency` working-memory buffers, kept
//!   for reuse: memory for hashing is bounded by `concurrency × 19 MiB` and stays flat
//!   under any load.
//!
//! A request that goes away while its hash runs does not free the slot early: the slot and
//! the buffer belong to the blocking job until it finishes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{OnceCell, Semaphore};

use super::hash::{self, PasswordError, Verified};
use crate::AuthError;

/// What a shed request is told to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The text hashed once for [`PasswordHasher::dummy_verify`].
const DUMMY_PASSWORD: &str = "fluxbase-dummy-password";

/// `auth.password_hash_concurrency` / `auth.password_hash_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingSettings {
    /// Hashes running at once (0: the number of cores).
    pub concurrency: usize,
    /// Hashes waiting for a slot before new ones are shed.
    pub queue: usize,
}

impl Default for HashingSettings {
    fn default() -> Self {
        HashingSettings {
            concurrency: 0,
            queue: 8,
        }
    }
}

impl HashingSettings {
    /// The concurrency in force: the configured one, or the number of cores.
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency > 0 {
            self.concurrency
        } else {
            std::thread::available_parallelism().map_or(2, usize::from)
        }
    }
}

/// Runs password hashes within the bounds; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("capacity", &self.inner.capacity)
            .field("admitted", &self.inner.admitted.load(Ordering::Relaxed))
            .finish()
    }
}

/// The shared state of a [`PasswordHasher`].
struct Inner {
    /// One permit per running hash.
    slots: Arc<Semaphore>,
    /// Running + waiting hashes.
    admitted: AtomicUsize,
    /// `concurrency + queue`.
    capacity: usize,
    /// Whether requests are being shed: only the transitions are logged, not each shed.
    shedding: AtomicBool,
    /// Requests shed since shedding began.
    shed: AtomicU64,
    /// Idle working-memory buffers (at most `concurrency`). A std mutex: held only to push
    /// or pop, never across an await.
    buffers: Mutex<Vec<Vec<Block>>>,
    /// The hash [`PasswordHasher::dummy_verify`] checks against, made on first use.
    dummy: OnceCell<String>,
}

/// Counts one admitted hash until dropped (by the blocking job, or on shedding paths).
struct Admission(Arc<Inner>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// A hasher with these bounds.
    pub fn new(settings: HashingSettings) -> Self {
        let concurrency = settings.effective_concurrency();
        PasswordHasher {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(concurrency)),
                admitted: AtomicUsize::new(0),
                capacity: concurrency + settings.queue,
                shedding: AtomicBool::new(false),
                shed: AtomicU64::new(0),
                buffers: Mutex::new(Vec::with_capacity(concurrency)),
                dummy: OnceCell::new(),
            }),
        }
    }

    /// Hashes running or waiting now.
    pub fn admitted(&self) -> usize {
        self.inner.admitted.load(Ordering::Acquire)
    }

    /// Runs `job` on a blocking thread with a working-memory buffer, within the bounds.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let inner = &self.inner;
        if inner.admitted.fetch_add(1, Ordering::AcqRel) >= inner.capacity {
            inner.admitted.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("fluxbase_auth_password_hashes_shed_total").increment(1);
            inner.shed.fetch_add(1, Ordering::Relaxed);
            if !inner.shedding.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    capacity = inner.capacity,
                    "password hashing at capacity: shedding sign-ins and sign-ups"
                );
            }
            return Err(AuthError::Overloaded {
                retry_after: RETRY_AFTER,
            });
        }
        if inner.shedding.swap(false, Ordering::AcqRel) {
            tracing::info!(
                shed = inner.shed.swap(0, Ordering::Relaxed),
                "password hashing below capacity again"
            );
        }
        let admission = Admission(inner.clone());
        let permit = inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|err| AuthError::internal("password hashing slots", err))?;
        let shared = inner.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut memory = shared
                .buffers
                .lock()
                .expect("hash buffers lock")
                .pop()
                .unwrap_or_else(hash::new_memory);
            let out = job(&mut memory);
            shared
                .buffers
                .lock()
                .expect("hash buffers lock")
                .push(memory);
            drop(permit);
            drop(admission);
            out
        });
        task.await
            .map_err(|err| AuthError::internal("password hashing task", err))
    }

    /// A new argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move |memory| hash::hash_with(&password, memory))
            .await?
            .map_err(|err| AuthError::internal("password hashing", err))
    }

    /// Verifies `password` against a stored hash; an unreadable hash is `Err` inside.
    pub async fn verify(
        &self,
        password: String,
        stored: String,
    ) -> Result<Result<Verified, PasswordError>, AuthError> {
        self.run(move |memory| hash::verify_with(&password, &stored, memory))
            .await
    }

    /// Spends the same work as a verification on an account that does not exist, so an
    /// unknown email cannot be told from a wrong password by timing.
    pub async fn dummy_verify(&self, password: String) -> Result<(), AuthError> {
        let stored = self
            .inner
            .dummy
            .get_or_try_init(|| self.hash(DUMMY_PASSWORD.to_string()))
            .await?
            .clone();
        self.verify(password, stored).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_slots_and_queue_requests_are_shed_and_slots_come_back() {
        let hasher = PasswordHasher::new(HashingSettings {
            concurrency: 1,
            queue: 1,
        });
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        // Occupy the one slot until released.
        let running = {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                hasher
                    .run(move |_| {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        // The queue takes one more…
        let queued = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.run(|memory| memory.len()).await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while hasher.admitted() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "queued job not admitted"
            );
            tokio::task::yield_now().await;
        }
        // …and the next is shed at once.
        match hasher.run(|_| ()).await {
            Err(AuthError::Overloaded { retry_after }) => assert_eq!(retry_after, RETRY_AFTER),
            other => panic!("expected overload, got {other:?}"),
        }
        release_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        // The queued job ran with a full-size buffer (reused from the first one).
        assert_eq!(queued.await.unwrap().unwrap(), hash::block_count());
        assert_eq!(hasher.admitted(), 0);
        assert_eq!(
            hasher.inner.buffers.lock().unwrap().len(),
            1,
            "one buffer, reused"
        );
        // Capacity is back.
        let h = hasher.hash("pw".into()).await.unwrap();
        assert_eq!(
            hasher.verify("pw".into(), h).await.unwrap(),
            Ok(Verified::Yes)
        );
        hasher.dummy_verify("pw".into()).await.unwrap();
    }
}
