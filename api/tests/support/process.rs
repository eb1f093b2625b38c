//! The binary as a user runs it: a clean command, a temporary directory, a running server
//! whose log is read as it comes.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{EVENT_TIMEOUT, TEST_SECRET};

/// Path of the built `fluxbase` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fluxbase"))
}

/// A command for the binary with a clean configuration environment: no inherited
/// FLUXBASE_* or DATABASE_URL, run in `dir`.
pub fn fluxbase(dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("FLUXBASE_") && key != "FLUXBASE_PG_BINDIR")
            || key == "DATABASE_URL"
            || key == "RUST_LOG"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// A fresh directory under the temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "fluxbase-test-{}-{}",
            std::process::id(),
            fluxbase_migrations::secret::generate_secret(8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server process and the address it listens on (learned from its log). Its
/// stdout is drained continuously by a task: a full pipe would stall the server's logging.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every log line read so far.
    pub lines: Vec<String>,
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    drain: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts `cmd` (which must log JSON) and waits for its `listening` line.
    pub async fn start(mut cmd: Command) -> Server {
        cmd.env("FLUXBASE_LOG_FORMAT", "json")
            .env("FLUXBASE_SERVER_HOST", "127.0.0.1")
            .env("FLUXBASE_SERVER_PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn fluxbase");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let drain = tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
            lines: Vec::new(),
            rx,
            drain,
        };
        let line = server.wait_for_log("listening").await;
        let addr = line["address"].as_str().unwrap().to_string();
        server.addr = addr;
        server
    }

    /// Reads log lines until one whose message is `message`; fails on exit or timeout.
    pub async fn wait_for_log(&mut self, message: &str) -> serde_json::Value {
        let fut = async {
            loop {
                let Some(line) = self.rx.recv().await else {
                    panic!(
                        "fluxbase exited before logging {message:?}; log:\n{}",
                        self.lines.join("\n")
                    );
                };
                self.lines.push(line.clone());
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == message
                {
                    return v;
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| panic!("no {message:?} log line within {EVENT_TIMEOUT:?}"))
    }

    /// The log lines that arrived so far (for failure messages).
    pub fn drain_log(&mut self) -> Vec<String> {
        while let Ok(line) = self.rx.try_recv() {
            self.lines.push(line);
        }
        self.lines.clone()
    }

    /// Sends a signal (0: none) and waits for the exit, collecting the rest of the log.
    pub async fn stop(mut self, signal: i32) -> (std::process::ExitStatus, Vec<String>) {
        if signal != 0 {
            let pid = self.child.id().unwrap() as i32;
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, signal) };
        }
        let finish = async {
            let status = self.child.wait().await.unwrap();
            let _ = (&mut self.drain).await;
            while let Ok(line) = self.rx.try_recv() {
                self.lines.push(line);
            }
            status
        };
        let status = tokio::time::timeout(EVENT_TIMEOUT, finish)
            .await
            .expect("fluxbase did not exit after the signal");
        (status, self.lines)
    }
}

/// A server on `db` with realtime on, its own replication slot, and `extra` env vars.
pub async fn realtime_server(
    db: &fluxbase_migrations::test_utils::TestDb,
    extra: &[(&str, &str)],
) -> (Server, TempDir) {
    let dir = TempDir::new();
    let mut cmd = fluxbase(&dir.0);
    cmd.env("DATABASE_URL", db.url())
        .env("FLUXBASE_JWT_SECRET", TEST_SECRET)
        .env(
            "FLUXBASE_REPLICATION_SLOT_NAME",
            format!("slot_{}", db.name()),
        )
        .env(
            "FLUXBASE_REPLICATION_PUBLICATION_NAME",
            format!("pub_{}", db.name()),
        );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let server = Server::start(cmd).await;
    assert!(
        server
            .lines
            .iter()
            .any(|l| l.contains("realtime engine started")),
        "{}",
        server.lines.join("\n")
    );
    (server, dir)
}

/// A server on `db` without realtime (no replication slot), and `extra` env vars.
pub async fn plain_server(
    db: &fluxbase_migrations::test_utils::TestDb,
    extra: &[(&str, &str)],
) -> (Server, TempDir) {
    let dir = TempDir::new();
    let mut cmd = fluxbase(&dir.0);
    cmd.env("DATABASE_URL", db.url())
        .env("FLUXBASE_JWT_SECRET", TEST_SECRET)
        .env("FLUXBASE_REALTIME_ENABLED", "false");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    (Server::start(cmd).await, dir)
}
