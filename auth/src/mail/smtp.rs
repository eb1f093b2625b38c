//! A minimal SMTP client (RFC 5321) for the auth emails: connect, optional TLS (`STARTTLS`
//! after the greeting, or implicit TLS), `EHLO`, optional `AUTH PLAIN`/`LOGIN`, one
//! `MAIL FROM`, one `RCPT TO`, `DATA`, `QUIT`.
//!
//! Written here rather than taken from a crate: the SMTP crates bring a dozen new
//! dependencies (parsers, IDNA, MIME builders) for what is a few hundred lines over tokio
//! and the rustls (ring) stack the server already builds. Certificates are checked by
//! rustls-platform-verifier (already in the build for reqwest) against the system's roots,
//! plus `auth.smtp.ca_file`. Credentials never cross a plain connection unless the server
//! is on a loopback address; a `STARTTLS` server that answers with bytes before the
//! handshake (a command injection attempt) is refused.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig};

use super::{SmtpSettings, SmtpTls};

/// Longest reply line accepted (RFC 5321 says 512; servers add text).
const MAX_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 128;
/// The `EHLO` name (an address literal would need our public address, which we do not know).
const EHLO_NAME: &str = "localhost";

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The connection could not be made or broke.
    #[error("smtp connection to {host}:{port}: {source}")]
    Io {
        /// Server host.
        host: String,
        /// Server port.
        port: u16,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A step took longer than `auth.smtp.timeout`.
    #[error("smtp server did not answer {step} within {timeout:?}")]
    Timeout {
        /// What was awaited.
        step: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The server refused a command.
    #[error("smtp server refused {step}: {code} {text}")]
    Refused {
        /// The command.
        step: &'static str,
        /// Its reply code.
        code: u16,
        /// Its reply text (the server's words).
        text: String,
    },
    /// The server broke the protocol or lacks something required.
    #[error("smtp: {0}")]
    Protocol(String),
    /// The TLS setup failed (roots, `ca_file`, the host name).
    #[error("smtp tls: {0}")]
    Tls(String),
}

/// One reply: its code and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// Reply text on one line.
    fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// Parses one reply line: `(code, last, text)`.
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..3].parse().ok()?;
    match bytes.get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// Adds a dot before every line that starts with one, normalizes line ends to CRLF, and
/// ends with `CRLF.CRLF` (RFC 5321 §4.5.2).
fn dot_stuffed(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    for line in message.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    // `split` yields an empty last piece after a final newline: that CRLF is already there.
    if message.ends_with('\n') {
        out.truncate(out.len() - 2);
    }
    out.push_str(".\r\n");
    out
}

/// Whether `address` can go into `MAIL FROM:<…>` / `RCPT TO:<…>` as is (no SMTPUTF8, no
/// quoting, nothing that could end the command).
fn plain_address(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 254
        && address.contains('@')
        && address
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b))
}

