//! Helpers of the jobs tests: a service over a test database, a real HTTP receiver on a
//! local socket, and waiting for a condition with a deadline (never a sleep as proof).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fluxbase_engine::jobs::{Caller, Job, JobStatus, Jobs, JobsSettings, NewJob};
use fluxbase_engine::supervise::Supervision;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Signing secret of the tests' servers.
pub const SECRET: &str = "test-signing-secret-0123456789";

/// Upper bound of any awaited condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// Settings for tests: local receivers allowed, short leases and backoff, and a safety-net
/// poll far longer than any test waits, so a job picked up in time was woken by NOTIFY.
pub fn settings() -> JobsSettings {
    JobsSettings {
        signing_secret: SECRET.into(),
        allow_private_urls: true,
        lease: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(250),
        poll_interval: Duration::from_secs(120),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(5),
        http_timeout: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(5),
        ..JobsSettings::default()
    }
}

/// A pool on `db`.
pub fn pool(db: &TestDb) -> Db {
    let settings = PoolSettings {
        max_connections: 20,
        min_connections: 0,
        ..PoolSettings::default()
    };
    Db::new(db.config(), settings)
}

/// A service on `db` (not started).
pub fn service(db: &TestDb, settings: JobsSettings) -> Jobs {
    Jobs::new(pool(db), db.config(), settings, Supervision::default()).expect("valid settings")
}

/// A started service on `db`.
pub async fn started(db: &TestDb, settings: JobsSettings) -> Jobs {
    let jobs = service(db, settings);
    jobs.start().await.expect("jobs start");
    jobs
}

/// The service-key caller.
pub fn service_key() -> Caller {
    Caller::Service("tests".into())
}

/// An `http` job to `url` with `body`.
pub fn http_job(name: &str, url: &str, body: Value) -> NewJob {
    NewJob {
        name: name.into(),
        kind: "http".into(),
        payload: Some(json!({"url": url, "body": body})),
        ..NewJob::default()
    }
}

/// Polls `check` until it yields a value, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until job `id` has `status`, and returns it.
pub async fn await_status(jobs: &Jobs, id: Uuid, status: JobStatus) -> Job {
    let caller = service_key();
    eventually(&format!("job {id} to be {}", status.as_str()), || async {
        let job = jobs.get(&caller, id).await.expect("get job");
        (job.status == status).then_some(job)
    })
    .await
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Request line (`POST /path HTTP/1.1`).
    pub line: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the receiver answers the n-th request (from 0).
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status, extra headers and a body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Never answers (keeps the connection open).
    Hang,
    /// 200 with a body of this many bytes, written as fast as the client reads.
    Huge(usize),
    /// 302 to itself.
    RedirectToSelf,
}

/// A real HTTP/1.1 receiver on 127.0.0.1.
pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`
    pub url: String,
    /// Requests as they arrive.
    pub requests: mpsc::UnboundedReceiver<Received>,
    /// Requests so far.
    pub count: Arc<AtomicUsize>,
}

impl Receiver {
    /// Starts a receiver answering with `reply(n)`.
    pub async fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(reply);
        let (counter, self_url) = (count.clone(), url.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (tx, reply, counter, self_url) =
                    (tx.clone(), reply.clone(), counter.clone(), self_url.clone());
                tokio::spawn(async move {
                    serve(socket, tx, move |n| reply(n), counter, self_url).await;
                });
            }
        });
        Receiver {
            url,
            requests,
            count,
        }
    }

    /// Answers every request with `status` and `body`.
    pub async fn always(status: u16, body: &str) -> Receiver {
        let body = body.to_string();
        Receiver::start(move |_| Reply::Status(status, Vec::new(), body.clone())).await
    }

    /// The next request, within [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a request in time")
            .expect("receiver running")
    }

    /// Requests received so far.
    pub fn received(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Serves one connection (keep-alive: several requests).
async fn serve(
    mut socket: TcpStream,
    tx: mpsc::UnboundedSender<Received>,
    reply: impl Fn(usize) -> Reply,
    counter: Arc<AtomicUsize>,
    self_url: String,
) {
    let mut buf = Vec::new();
    loop {
        // Read the head.
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(Received {
            at: Instant::now(),
            line,
            headers,
            body,
        });
        let written = match reply(n) {
            Reply::Status(status, extra, body) => {
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
                    body.len()
                );
                for (name, value) in extra {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                socket.write_all(out.as_bytes()).await
            }
            Reply::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
            Reply::Huge(size) => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                Ok(())
            }
            Reply::RedirectToSelf => {
                let out = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {self_url}\r\ncontent-length: 0\r\n\r\n"
                );
                socket.write_all(out.as_bytes()).await
            }
        };
        if written.is_err() {
            return;
        }
    }
}
