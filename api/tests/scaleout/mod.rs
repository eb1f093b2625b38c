//! Scale-out (issue 17): a real `redis-server` (its own unix socket and directory) and
//! several real `fluxbase` processes on loopback sharing one database and one slot.

mod changes;
mod channels;
mod limits;
mod operations;
mod retention;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fluxbase_migrations::test_utils::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::support::{EVENT_TIMEOUT, Server, TempDir, http, realtime_server};

/// Path of `redis-server`, installed with the repository's script where missing.
fn redis_binary() -> PathBuf {
    let found = |p: &str| std::path::Path::new(p).exists().then(|| PathBuf::from(p));
    if let Some(path) =
        found("/usr/bin/redis-server").or_else(|| found("/usr/local/bin/redis-server"))
    {
        return path;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/scripts/install-deps.sh"
    );
    let status = std::process::Command::new(script)
        .arg("redis")
        .status()
        .expect("run deploy/scripts/install-deps.sh redis");
    assert!(status.success(), "installing redis-server failed");
    found("/usr/bin/redis-server").expect("redis-server installed")
}

/// A `redis-server` on a unix socket in its own directory, append-only with fsync on every
/// write (so a restart loses nothing the leader was told was stored); killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub dir: TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let dir = TempDir::new();
        let mut redis = Redis { child: None, dir };
        redis.spawn().await;
        redis
    }

    fn socket(&self) -> PathBuf {
        self.dir.0.join("redis.sock")
    }

    /// The URL instances are given.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    async fn spawn(&mut self) {
        let child = Command::new(redis_binary())
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--dir")
            .arg(&self.dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while !self.pings().await {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the server answers PING.
    async fn pings(&self) -> bool {
        let Ok(mut sock) = tokio::net::UnixStream::connect(self.socket()).await else {
            return false;
        };
        if sock.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        sock.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
    }

    /// Runs one command (RESP over the unix socket); returns the raw reply's first line.
    pub async fn command(&self, args: &[&str]) -> String {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut sock = tokio::net::UnixStream::connect(self.socket())
            .await
            .unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            sock.read_exact(&mut byte).await.unwrap();
            reply.push(byte[0]);
        }
        String::from_utf8(reply).unwrap().trim_end().to_string()
    }

    /// SIGKILL, then start again on the same socket and files.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        let _ = std::fs::remove_file(self.socket());
        self.spawn().await;
    }
}

/// The env of an instance of the cluster.
fn cluster_env(redis: &Redis) -> Vec<(&'static str, String)> {
    vec![
        ("FLUXBASE_REALTIME_BUS", "redis".into()),
        ("FLUXBASE_REDIS_URL", redis.url()),
    ]
}

/// `n` instances on `db`, started one after the other (each runs the migrations); the first
/// is the slot leader.
pub async fn start_instances(db: &TestDb, redis: &Redis, n: usize) -> Vec<(Server, TempDir)> {
    let env = cluster_env(redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut instances = Vec::new();
    for _ in 0..n {
        instances.push(realtime_server(db, &env).await);
    }
    instances
}

/// An instance's `/api/v1/monitoring/health` body.
pub async fn health(addr: &str) -> serde_json::Value {
    http(addr, "GET", "/api/v1/monitoring/health").await.json()
}

/// Whether the instance at `addr` is the slot leader.
pub async fn is_leader(addr: &str) -> bool {
    health(addr).await["components"]["realtime"]["leader"] == true
}

/// The index of the one leader among `addrs`, waiting until exactly one reports it.
pub async fn leader_of(addrs: &[String]) -> usize {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let mut leaders = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            if is_leader(addr).await {
                leaders.push(i);
            }
        }
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(Instant::now() < deadline, "leaders: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
