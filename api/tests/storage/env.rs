//! The storage tests' world: the app in-process with storage on a fresh local directory or
//! a fresh bucket of the shared s3s-fs server, over a fresh database; the binary with the
//! same backends; signed-in users; and a streaming HTTP/1.1 client for bodies too large
//! to hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use fluxbase_api::config::{Config, StorageProvider};
use fluxbase_api::http::AppState;
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_storage::test_utils::{fresh_s3_bucket, temp_path};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::{Reply, Server, TempDir, TestApp, plain_server, token};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh directory.
    Local,
    /// A fresh bucket of the shared s3s-fs server.
    S3,
}

/// Where a backend keeps its bytes (removed on drop).
pub struct Root {
    /// The directory holding the objects' files (the local root, or the S3 bucket's
    /// directory in the s3s-fs root).
    pub dir: PathBuf,
    /// The settings that select it, as `storage.*` keys / their variables.
    pub env: Vec<(String, String)>,
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Root {
    /// A fresh root on `backend`.
    pub fn new(backend: Backend) -> Root {
        match backend {
            Backend::Local => {
                let dir = temp_path("http-root");
                std::fs::create_dir_all(&dir).unwrap();
                let env = vec![
                    ("FLUXBASE_STORAGE_PROVIDER".into(), "local".into()),
                    (
                        "FLUXBASE_STORAGE_LOCAL_PATH".into(),
                        dir.display().to_string(),
                    ),
                ];
                Root { dir, env }
            }
            Backend::S3 => {
                let (s3, dir) = fresh_s3_bucket();
                let env = vec![
                    ("FLUXBASE_STORAGE_PROVIDER".into(), "s3".into()),
                    ("FLUXBASE_S3_ENDPOINT".into(), s3.endpoint.unwrap()),
                    ("FLUXBASE_S3_ACCESS_KEY".into(), s3.access_key),
                    ("FLUXBASE_S3_SECRET_KEY".into(), s3.secret_key),
                    ("FLUXBASE_S3_BUCKET".into(), s3.bucket),
                    ("FLUXBASE_S3_REGION".into(), s3.region),
                ];
                Root { dir, env }
            }
        }
    }

    /// Applies the root's settings to a configuration.
    pub fn configure(&self, config: &mut Config) {
        for (key, value) in &self.env {
            match key.as_str() {
                "FLUXBASE_STORAGE_PROVIDER" if value == "s3" => {
                    config.storage.provider = StorageProvider::S3
                }
                "FLUXBASE_STORAGE_PROVIDER" => config.storage.provider = StorageProvider::Local,
                "FLUXBASE_STORAGE_LOCAL_PATH" => config.storage.local_path = value.clone(),
                "FLUXBASE_S3_ENDPOINT" => config.storage.s3.endpoint = Some(value.clone()),
                "FLUXBASE_S3_ACCESS_KEY" => config.storage.s3.access_key = Some(value.clone()),
                "FLUXBASE_S3_SECRET_KEY" => config.storage.s3.secret_key = Some(value.clone()),
                "FLUXBASE_S3_BUCKET" => config.storage.s3.bucket = Some(value.clone()),
                "FLUXBASE_S3_REGION" => config.storage.s3.region = value.clone(),
                _ => unreachable!("{key}"),
            }
        }
    }

    /// Every regular file under the root, hidden areas included.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }

    /// The files that hold object bytes (not probes or the hidden area).
    pub fn object_files(&self) -> Vec<PathBuf> {
        self.files()
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains(".fluxbase"))
            .collect()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk(&entry.path(), out),
            Ok(_) => out.push(entry.path()),
            Err(_) => {}
        }
    }
}

/// The app in-process with storage on a backend.
pub struct Env {
    pub app: TestApp,
    pub root: Root,
}

impl Env {
    /// A fresh database and root; `tweak` adjusts the rest of the configuration.
    pub async fn with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Env {
        let root = Root::new(backend);
        let app = TestApp::with_state(
            |config| {
                root.configure(config);
                tweak(config);
            },
            |state| {
                let storage = AppState::open_storage(&state.config, state.db.clone())
                    .expect("open the storage backend");
                state.with_storage(storage)
            },
        )
        .await;
        Env { app, root }
    }

    /// A fresh database and root with the test defaults.
    pub async fn new(backend: Backend) -> Env {
        Env::with(backend, |_| {}).await
    }

    /// Runs SQL as the database superuser (policies, inspection).
    pub async fn sql(&self, sql: &str) {
        self.app
            .db()
            .client()
            .await
            .batch_execute(sql)
            .await
            .unwrap();
    }

