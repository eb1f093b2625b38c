//! Lanes of the pool: one share of the connection budget per HTTP worker thread, each
//! connection driven by the worker that uses it.
//!
//! A tokio-postgres connection is two halves: the client, usable from any thread, and the
//! connection task that writes the client's requests and reads the answers. The task runs
//! where it was spawned. With one shared pool, a request on worker A often holds a
//! connection whose task lives on worker B: its statements are handed to B (an eventfd
//! wake-up and a context switch), B may start writing before the request has queued all of
//! its pipelined statements (PostgreSQL then reads and answers the transaction in two
//! pieces), and the answers are handed back to A (another wake-up). A lane is a pool of
//! its own whose connections are opened and driven on one worker's runtime, so the worker
//! that takes a connection from its lane talks to PostgreSQL without any other thread.
//!
//! A worker claims a free lane with [`crate::Db::claim_lane`] when it starts; a lane is
//! free again when its worker's thread ends (a restarted worker takes it over). Threads
//! that claimed none (start-up, jobs, the realtime engine) take from the lanes in turn.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use deadpool_postgres::Connect;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, Error};

use crate::tls::MakeRustlsConnect;

thread_local! {
    /// The lane this thread claimed: the pool's id, the lane's index, and the token whose
    /// drop (at thread exit) frees the lane.
    static CLAIMED: RefCell<Option<(usize, usize, Arc<()>)>> = const { RefCell::new(None) };
}

/// The lane claimed by the current thread in the pool `pool_id`.
pub(crate) fn claimed(pool_id: usize) -> Option<usize> {
    CLAIMED.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(id, _, _)| *id == pool_id)
            .map(|(_, lane, _)| *lane)
    })
}

/// The worker a lane belongs to, while its thread lives.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    /// The worker's runtime: the lane's connections are opened and driven there.
    handle: Handle,
    /// Alive while the worker's thread is.
    owner: Weak<()>,
    /// When the worker claimed the lane: connections opened before are driven elsewhere.
    pub since: Instant,
}

impl Home {
    /// Whether the worker still runs.
    fn alive(&self) -> bool {
        self.owner.strong_count() > 0
    }
}

/// A lane's home, shared by the pool and its connector.
pub(crate) type HomeSlot = Arc<Mutex<Option<Home>>>;

/// The lane's home while its worker lives.
pub(crate) fn home(slot: &HomeSlot) -> Option<Home> {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .filter(Home::alive)
}

/// Makes the current thread (in a tokio runtime) the home of the first free lane of
/// `slots`; `None` when every lane has a live worker or there is no runtime.
pub(crate) fn claim(pool_id: usize, slots: &[HomeSlot]) -> Option<usize> {
    let handle = Handle::try_current().ok()?;
    for (i, slot) in slots.iter().enumerate() {
        let mut home = slot.lock().unwrap_or_else(|p| p.into_inner());
        if home.as_ref().is_some_and(Home::alive) {
            continue;
        }
        let token = Arc::new(());
        *home = Some(Home {
            handle,
            owner: Arc::downgrade(&token),
            since: Instant::now(),
        });
        CLAIMED.with(|c| *c.borrow_mut() = Some((pool_id, i, token)));
        return Some(i);
    }
    None
}

/// Opens a lane's connections on its home runtime (or, while no live worker holds the
/// lane, on the caller's), so the socket's readiness and the connection task are that
/// worker's.
pub(crate) struct LaneConnect {
    /// TLS as for every connection (`sslmode`).
    pub tls: MakeRustlsConnect,
    /// The lane's home.
    pub home: HomeSlot,
}

impl Connect for LaneConnect {
    fn connect(
        &self,
        pg_config: &Config,
    ) -> Pin<Box<dyn Future<Output = Result<(Client, JoinHandle<()>), Error>> + Send + '_>> {
        let pg_config = pg_config.clone();
        Box::pin(async move {
            if home(&self.home).is_none() {
                // No worker holds the lane (start-up): opened and driven here.
                let opened = open(&pg_config, &self.tls, None).await?;
                if home(&self.home).is_none() {
                    return Ok(opened);
                }
                // Claimed meanwhile: this one would be driven by the wrong thread.
                opened.1.abort();
            }
            let handle = home(&self.home).map(|h| h.handle);
            open(&pg_config, &self.tls, handle.as_ref()).await
        })
    }
}

/// Opens a connection and spawns its task (connecting included) on `home`, or here.
async fn open(
    pg_config: &Config,
    tls: &MakeRustlsConnect,
    home: Option<&Handle>,
) -> Result<(Client, JoinHandle<()>), Error> {
    let (task_tls, task_config) = (tls.clone(), pg_config.clone());
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    // Connecting and driving are one task: the socket is registered with the reactor of
    // the runtime that opens it, so both must run on the same one.
    let task = async move {
        match task_config.connect(task_tls).await {
            Ok((client, connection)) => {
                if opened_tx.send(Ok(client)).is_err() {
                    return;
                }
                if let Err(err) = connection.await {
                    tracing::warn!(error = %err, "database connection closed with an error");
                }
            }
            Err(err) => {
                let _ = opened_tx.send(Err(err));
            }
        }
    };
    let driver = match home {
        Some(handle) => handle.spawn(task),
        None => tokio::spawn(task),
    };
    match opened_rx.await {
        Ok(Ok(client)) => Ok((client, driver)),
        Ok(Err(err)) => Err(err),
        // The task ended without an answer: the home runtime is shutting down. Open it
        // here instead (driven by this thread), which answers with a real result.
        Err(_) => open_here(pg_config.clone(), tls.clone()).await,
    }
}

/// Opens a connection from this task and drives it on this thread's runtime.
async fn open_here(
    pg_config: Config,
    tls: MakeRustlsConnect,
) -> Result<(Client, JoinHandle<()>), Error> {
    let (client, connection) = pg_config.connect(tls).await?;
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "database connection closed with an error");
        }
    });
    Ok((client, driver))
}
