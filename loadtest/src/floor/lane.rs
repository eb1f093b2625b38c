//! A worker's PostgreSQL connections: opened on the worker's thread (their driver tasks run
//! on its single-threaded runtime, so a request never wakes another thread), each with the
//! case's statements prepared once, and lent to one request at a time.

use std::cell::RefCell;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::Client;

use crate::error::Result;
use crate::scenario::rest::Shape;
use crate::scenario::rest::txn::Transaction;
use crate::table;

/// One connection and its prepared transaction.
pub struct Conn {
    /// The connection (its driver task on this worker).
    pub client: Client,
    /// The case's statements, prepared on `client`.
    pub txn: Transaction,
}

/// The connections of one worker; not `Send`: it lives and is used on that worker only.
pub struct Lane {
    idle: RefCell<Vec<Conn>>,
    /// One permit per idle connection; waiters are served in order.
    ready: Semaphore,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            idle: RefCell::new(Vec::new()),
            ready: Semaphore::new(0),
        }
    }
}

impl Lane {
    /// Opens `n` connections on the calling thread and prepares the case on each.
    pub async fn open(
        &self,
        config: &tokio_postgres::Config,
        shape: &Shape,
        sessions: bool,
        n: usize,
    ) -> Result<()> {
        for _ in 0..n {
            // `table::connect` spawns the driver on the current runtime: this worker's.
            let client = table::connect(config).await?;
            let txn = Transaction::prepare(&client, shape, sessions).await?;
            self.idle.borrow_mut().push(Conn { client, txn });
            self.ready.add_permits(1);
        }
        Ok(())
    }

    /// Waits for an idle connection; `None` only if the lane's invariant broke.
    pub async fn checkout(&self) -> Option<Checkout<'_>> {
        let permit = self.ready.acquire().await.ok()?;
        let conn = self.idle.borrow_mut().pop()?;
        Some(Checkout {
            lane: self,
            conn: Some(conn),
            permit: Some(permit),
        })
    }
}

/// A connection lent to one request, given back when dropped (a closed one is discarded,
/// with its permit).
pub struct Checkout<'a> {
    lane: &'a Lane,
    conn: Option<Conn>,
    permit: Option<SemaphorePermit<'a>>,
}

impl std::ops::Deref for Checkout<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Present until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(conn) if !conn.client.is_closed() => self.lane.idle.borrow_mut().push(conn),
            _ => {
                if let Some(permit) = self.permit.take() {
                    permit.forget();
                }
            }
        }
        // The permit (if kept) is released after the connection is back in `idle`.
    }
}
