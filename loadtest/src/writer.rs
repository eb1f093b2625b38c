//! Writers: PostgreSQL connections inserting (and updating) rows at a target rate, each
//! write carrying a run-unique sequence number, recording which committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::tally::ErrorTally;

/// Pacing period: at each tick a writer issues the writes that are due, pipelined.
const TICK: Duration = Duration::from_millis(5);
/// Cap on writes pipelined in one tick, so a writer that fell behind catches up gradually.
const MAX_PER_TICK: u64 = 512;

/// What one writer committed.
#[derive(Debug, Default)]
pub struct WriteLog {
    /// (sequence, owner index) of every committed write.
    pub committed: Vec<(u64, u32)>,
    /// Writes that failed (not committed, not expected by anyone).
    pub failed: u64,
}

/// Shared writer inputs.
pub struct WritePlan {
    /// `public.<table>`.
    pub table: String,
    /// Owner user ids; write i goes to a random one.
    pub owners: Arc<Vec<Uuid>>,
    /// Writes/s for this writer.
    pub rate: f64,
    /// Percentage of writes that update the owner's last row instead of inserting.
    pub update_percent: u8,
    pub payload: Arc<String>,
    /// The run's sequence counter (starts at 1).
    pub seq: Arc<AtomicU64>,
    /// Writes issued across all writers (for progress).
    pub issued: Arc<AtomicU64>,
    pub errors: Arc<ErrorTally>,
}

/// Writes until `stop` turns true.
pub async fn run_writer(
    client: Client,
    plan: WritePlan,
    mut stop: watch::Receiver<bool>,
) -> WriteLog {
    let mut log = WriteLog::default();
    let insert = format!(
        "INSERT INTO public.{} (user_id, seq, payload) VALUES ($1, $2, $3) RETURNING id",
        plan.table
    );
    let update = format!(
        "UPDATE public.{} SET seq = $2, payload = $3, written_at = clock_timestamp() WHERE id = $1",
        plan.table
    );
    let (insert, update) = match (client.prepare(&insert).await, client.prepare(&update).await) {
        (Ok(i), Ok(u)) => (i, u),
        (Err(err), _) | (_, Err(err)) => {
            plan.errors.add(format!("write:prepare_{}", sql_kind(&err)));
            return log;
        }
    };
    // The last row id inserted per owner, for updates.
    let mut last_row: HashMap<u32, i64> = HashMap::new();
    let started = Instant::now();
    let mut issued: u64 = 0;
    let mut timer = tokio::time::interval(TICK);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Stop first: once the phase is over, not one more batch is issued.
            biased;
            _ = crate::socket::until_set(&mut stop) => break,
            _ = timer.tick() => {}
        }
        let due = (started.elapsed().as_secs_f64() * plan.rate) as u64;
        let batch = due.saturating_sub(issued).min(MAX_PER_TICK);
        if batch == 0 {
            continue;
        }
        issued += batch;
        plan.issued.fetch_add(batch, Ordering::Relaxed);
        let ops: Vec<(u32, u64, Option<i64>)> = {
            let mut rng = rand::rng();
            (0..batch)
                .map(|_| {
                    let owner = rng.random_range(0..plan.owners.len()) as u32;
                    let seq = plan.seq.fetch_add(1, Ordering::Relaxed);
                    let update_row = if plan.update_percent > 0
                        && rng.random_range(0..100u8) < plan.update_percent
                    {
                        last_row.get(&owner).copied()
                    } else {
                        None
                    };
                    (owner, seq, update_row)
                })
                .collect()
        };
        let results = join_all(ops.iter().map(|&(owner, seq, update_row)| {
            let (client, insert, update, plan) = (&client, &insert, &update, &plan);
            async move {
                let seq_param = seq as i64;
                let user = plan.owners[owner as usize];
                match update_row {
                    Some(id) => client
                        .execute(update, &[&id, &seq_param, &*plan.payload])
                        .await
                        .map(|n| if n == 1 { Some(id) } else { None }),
                    None => client
                        .query_one(insert, &[&user, &seq_param, &*plan.payload])
                        .await
                        .map(|row| Some(row.get::<_, i64>(0))),
                }
            }
        }))
        .await;
        for (&(owner, seq, _), result) in ops.iter().zip(results) {
            match result {
                Ok(Some(id)) => {
                    log.committed.push((seq, owner));
                    last_row.insert(owner, id);
                }
                Ok(None) => {
                    log.failed += 1;
                    plan.errors.add("write:update_missed_row");
                }
                Err(err) => {
                    log.failed += 1;
                    plan.errors.add(format!("write:{}", sql_kind(&err)));
                }
            }
        }
        if client.is_closed() {
            plan.errors.add("write:connection_closed");
            break;
        }
    }
    log
}

/// The SQLSTATE of a database error, or `io` for a connection failure.
pub fn sql_kind(err: &tokio_postgres::Error) -> String {
    match err.code() {
        Some(code) => code.code().to_owned(),
        None if err.is_closed() => "closed".to_owned(),
        None => "io".to_owned(),
    }
}
