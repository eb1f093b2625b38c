//! A log writer that never blocks the thread that logs. Formatted lines go into a bounded
//! queue that one dedicated thread writes to stdout; when stdout cannot keep up (a full
//! pipe, a stalled collector) lines are dropped and counted, never waited for — request
//! handling and the realtime engine must not stall on logging. The writer thread reports
//! the drops as soon as it can write again (`fluxbase_log_lines_dropped_total` and a warning).
//! At process exit the queue is drained (bounded wait), so the last lines are not lost.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines the queue holds before dropping (about a few MB of JSON lines at most).
pub const QUEUE_LINES: usize = 16_384;

/// How long the writer thread sleeps after writing what was queued, before it waits for
/// the next line. Under load (a line per request, thousands a second) a writer that
/// blocked again at once would be woken by every line — a futex wake and a context switch
/// per line, about a tenth of the server's CPU in the REST benchmark; lingering lets the
/// lines of the next couple of milliseconds queue up without waking anyone. An idle
/// writer still sleeps in `recv`, so this costs nothing when nothing is logged, and a line
/// waits at most this long more.
const LINGER: Duration = Duration::from_millis(2);

/// The writer's buffer: the lines of one drain are written together.
const DRAIN_BUFFER: usize = 64 * 1024;

/// How long process exit waits for the queue to drain.
const EXIT_DRAIN: Duration = Duration::from_secs(2);

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The queue and its drop count; cheap to share.
#[derive(Debug)]
pub struct LogPipe {
    tx: SyncSender<Message>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl LogPipe {
    /// A pipe of `capacity` lines whose writer thread writes to `sink`.
    pub fn start(capacity: usize, sink: Box<dyn Write + Send>) -> &'static LogPipe {
        let (tx, rx) = sync_channel(capacity);
        let pipe: &'static LogPipe = Box::leak(Box::new(LogPipe {
            tx,
            dropped: AtomicU64::new(0),
        }));
        std::thread::Builder::new()
            .name("fluxbase-log".into())
            .spawn(move || pipe.write_loop(rx, sink))
            .expect("spawn the log writer thread");
        pipe
    }

    /// Queues one line, or drops it when the queue is full.
    fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Lines dropped since the last report.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits (at most `timeout`) until every line queued before this call is written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.send(Message::Flush(done_tx)).is_err() {
            return false;
        }
        done_rx.recv_timeout(timeout).is_ok()
    }

    /// The writer thread: what is queued, then a [`LINGER`], then wait for more.
    fn write_loop(&self, rx: Receiver<Message>, sink: Box<dyn Write + Send>) {
        // The lines of one drain go out in as few writes as fit the buffer (one system
        // call per line was one per HTTP request); whole lines only, flushed before the
        // writer sleeps.
        let mut sink = std::io::BufWriter::with_capacity(DRAIN_BUFFER, sink);
        while let Ok(first) = rx.recv() {
            self.handle(first, &mut sink);
            while let Ok(message) = rx.try_recv() {
                self.handle(message, &mut sink);
            }
            let _ = sink.flush();
            std::thread::sleep(LINGER);
        }
        let _ = sink.flush();
    }

    /// Writes one line, or answers a flush.
    fn handle(&self, message: Message, sink: &mut impl Write) {
        match message {
            Message::Line(line) => {
                let _ = sink.write_all(&line);
                let dropped = self.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    metrics::counter!("fluxbase_log_lines_dropped_total").increment(dropped);
                    // Logged from this thread: it queues like any line, never blocks.
                    tracing::warn!(dropped, "log lines dropped: stdout could not keep up");
                }
            }
            Message::Flush(done) => {
                let _ = sink.flush();
                let _ = done.send(());
            }
        }
    }
}

/// The `MakeWriter` of the global logger: one buffer per event, queued on drop.
#[derive(Debug, Clone, Copy)]
pub struct NonBlocking(pub &'static LogPipe);

/// One event's bytes; sent as one line when the formatter drops it.
#[derive(Debug)]
pub struct LineWriter {
    pipe: &'static LogPipe,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.pipe.send(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for NonBlocking {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            pipe: self.0,
            buf: Vec::with_capacity(256),
        }
    }
}

static STDOUT: OnceLock<&'static LogPipe> = OnceLock::new();
/// Serializes the exit hook's registration with the pipe's creation.
static INIT: Mutex<()> = Mutex::new(());

/// The process-wide pipe to stdout (drained at exit).
pub fn stdout() -> &'static LogPipe {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    STDOUT.get_or_init(|| {
        let pipe = LogPipe::start(QUEUE_LINES, Box::new(std::io::stdout()));
        // SAFETY: registering a plain extern "C" function has no preconditions.
        unsafe { libc::atexit(drain_at_exit) };
        pipe
    })
}

extern "C" fn drain_at_exit() {
    if let Some(pipe) = STDOUT.get() {
        pipe.flush(EXIT_DRAIN);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// A sink that blocks on its first write until the test releases it.
    struct Stuck(Arc<Barrier>, Arc<Mutex<Vec<u8>>>);

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.1.lock().unwrap().is_empty() {
                self.0.wait();
            }
            self.1.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stdout_drops_lines_instead_of_blocking_the_logger() {
        let release = Arc::new(Barrier::new(2));
        let written = Arc::new(Mutex::new(Vec::new()));
        let pipe = LogPipe::start(4, Box::new(Stuck(release.clone(), written.clone())));
        let writer = NonBlocking(pipe);
        // The writer thread takes line 0 and blocks in the sink; 4 more fill the queue.
        for i in 0..100 {
            let mut w = writer.make_writer();
            writeln!(w, "line {i}").unwrap();
        }
        // Every send returned (this thread is here), and what did not fit was counted.
        let dropped = pipe.dropped();
        assert!((95..=99).contains(&dropped), "dropped {dropped}");
        release.wait();
        assert!(pipe.flush(Duration::from_secs(10)), "the queue drains");
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert_eq!(text.lines().count() as u64, 100 - dropped, "{text}");
    }
}
