//! A small SMTP server over a real socket for the email-flow tests: it speaks enough of
//! RFC 5321 for the server's client (EHLO, STARTTLS with the test CA's certificate, AUTH
//! PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT), records every message, and hands them to the test
//! as they arrive. The certificate in `fixtures/` is for `localhost` and `127.0.0.1`, signed
//! by a throwaway test CA (`fixtures/ca.pem`, whose key was discarded).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::EVENT_TIMEOUT;

/// The directory of the test certificates.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/supabase_auth/fixtures")
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `MAIL FROM`.
    pub from: String,
    /// `RCPT TO`s.
    pub to: Vec<String>,
    /// The message as received (dots un-stuffed).
    pub data: String,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The `AUTH` user and password, if the client authenticated.
    pub auth: Option<(String, String)>,
}

impl Mail {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body, decoded from base64.
    pub fn text(&self) -> String {
        let (_, body) = self.data.split_once("\r\n\r\n").expect("headers and body");
        let bytes = STANDARD
            .decode(body.replace(['\r', '\n'], ""))
            .expect("a base64 body");
        String::from_utf8(bytes).expect("UTF-8 text")
    }

    /// The action link in the body.
    pub fn link(&self) -> String {
        self.text()
            .lines()
            .find(|l| l.starts_with("http"))
            .expect("a link")
            .trim()
            .to_string()
    }

    /// A query parameter of the action link (percent-decoded for the ASCII we use).
    pub fn link_param(&self, name: &str) -> String {
        let link = self.link();
        let query = link.split_once('?').expect("a query").1;
        let raw = query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {link}"));
        decode(raw)
    }

    /// The six-digit code in the body.
    pub fn code(&self) -> String {
        let text = self.text();
        let at = text.find("code: ").expect("a code") + "code: ".len();
        text[at..at + 6].to_string()
    }
}

/// Percent-decoding of a query value.
pub fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A running SMTP server.
pub struct SmtpSink {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    rx: mpsc::UnboundedReceiver<Mail>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server's TLS configuration of the fixture certificate.
fn tls_config() -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixtures().join("smtp.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixtures().join("smtp.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

impl SmtpSink {
    /// A server on 127.0.0.1; with `starttls` it offers STARTTLS.
    pub async fn start(starttls: bool) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        let acceptor = starttls.then(|| TlsAcceptor::from(tls_config()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut io = BufReader::new(socket);
                    let _ = io.get_mut().write_all(b"220 sink ESMTP ready\r\n").await;
                    if let Some(Upgrade) = converse(&mut io, acceptor.is_some(), false, &tx).await {
                        let acceptor = acceptor.expect("offered");
                        let Ok(tls) = acceptor.accept(io.into_inner()).await else {
                            return;
                        };
                        let mut io = BufReader::new(tls);
                        converse(&mut io, false, true, &tx).await;
                    }
                });
            }
        });
        SmtpSink { port, rx, task }
    }

    /// The next message (fails the test after [`EVENT_TIMEOUT`]).
    pub async fn next(&mut self) -> Mail {
        tokio::time::timeout(EVENT_TIMEOUT, self.rx.recv())
            .await
            .expect("no email arrived in time")
            .expect("the SMTP server stopped")
    }

    /// Whether a message is waiting now (for "nothing was sent" checks after an awaited
    /// later message).
    pub fn try_next(&mut self) -> Option<Mail> {
        self.rx.try_recv().ok()
    }
}

/// The client asked for STARTTLS.
struct Upgrade;

/// Reads one line (without CRLF); `None` at the end.
async fn line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> Option<String> {
    let mut buf = String::new();
    match io.read_line(&mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(buf.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// One conversation until QUIT, the end, or a STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    offer_tls: bool,
    tls: bool,
    tx: &mpsc::UnboundedSender<Mail>,
) -> Option<Upgrade> {
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth = None;
    loop {
        let command = line(io).await?;
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-sink greets you\r\n250-AUTH PLAIN LOGIN\r\n");
            if offer_tls {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250 8BITMIME\r\n");
            r
        } else if upper == "STARTTLS" && offer_tls {
            io.get_mut().write_all(b"220 go ahead\r\n").await.ok()?;
            return Some(Upgrade);
        } else if let Some(token) = command.strip_prefix("AUTH PLAIN ") {
            let decoded = STANDARD.decode(token).ok()?;
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            auth = Some((parts[1].clone(), parts[2].clone()));
            "235 authenticated\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim_matches(['<', '>', ' ']).to_string();
            "250 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim_matches(['<', '>', ' ']).to_string());
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            io.get_mut().write_all(b"354 go on\r\n").await.ok()?;
            let mut data = String::new();
            loop {
                let l = line(io).await?;
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push_str("\r\n");
            }
            let _ = tx.send(Mail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
                tls,
                auth: auth.clone(),
            });
            "250 queued\r\n".into()
        } else if upper == "QUIT" {
            let _ = io.get_mut().write_all(b"221 bye\r\n").await;
            return None;
        } else {
            "502 not implemented\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await.ok()?;
    }
}
