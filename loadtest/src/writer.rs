//! Writers: PostgreSQL connections inserting (and updating) rows at a target rate, each
//! write carrying a run-unique sequence number, recording which committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::{join_all, join4};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::tally::ErrorTally;

/// Pacing period: at each tick a writer issues the writes that are due, pipelined.
const TICK: Duration = Duration::from_millis(5);
/// Cap on rows pipelined in one tick (at least one transaction), so a writer that fell
/// behind catches up gradually.
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
    /// Rows per transaction (1: each row autocommitted on its own).
    pub rows_per_commit: usize,
    pub payload: Arc<String>,
    /// The run's sequence counter (starts at 1).
    pub seq: Arc<AtomicU64>,
    /// Writes issued across all writers (for progress).
    pub issued: Arc<AtomicU64>,
    pub errors: Arc<ErrorTally>,
}

/// One row to write: an insert, or an update of the owner's last committed row.
#[derive(Debug, Clone, Copy)]
struct Op {
    owner: u32,
    seq: u64,
    update_row: Option<i64>,
}

/// The outcome of one op: committed (with the row id), or failed with an error kind.
type OpResult = Result<i64, String>;

/// The writer's prepared statements.
struct Statements {
    /// One row, autocommitted (`rows_per_commit` 1).
    insert: Statement,
    /// Many rows in one statement, inserted in the order of the arrays.
    insert_many: Statement,
    update: Statement,
}

impl Statements {
    async fn prepare(client: &Client, table: &str) -> Result<Self, tokio_postgres::Error> {
        let insert = format!(
            "INSERT INTO public.{table} (user_id, seq, payload) VALUES ($1, $2, $3) RETURNING id"
        );
        // WITH ORDINALITY … ORDER BY: rows go into the WAL in array order, which is
        // ascending `seq`, so the ledger can check the order within a transaction.
        let insert_many = format!(
            "INSERT INTO public.{table} (user_id, seq, payload)
             SELECT r.u, r.s, $3 FROM unnest($1::uuid[], $2::int8[]) WITH ORDINALITY AS r(u, s, o)
             ORDER BY r.o
             RETURNING id, seq"
        );
        let update = format!(
            "UPDATE public.{table} SET seq = $2, payload = $3, written_at = clock_timestamp() WHERE id = $1"
        );
        Ok(Statements {
            insert: client.prepare(&insert).await?,
            insert_many: client.prepare(&insert_many).await?,
            update: client.prepare(&update).await?,
        })
    }
}

