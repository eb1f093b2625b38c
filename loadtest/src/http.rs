//! A tiny keep-alive HTTP/1.1 client: enough for `/health`, the metrics JSON and the
//! `rest` scenario, without a full client stack (targets are loopback, plain HTTP).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::Target;

/// Largest response head or body accepted; the server's replies are small.
const MAX_RESPONSE: usize = 16 << 20;

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive connection, reopened transparently when the server closes it.
pub struct HttpConnection {
    target: Target,
    stream: Option<TcpStream>,
    /// Bytes read past the end of the previous response (none with a well-behaved server).
    buffer: Vec<u8>,
}

impl HttpConnection {
    /// A connection to `target`, opened on first use.
    pub fn new(target: Target) -> Self {
        HttpConnection {
            target,
            stream: None,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// The server this connection talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        let authorization = bearer.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("Authorization", value))
            .into_iter()
            .collect();
        self.request_with(method, path, &headers, body).await
    }

    /// Sends one request with extra `headers` (credentials, `Prefer`, `apikey`) and reads
    /// the whole response. A body is sent as JSON.
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: fluxbase-loadtest\r\nAccept: application/json\r\n",
            self.target.path(path),
            self.target.authority
        );
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");

        if self.stream.is_none() {
            let stream = TcpStream::connect(self.target.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buffer.clear();
        }
        let result = self.exchange(head.as_bytes(), body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, head: &[u8], body: Option<&[u8]>) -> io::Result<Response> {
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(head).await?;
        if let Some(body) = body {
            stream.write_all(body).await?;
        }
        // Read the head.
        let (status, head_len, length, chunked, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buffer) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = parsed.code.unwrap_or(0);
                    let header = |name: &str| {
                        parsed
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .and_then(|h| std::str::from_utf8(h.value).ok())
                    };
                    let length =
                        header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                    let chunked = header("transfer-encoding")
                        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                    let close =
                        header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    break (status, len, length, chunked, close);
                }
                Ok(httparse::Status::Partial) => read_more(stream, &mut self.buffer).await?,
                Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, err)),
            }
        };
        self.buffer.drain(..head_len);
        let body = if chunked {
            read_chunked(stream, &mut self.buffer).await?
        } else if let Some(length) = length {
            if length > MAX_RESPONSE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response too large",
                ));
            }
            while self.buffer.len() < length {
                read_more(stream, &mut self.buffer).await?;
            }
            self.buffer.drain(..length).collect()
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            // No length: the body runs to the end of the connection.
            loop {
                match read_more(stream, &mut self.buffer).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(err) => return Err(err),
                }
            }
            self.stream = None;
            std::mem::take(&mut self.buffer)
        };
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}

/// Appends what the socket has to `buffer`; end of stream is an `UnexpectedEof` error.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    if buffer.len() > MAX_RESPONSE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "response too large",
        ));
    }
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Decodes a chunked body from `buffer` (reading more as needed).
async fn read_chunked(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buffer.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            read_more(stream, buffer).await?;
        };
        let size_text = std::str::from_utf8(&buffer[..line_end])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if body.len() + size > MAX_RESPONSE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response too large",
            ));
        }
        buffer.drain(..line_end + 2);
        // The chunk plus its CRLF (for the last chunk: an empty trailer line).
        while buffer.len() < size + 2 {
            read_more(stream, buffer).await?;
        }
        body.extend_from_slice(&buffer[..size]);
        buffer.drain(..size + 2);
        if size == 0 {
            return Ok(body);
        }
    }
}

/// One GET on a fresh connection, for `/health` and the metrics JSON.
pub async fn get(target: &Target, path: &str) -> io::Result<Response> {
    HttpConnection::new(target.clone())
        .request("GET", path, None, None)
        .await
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Serves canned responses, one per request, on one connection.
    async fn serve(responses: Vec<&'static str>) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for response in responses {
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 1024];
                    let n = socket.read(&mut chunk).await.unwrap();
                    seen.extend_from_slice(&chunk[..n]);
                }
                socket.write_all(response.as_bytes()).await.unwrap();
            }
        });
        Target::parse(&format!("http://{addr}")).unwrap()
    }

    #[tokio::test]
    async fn keeps_alive_across_length_and_chunked_bodies() {
        let target = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n{\"status\":\"healthy\"}\r\n",
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let mut conn = HttpConnection::new(target);
        let r = conn
            .request("GET", "/health", Some("t"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{\"status\":\"healthy\"}\r\n");
        let r = conn.request("GET", "/nope", None, None).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        let r = conn.request("POST", "/x", None, Some(b"{}")).await.unwrap();
        assert_eq!(r.status, 204);
    }
}