/// The TLS client configuration: the platform's roots plus the PEM certificates of
/// `ca_file`, ring as the crypto provider.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, SmtpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra: Vec<CertificateDer<'static>> = match ca_file {
        None => Vec::new(),
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| SmtpError::Tls(format!("auth.smtp.ca_file {}: {e}", path.display())))?,
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| SmtpError::Tls(e.to_string()))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One SMTP conversation over `S`.
struct Conversation<'a, S> {
    io: BufReader<S>,
    settings: &'a SmtpSettings,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conversation<'a, S> {
    fn new(io: S, settings: &'a SmtpSettings) -> Self {
        Conversation {
            io: BufReader::new(io),
            settings,
        }
    }

    fn io_error(&self, source: std::io::Error) -> SmtpError {
        SmtpError::Io {
            host: self.settings.host.clone(),
            port: self.settings.port,
            source,
        }
    }

    /// Reads one (possibly multi-line) reply.
    async fn reply(&mut self, step: &'static str) -> Result<Reply, SmtpError> {
        let timeout = self.settings.timeout;
        let read = async {
            let mut lines = Vec::new();
            loop {
                let mut raw = Vec::new();
                let n = AsyncReadExt::take(&mut self.io, MAX_LINE as u64)
                    .read_until(b'\n', &mut raw)
                    .await
                    .map_err(|e| self.io_error(e))?;
                if n == 0 {
                    return Err(SmtpError::Protocol(format!(
                        "the server closed the connection during {step}"
                    )));
                }
                if !raw.ends_with(b"\n") {
                    return Err(SmtpError::Protocol(format!(
                        "reply line over {MAX_LINE} bytes"
                    )));
                }
                let line = String::from_utf8_lossy(&raw);
                let line = line.trim_end_matches(['\r', '\n']);
                let (code, last, text) = parse_line(line)
                    .ok_or_else(|| SmtpError::Protocol(format!("malformed reply during {step}")))?;
                lines.push(text.to_string());
                if last {
                    return Ok(Reply { code, lines });
                }
                if lines.len() >= MAX_LINES {
                    return Err(SmtpError::Protocol(format!("reply over {MAX_LINES} lines")));
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| SmtpError::Timeout { step, timeout })?
    }

    /// Writes `bytes` and flushes.
    async fn write(&mut self, step: &'static str, bytes: &[u8]) -> Result<(), SmtpError> {
        let timeout = self.settings.timeout;
        let write = async {
            let io = self.io.get_mut();
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io_error(e)),
            Err(_) => Err(SmtpError::Timeout { step, timeout }),
        }
    }

    /// Sends `line` (CRLF added) and expects a reply whose code is in `ok`.
    async fn command(
        &mut self,
        step: &'static str,
        line: &str,
        ok: &[u16],
    ) -> Result<Reply, SmtpError> {
        self.write(step, format!("{line}\r\n").as_bytes()).await?;
        self.expect(step, ok).await
    }

    /// Reads a reply and expects its code in `ok`.
    async fn expect(&mut self, step: &'static str, ok: &[u16]) -> Result<Reply, SmtpError> {
        let reply = self.reply(step).await?;
        if ok.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(SmtpError::Refused {
                step,
                code: reply.code,
                text: reply.text(),
            })
        }
    }

    /// `EHLO`: the extensions the server offers (upper-case keywords with their arguments).
    async fn ehlo(&mut self) -> Result<Vec<String>, SmtpError> {
        let reply = self
            .command("EHLO", &format!("EHLO {EHLO_NAME}"), &[250])
            .await?;
        Ok(reply
            .lines
            .iter()
            .skip(1)
            .map(|l| l.trim().to_ascii_uppercase())
            .collect())
    }

    /// Authenticates (when a user is configured), sends the message, quits.
    async fn transact(
        &mut self,
        extensions: &[String],
        secure: bool,
        to: &str,
        message: &str,
    ) -> Result<(), SmtpError> {
        let s = self.settings;
        if let Some(user) = &s.username {
            if !secure && !is_loopback(&s.host) {
                return Err(SmtpError::Protocol(
                    "refusing to send credentials over a plain connection (auth.smtp.tls)".into(),
                ));
            }
            let password = s.password.as_deref().unwrap_or("");
            let mechanisms: Vec<&str> = extensions
                .iter()
                .filter_map(|e| e.strip_prefix("AUTH"))
                .flat_map(|m| m.split_whitespace())
                .collect();
            if mechanisms.contains(&"PLAIN") {
                let token = STANDARD.encode(format!("\0{user}\0{password}"));
                self.command("AUTH PLAIN", &format!("AUTH PLAIN {token}"), &[235])
                    .await?;
            } else if mechanisms.contains(&"LOGIN") {
                self.command("AUTH LOGIN", "AUTH LOGIN", &[334]).await?;
                self.command("AUTH LOGIN", &STANDARD.encode(user), &[334])
                    .await?;
                self.command("AUTH LOGIN", &STANDARD.encode(password), &[235])
                    .await?;
            } else {
                return Err(SmtpError::Protocol(
                    "the server offers neither AUTH PLAIN nor AUTH LOGIN".into(),
                ));
            }
        }
        self.command("MAIL FROM", &format!("MAIL FROM:<{}>", s.from), &[250])
            .await?;
        self.command("RCPT TO", &format!("RCPT TO:<{to}>"), &[250, 251])
            .await?;
        self.command("DATA", "DATA", &[354]).await?;
        self.write("DATA", dot_stuffed(message).as_bytes()).await?;
        self.expect("the message", &[250]).await?;
        // The message is accepted; a failed QUIT changes nothing.
        let _ = self.command("QUIT", "QUIT", &[221]).await;
        Ok(())
    }
}

