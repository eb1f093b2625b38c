//! The one raw HTTP/1.1 client of the tests: exact bytes on a real socket, for what a
//! library client would smooth over (no `Content-Type`, a body that stalls, a response on a
//! connection the server closes).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::EVENT_TIMEOUT;

/// A response read to the end of the connection.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The status line and headers, as sent.
    pub headers: String,
    pub body: String,
}

impl Response {
    /// The body as JSON (fails the test when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn parse(raw: &[u8]) -> Response {
        let text = String::from_utf8_lossy(raw).to_string();
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
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` exactly as
/// given on a fresh connection, then reads until the server closes it, within `wait`.
pub async fn exchange(addr: &str, head: &str, body: &[u8], wait: Duration) -> Response {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("{head}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        // A reset after the response is still a response.
        let _ = stream.read_to_end(&mut raw).await;
        Response::parse(&raw)
    };
    tokio::time::timeout(wait, fut)
        .await
        .unwrap_or_else(|_| panic!("no complete HTTP response within {wait:?}"))
}

/// One request with `headers` and a body (`Connection: close`, `Content-Length` set).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("\r\n{name}: {value}"));
    }
    exchange(addr, &head, body.as_bytes(), EVENT_TIMEOUT).await
}

/// One bodiless request.
pub async fn http(addr: &str, method: &str, path: &str) -> Response {
    request(addr, method, path, &[], "").await
}
