//! A real HTTP/1.1 receiver on 127.0.0.1 for `http` jobs: it records each request (line,
//! headers, body) and answers as the test says.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::EVENT_TIMEOUT;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
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

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// This status, with a small JSON body.
    Status(u16),
    /// This status after a delay.
    After(Duration, u16),
    /// Never (the connection stays open until the client goes).
    Hang,
}

/// A receiver answering the n-th request (from 0) with `answer(n)`.
pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`
    pub url: String,
    requests: mpsc::UnboundedReceiver<Received>,
    count: Arc<AtomicUsize>,
}

impl Receiver {
    /// Starts it.
    pub async fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(answer);
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (tx, answer, counter) = (tx.clone(), answer.clone(), counter.clone());
                tokio::spawn(serve(socket, tx, answer, counter));
            }
        });
        Receiver {
            url,
            requests,
            count,
        }
    }

    /// Answers every request with `status`.
    pub async fn always(status: u16) -> Receiver {
        Receiver::start(move |_| Answer::Status(status)).await
    }

    /// The next request, within the tests' deadline.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(EVENT_TIMEOUT, self.requests.recv())
            .await
            .expect("a request in time")
            .expect("the receiver runs")
    }

    /// Requests received so far.
    pub fn received(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Serves one keep-alive connection.
async fn serve(
    mut socket: TcpStream,
    tx: mpsc::UnboundedSender<Received>,
    answer: Arc<dyn Fn(usize) -> Answer + Send + Sync>,
    counter: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(Received { headers, body });
        let status = match answer(n) {
            Answer::Status(status) => status,
            Answer::After(delay, status) => {
                tokio::time::sleep(delay).await;
                status
            }
            Answer::Hang => {
                // Until the client closes the connection.
                let _ = socket.read(&mut chunk).await;
                return;
            }
        };
        let body = format!("{{\"received\":{n}}}");
        let out = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}