/// Writes until `stop` turns true.
///
/// With `rows_per_commit` 1 every row is its own autocommitted statement; with N > 1 the
/// due rows are grouped into transactions of exactly N rows (BEGIN, one multi-row INSERT,
/// the UPDATEs, COMMIT, pipelined), and a transaction is issued only once all its N rows
/// are due, so the offered rate stays in rows/s.
pub async fn run_writer(
    client: Client,
    plan: WritePlan,
    mut stop: watch::Receiver<bool>,
) -> WriteLog {
    let mut log = WriteLog::default();
    let statements = match Statements::prepare(&client, &plan.table).await {
        Ok(statements) => statements,
        Err(err) => {
            plan.errors.add(format!("write:prepare_{}", sql_kind(&err)));
            return log;
        }
    };
    let per_commit = plan.rows_per_commit.max(1) as u64;
    // Whole transactions per tick, at least one.
    let max_per_tick = MAX_PER_TICK.max(per_commit) / per_commit * per_commit;
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
        let batch = due.saturating_sub(issued).min(max_per_tick) / per_commit * per_commit;
        if batch == 0 {
            continue;
        }
        issued += batch;
        plan.issued.fetch_add(batch, Ordering::Relaxed);
        let ops = plan_ops(&plan, &last_row, batch as usize, per_commit as usize);
        let results = if per_commit == 1 {
            join_all(
                ops.iter()
                    .map(|op| write_one(&client, &statements, &plan, *op)),
            )
            .await
        } else {
            join_all(
                ops.chunks(per_commit as usize)
                    .map(|chunk| write_transaction(&client, &statements, &plan, chunk)),
            )
            .await
            .into_iter()
            .flatten()
            .collect()
        };
        for (op, result) in ops.iter().zip(results) {
            match result {
                Ok(id) => {
                    log.committed.push((op.seq, op.owner));
                    last_row.insert(op.owner, id);
                }
                Err(kind) => {
                    log.failed += 1;
                    plan.errors.add(kind);
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

/// Chooses owners and kinds for `batch` rows, in transactions of `per_commit`, and numbers
/// them: inside a transaction the inserts come first, then the updates, with ascending
/// sequence numbers in that order (the order they are written in).
fn plan_ops(
    plan: &WritePlan,
    last_row: &HashMap<u32, i64>,
    batch: usize,
    per_commit: usize,
) -> Vec<Op> {
    let mut rng = rand::rng();
    let mut ops = Vec::with_capacity(batch);
    for _ in 0..batch / per_commit {
        let mut chunk: Vec<Op> = (0..per_commit)
            .map(|_| {
                let owner = rng.random_range(0..plan.owners.len()) as u32;
                let update_row = if plan.update_percent > 0
                    && rng.random_range(0..100u8) < plan.update_percent
                {
                    last_row.get(&owner).copied()
                } else {
                    None
                };
                Op {
                    owner,
                    seq: 0,
                    update_row,
                }
            })
            .collect();
        chunk.sort_by_key(|op| op.update_row.is_some());
        let first = plan.seq.fetch_add(per_commit as u64, Ordering::Relaxed);
        for (i, op) in chunk.iter_mut().enumerate() {
            op.seq = first + i as u64;
        }
        ops.extend(chunk);
    }
    ops
}

/// One row in its own (autocommitted) statement.
async fn write_one(client: &Client, st: &Statements, plan: &WritePlan, op: Op) -> OpResult {
    let seq = op.seq as i64;
    match op.update_row {
        Some(id) => match client
            .execute(&st.update, &[&id, &seq, &*plan.payload])
            .await
        {
            Ok(1) => Ok(id),
            Ok(_) => Err("write:update_missed_row".to_owned()),
            Err(err) => Err(format!("write:{}", sql_kind(&err))),
        },
        None => {
            let user = plan.owners[op.owner as usize];
            client
                .query_one(&st.insert, &[&user, &seq, &*plan.payload])
                .await
                .map(|row| row.get::<_, i64>(0))
                .map_err(|err| format!("write:{}", sql_kind(&err)))
        }
    }
}

/// One transaction of `ops` (inserts first, then updates), pipelined: BEGIN, the
/// multi-row INSERT, each UPDATE, COMMIT. All rows commit or none does; an UPDATE that
/// found no row is the only op that fails alone.
async fn write_transaction(
    client: &Client,
    st: &Statements,
    plan: &WritePlan,
    ops: &[Op],
) -> Vec<OpResult> {
    let inserts = ops.iter().take_while(|op| op.update_row.is_none()).count();
    let users: Vec<Uuid> = ops[..inserts]
        .iter()
        .map(|op| plan.owners[op.owner as usize])
        .collect();
    let seqs: Vec<i64> = ops[..inserts].iter().map(|op| op.seq as i64).collect();
    let (begun, inserted, updated, committed) = join4(
        client.batch_execute("BEGIN"),
        async {
            if inserts == 0 {
                return Ok(Vec::new());
            }
            client
                .query(&st.insert_many, &[&users, &seqs, &*plan.payload])
                .await
        },
        join_all(ops[inserts..].iter().map(|op| {
            let (id, seq) = (op.update_row.unwrap_or_default(), op.seq as i64);
            async move {
                client
                    .execute(&st.update, &[&id, &seq, &*plan.payload])
                    .await
            }
        })),
        client.batch_execute("COMMIT"),
    )
    .await;
    // A failed statement aborted the transaction: COMMIT then rolled it back. The first
    // failure names the kind (the later ones are 25P02, "transaction aborted").
    let kind = |err: &tokio_postgres::Error| format!("write:{}", sql_kind(err));
    let failure = begun
        .as_ref()
        .err()
        .map(kind)
        .or_else(|| inserted.as_ref().err().map(kind))
        .or_else(|| updated.iter().find_map(|r| r.as_ref().err().map(kind)))
        .or_else(|| committed.as_ref().err().map(kind));
    if let Some(kind) = failure {
        return vec![Err(kind); ops.len()];
    }
    let mut results = Vec::with_capacity(ops.len());
    // RETURNING id, seq: map each inserted row back to its op by its sequence number.
    let ids: HashMap<i64, i64> = inserted
        .unwrap_or_default()
        .iter()
        .map(|row| (row.get::<_, i64>(1), row.get::<_, i64>(0)))
        .collect();
    for op in &ops[..inserts] {
        results.push(
            ids.get(&(op.seq as i64))
                .copied()
                .ok_or_else(|| "write:insert_missing_row".to_owned()),
        );
    }
    for (op, count) in ops[inserts..].iter().zip(updated) {
        results.push(match count {
            Ok(1) => Ok(op.update_row.unwrap_or_default()),
            _ => Err("write:update_missed_row".to_owned()),
        });
    }
    results
}

/// The SQLSTATE of a database error, or `io` for a connection failure.
pub fn sql_kind(err: &tokio_postgres::Error) -> String {
    match err.code() {
        Some(code) => code.code().to_owned(),
        None if err.is_closed() => "closed".to_owned(),
        None => "io".to_owned(),
    }
}
