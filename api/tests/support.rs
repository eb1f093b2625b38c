//! Helpers: the app over a test database, a minimal HTTP client, the binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fluxbase_api::config::Config;
use fluxbase_api::http::AppState;
use fluxbase_migrations::Db;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long any awaited event in these tests may take before the test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// App state over the database at `url`.
pub fn state_for(url: &str) -> AppState {
    let mut config = Config::default();
    config.database.url = Some(url.to_string());
    config.database.connect_timeout = fluxbase_api::config::Dur::secs(2);
    let db = Db::new(
        fluxbase_migrations::pool::parse_url(url).unwrap(),
        config.database.pool_settings(),
    );
    AppState::new(config, db)
}

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

/// A response of [`http`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub async fn http(addr: &str, method: &str, path: &str) -> Response {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Response {
            status,
            headers: head.to_string(),
            body: body.to_string(),
        }
    };
    tokio::time::timeout(EVENT_TIMEOUT, fut)
        .await
        .expect("HTTP request timed out")
}

/// The JWT secret of test servers.
pub const TEST_SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256-0123456789";

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

/// A signed token for `claims` (exp one hour ahead unless given).
pub fn token(claims: serde_json::Value) -> String {
    let mut map = claims.as_object().cloned().unwrap_or_default();
    map.entry("exp").or_insert_with(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        serde_json::json!(now + 3600)
    });
    fluxbase_auth::JwtKeys::hs256(TEST_SECRET.as_bytes()).sign(&map)
}

/// A WebSocket client of `/realtime`.
pub struct Ws {
    pub inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Connects with an optional token in the query string.
    pub async fn connect(addr: &str, token: Option<&str>) -> Ws {
        let url = match token {
            Some(t) => format!("ws://{addr}/realtime?token={t}"),
            None => format!("ws://{addr}/realtime"),
        };
        let (inner, _) = tokio::time::timeout(EVENT_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket connect timed out")
            .expect("websocket connect");
        Ws { inner }
    }

    /// Sends a JSON text frame.
    pub async fn send(&mut self, value: serde_json::Value) {
        use futures_util::SinkExt;
        self.inner
            .send(tokio_tungstenite::tungstenite::Message::text(
                value.to_string(),
            ))
            .await
            .expect("websocket send");
    }

    /// Sends raw text.
    pub async fn send_raw(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.inner
            .send(tokio_tungstenite::tungstenite::Message::text(
                text.to_string(),
            ))
            .await
            .expect("websocket send");
    }

    /// The next event: a JSON frame, or the close frame's (code, reason).
    pub async fn next_event(&mut self) -> WsEvent {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let fut = async {
            loop {
                match self.inner.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return WsEvent::Frame(
                            serde_json::from_str(t.as_str()).expect("server frame is JSON"),
                        );
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return WsEvent::Closed(
                            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                        );
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return WsEvent::Closed(None),
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, fut)
            .await
            .expect("no websocket event in time")
    }

    /// The next JSON frame; fails on close.
    pub async fn frame(&mut self) -> serde_json::Value {
        match self.next_event().await {
            WsEvent::Frame(v) => v,
            WsEvent::Closed(c) => panic!("socket closed: {c:?}"),
        }
    }

    /// The next frame of `kind`, skipping others (heartbeats, presence…).
    pub async fn frame_of(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let f = self.frame().await;
            if f["type"] == kind {
                return f;
            }
        }
    }

    /// Subscribes and returns the ack.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        config: serde_json::Value,
    ) -> serde_json::Value {
        self.send(serde_json::json!({"type": "subscribe", "channel": channel, "config": config}))
            .await;
        self.frame().await
    }
}

/// What a socket saw next.
#[derive(Debug)]
pub enum WsEvent {
    /// A JSON text frame.
    Frame(serde_json::Value),
    /// A close, with its code and reason when given.
    Closed(Option<(u16, String)>),
}
