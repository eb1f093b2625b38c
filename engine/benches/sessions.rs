//! Socket sessions as task loops (what the engine runs: a task draining a bounded mpsc
//! queue) or as actix actors (a mailbox per socket): the two costs a design choice between
//! them turns on, for 5,000 sessions on one thread —
//! 1. **connect storm**: starting 5,000 sessions (and the memory they take);
//! 2. **public fan-out**: one message to each of 5,000 sessions, until every one has
//!    handled it (the dispatcher's `try_send` per recipient, against `do_send` into each
//!    actor's mailbox).
//!
//! ```text
//! cargo bench -p fluxbase-engine --bench sessions
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::{Notify, mpsc};

/// Sessions per run.
const SESSIONS: usize = 5_000;

/// A frame as the engine queues it: shared pointers.
#[derive(Clone, Message)]
#[rtype(result = "()")]
struct Frame(Arc<str>);

/// Counts handled frames; wakes the bench when all are.
#[derive(Clone)]
struct Done {
    left: Rc<Cell<usize>>,
    all: Rc<Notify>,
}

impl Done {
    fn new(n: usize) -> Done {
        Done {
            left: Rc::new(Cell::new(n)),
            all: Rc::new(Notify::new()),
        }
    }

    fn one(&self) {
        let left = self.left.get() - 1;
        self.left.set(left);
        if left == 0 {
            self.all.notify_one();
        }
    }

    fn reset(&self, n: usize) {
        self.left.set(n);
    }
}

/// A session as an actor.
struct Session {
    done: Done,
}

impl Actor for Session {
    type Context = Context<Self>;
}

impl Handler<Frame> for Session {
    type Result = ();
    fn handle(&mut self, frame: Frame, _: &mut Context<Self>) {
        black_box(frame.0.len());
        self.done.one();
    }
}

/// A session as a task loop draining its queue.
fn task_session(mut rx: mpsc::Receiver<Frame>, done: Done) {
    actix::spawn(async move {
        while let Some(frame) = rx.recv().await {
            black_box(frame.0.len());
            done.one();
        }
    });
}

/// Resident memory (bytes), from /proc.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn sessions(c: &mut Criterion) {
    let system = System::new();
    let frame = Frame(Arc::from("x".repeat(300)));

    // Memory of 5,000 idle sessions each way (printed once; criterion times the rest).
    system.block_on(async {
        let before = rss();
        let done = Done::new(0);
        let senders: Vec<_> = (0..SESSIONS)
            .map(|_| {
                let (tx, rx) = mpsc::channel(1024);
                task_session(rx, done.clone());
                tx
            })
            .collect();
        tokio::task::yield_now().await;
        let tasks = rss().saturating_sub(before);
        drop(senders);
        tokio::task::yield_now().await;
        let before = rss();
        let addrs: Vec<_> = (0..SESSIONS)
            .map(|_| Session { done: done.clone() }.start())
            .collect();
        tokio::task::yield_now().await;
        let actors = rss().saturating_sub(before);
        eprintln!(
            "rss of {SESSIONS} idle sessions: task loops {} KiB, actors {} KiB",
            tasks / 1024,
            actors / 1024
        );
        for addr in addrs {
            addr.do_send(StopSession);
        }
    });

    let mut group = c.benchmark_group("connect_storm_5000");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    group.bench_function("task_loops", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let done = Done::new(0);
                    let start = Instant::now();
                    let senders: Vec<_> = (0..SESSIONS)
                        .map(|_| {
                            let (tx, rx) = mpsc::channel(1024);
                            task_session(rx, done.clone());
                            tx
                        })
                        .collect();
                    tokio::task::yield_now().await;
                    total += start.elapsed();
                    drop(senders);
                    tokio::task::yield_now().await;
                }
                total
            })
        })
    });
    group.bench_function("actors", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let done = Done::new(0);
                    let start = Instant::now();
                    let addrs: Vec<_> = (0..SESSIONS)
                        .map(|_| Session { done: done.clone() }.start())
                        .collect();
                    tokio::task::yield_now().await;
                    total += start.elapsed();
                    for addr in addrs {
                        addr.do_send(StopSession);
                    }
                    tokio::task::yield_now().await;
                }
                total
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("public_fanout_5000");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    group.bench_function("task_loops_try_send", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let done = Done::new(0);
                let senders: Vec<_> = (0..SESSIONS)
                    .map(|_| {
                        let (tx, rx) = mpsc::channel(1024);
                        task_session(rx, done.clone());
                        tx
                    })
                    .collect();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    done.reset(SESSIONS);
                    let start = Instant::now();
                    for tx in &senders {
                        let _ = tx.try_send(frame.clone());
                    }
                    done.all.notified().await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.bench_function("actors_do_send", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let done = Done::new(0);
                let addrs: Vec<_> = (0..SESSIONS)
                    .map(|_| Session { done: done.clone() }.start())
                    .collect();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    done.reset(SESSIONS);
                    let start = Instant::now();
                    for addr in &addrs {
                        addr.do_send(frame.clone());
                    }
                    done.all.notified().await;
                    total += start.elapsed();
                }
                for addr in addrs {
                    addr.do_send(StopSession);
                }
                total
            })
        })
    });
    group.finish();
}

/// Stops a session actor.
#[derive(Message)]
#[rtype(result = "()")]
struct StopSession;

impl Handler<StopSession> for Session {
    type Result = ();
    fn handle(&mut self, _: StopSession, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = sessions
}
criterion_main!(benches);