/// Whether `host` is a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The TLS name of `host`.
fn server_name(host: &str) -> Result<ServerName<'static>, SmtpError> {
    ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|_| SmtpError::Tls(format!("{host:?} is not a valid TLS server name")))
}

/// Delivers `message` to `to` through the server of `settings` (`tls`: the client
/// configuration, required unless `auth.smtp.tls` is `none`).
pub async fn deliver(
    settings: &SmtpSettings,
    tls: Option<Arc<ClientConfig>>,
    to: &str,
    message: &str,
) -> Result<(), SmtpError> {
    for address in [settings.from.as_str(), to] {
        if !plain_address(address) {
            return Err(SmtpError::Protocol(
                "an address with characters SMTP cannot carry without SMTPUTF8".into(),
            ));
        }
    }
    let timeout = settings.timeout;
    let tcp = tokio::time::timeout(
        timeout,
        TcpStream::connect((settings.host.as_str(), settings.port)),
    )
    .await
    .map_err(|_| SmtpError::Timeout {
        step: "the connection",
        timeout,
    })?
    .map_err(|source| SmtpError::Io {
        host: settings.host.clone(),
        port: settings.port,
        source,
    })?;
    let handshake = |tcp: TcpStream, config: Arc<ClientConfig>| async move {
        let name = server_name(&settings.host)?;
        tokio::time::timeout(timeout, TlsConnector::from(config).connect(name, tcp))
            .await
            .map_err(|_| SmtpError::Timeout {
                step: "the TLS handshake",
                timeout,
            })?
            .map_err(|e| SmtpError::Tls(e.to_string()))
    };
    let config = || {
        tls.clone()
            .ok_or_else(|| SmtpError::Tls("no TLS client configuration".into()))
    };
    match settings.tls {
        SmtpTls::None => {
            let mut c = Conversation::new(tcp, settings);
            c.expect("the greeting", &[220]).await?;
            let extensions = c.ehlo().await?;
            c.transact(&extensions, false, to, message).await
        }
        SmtpTls::Implicit => {
            let stream = handshake(tcp, config()?).await?;
            let mut c = Conversation::new(stream, settings);
            c.expect("the greeting", &[220]).await?;
            let extensions = c.ehlo().await?;
            c.transact(&extensions, true, to, message).await
        }
        SmtpTls::StartTls => {
            let mut c = Conversation::new(tcp, settings);
            c.expect("the greeting", &[220]).await?;
            let extensions = c.ehlo().await?;
            if !extensions.iter().any(|e| e == "STARTTLS") {
                return Err(SmtpError::Protocol(
                    "the server does not offer STARTTLS (auth.smtp.tls: starttls)".into(),
                ));
            }
            c.command("STARTTLS", "STARTTLS", &[220]).await?;
            if !c.io.buffer().is_empty() {
                return Err(SmtpError::Protocol(
                    "the server sent data before the TLS handshake".into(),
                ));
            }
            let stream = handshake(c.io.into_inner(), config()?).await?;
            let mut c = Conversation::new(stream, settings);
            let extensions = c.ehlo().await?;
            c.transact(&extensions, true, to, message).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse() {
        assert_eq!(parse_line("250-STARTTLS"), Some((250, false, "STARTTLS")));
        assert_eq!(parse_line("250 OK"), Some((250, true, "OK")));
        assert_eq!(parse_line("221"), Some((221, true, "")));
        for bad in ["", "25", "abc ok", "250xOK", "2 50 OK"] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dots_are_stuffed_and_the_data_ends_once() {
        assert_eq!(dot_stuffed("a\r\n.b\r\n"), "a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuffed("a\n."), "a\r\n..\r\n.\r\n");
        assert_eq!(dot_stuffed("x"), "x\r\n.\r\n");
    }

    #[test]
    fn only_plain_addresses_go_into_commands() {
        assert!(plain_address("ada@example.com"));
        for bad in [
            "",
            "no-at-sign",
            "ada@example.com>\r\nRCPT TO:<evil@example.com",
            "a b@example.com",
            "élise@example.com",
            "<ada@example.com>",
        ] {
            assert!(!plain_address(bad), "{bad:?}");
        }
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("[::1]"));
        assert!(!is_loopback("smtp.example.com") && !is_loopback("10.0.0.1"));
    }
}