    /// A count, as the superuser.
    pub async fn count(&self, sql: &str) -> i64 {
        self.app
            .db()
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Sends `req` with `token` as `Authorization: Bearer` (none: anon).
    pub async fn call(&self, req: TestRequest, token: Option<&str>) -> Reply {
        let req = match token {
            Some(t) => req.insert_header(("Authorization", format!("Bearer {t}"))),
            None => req,
        };
        self.app.call(req).await
    }

    /// A bucket made by the service role through `/storage/v1`.
    pub async fn bucket(&self, id: &str, options: Value) {
        let mut body = json!({"id": id, "name": id});
        body.as_object_mut()
            .unwrap()
            .extend(options.as_object().cloned().unwrap_or_default());
        let reply = self
            .call(
                TestRequest::post().uri("/storage/v1/bucket").set_json(body),
                Some(&service_key()),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// Uploads `bytes` through `/storage/v1` as `token` → the reply.
    pub async fn put(
        &self,
        method: Method,
        path: &str,
        bytes: &[u8],
        content_type: &str,
        token: Option<&str>,
    ) -> Reply {
        let req = TestRequest::default()
            .method(method)
            .uri(path)
            .insert_header(("Content-Type", content_type))
            .set_payload(bytes.to_vec());
        self.call(req, token).await
    }

    /// A signed-up user: their id and access token (a live session).
    pub async fn user(&self, email: &str) -> (String, String) {
        let reply = self.app.sign_up(email, "a-long-password-1").await;
        (
            reply.body["user"]["id"].as_str().unwrap().to_string(),
            reply.str("access_token"),
        )
    }
}

/// A header of an in-process reply (fails the test when absent or not text).
#[track_caller]
pub fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", reply.headers))
        .to_str()
        .unwrap()
}

/// A service_role token (bypasses RLS).
pub fn service_key() -> String {
    token(json!({"role": "service_role"}))
}

/// An anon token (what supabase-js sends as its key).
pub fn anon_key() -> String {
    token(json!({"role": "anon"}))
}

/// The policies Supabase's docs give for private per-user folders, on bucket `bucket`.
pub fn owner_policies(bucket: &str) -> String {
    format!(
        r#"
CREATE POLICY own_read ON storage.objects FOR SELECT TO authenticated
  USING (bucket_id = '{bucket}' AND (storage.foldername(name))[1] = auth.uid()::text);
CREATE POLICY own_insert ON storage.objects FOR INSERT TO authenticated
  WITH CHECK (bucket_id = '{bucket}' AND (storage.foldername(name))[1] = auth.uid()::text);
CREATE POLICY own_update ON storage.objects FOR UPDATE TO authenticated
  USING (bucket_id = '{bucket}' AND split_part(name, '/', 1) = auth.uid()::text)
  WITH CHECK (bucket_id = '{bucket}' AND split_part(name, '/', 1) = auth.uid()::text);
CREATE POLICY own_delete ON storage.objects FOR DELETE TO authenticated
  USING (bucket_id = '{bucket}' AND split_part(name, '/', 1) = auth.uid()::text);
"#
    )
}

/// The binary on a fresh database with storage on `backend`; `extra` env vars on top.
pub async fn binary(backend: Backend, extra: &[(&str, &str)]) -> (Server, TempDir, TestDb, Root) {
    let db = TestDb::new().await;
    let root = Root::new(backend);
    let mut env: Vec<(&str, &str)> = root
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend_from_slice(extra);
    env.push(("FLUXBASE_SECURITY_RATE_LIMIT_ENABLED", "false"));
    let (server, dir) = plain_server(&db, &env).await;
    (server, dir, db, root)
}

/// Declares `local` and `s3` tests running the scenario `$name(Backend)`.
#[macro_export]
macro_rules! storage_on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                Box::pin(super::$name($crate::storage::env::Backend::Local)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                Box::pin(super::$name($crate::storage::env::Backend::S3)).await
            }
        }
    )*};
}

/// A response read by the streaming client: status, headers (lower-case names).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a response head from `reader`.
pub async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Head {
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (k, v) = trimmed.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Head { status, headers }
}

/// Sends a request whose body is `body` (streamed, `Content-Length: length`) and reads
/// the answer (its body whole: answers to uploads are small).
pub async fn stream_request(
    addr: &str,
    head: &str,
    length: u64,
    body: impl futures_util::Stream<Item = std::io::Result<actix_web::web::Bytes>>,
) -> (Head, String) {
    use futures_util::StreamExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(
            format!(
                "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        if write.write_all(&chunk.unwrap()).await.is_err() {
            break; // The server answered early (a refusal) and closed.
        }
    }
    let mut reader = BufReader::new(read);
    let head = tokio::time::timeout(Duration::from_secs(120), read_head(&mut reader))
        .await
        .expect("an answer within 120 s");
    let mut text = String::new();
    let _ = reader.read_to_string(&mut text).await;
    (head, text)
}

/// `GET`s `path` and hashes the body as it streams → (head, SHA-256 hex, length).
pub async fn stream_download(addr: &str, path: &str, headers: &str) -> (Head, String, u64) {
    use sha2::{Digest, Sha256};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut reader = BufReader::with_capacity(256 * 1024, read);
    let head = read_head(&mut reader).await;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    (head, hex::encode(hasher.finalize()), len)
}

/// SHA-256 (hex) and length of a stream.
pub async fn digest_of(
    stream: impl futures_util::Stream<Item = std::io::Result<actix_web::web::Bytes>>,
) -> (String, u64) {
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut len = 0;
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (hex::encode(hasher.finalize()), len)
}

/// Polls `check` until it holds or `EVENT_TIMEOUT` passes (then fails with `what`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + crate::support::EVENT_TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {:?}",
            crate::support::EVENT_TIMEOUT
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
