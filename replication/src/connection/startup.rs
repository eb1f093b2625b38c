//! Opening a connection: transport, optional TLS, startup message and authentication
//! (cleartext, MD5, SCRAM-SHA-256).

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, SslMode};

use super::{Backend, Connection, Io, server_error, tls};
use crate::error::{ReplicationError, Result};

/// Default PostgreSQL port when the configuration names none.
const DEFAULT_PORT: u16 = 5432;

/// Session settings sent at startup so that text output is stable whatever the server's
/// defaults: ISO dates in UTC, shortest-exact floats, hex bytea.
const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// Connects to the first reachable host of `config`; with `replication` the session is a
/// walsender (`replication=database`) that also accepts SQL.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
    replication: bool,
) -> Result<Connection> {
    let mut last_error = None;
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT);
        match connect_host(config, host, port, replication).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or(ReplicationError::Config {
        key: "database.url",
        reason: "no host".into(),
    }))
}

/// Opens the transport to one host and runs startup on it.
async fn connect_host(
    config: &tokio_postgres::Config,
    host: &Host,
    port: u16,
    replication: bool,
) -> Result<Connection> {
    let io: Box<dyn Io> = match host {
        Host::Tcp(name) => {
            let mut stream = TcpStream::connect((name.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            let mode = config.get_ssl_mode();
            if mode == SslMode::Disable {
                Box::new(stream)
            } else if request_tls(&mut stream).await? {
                Box::new(tls::connect(stream, name).await?)
            } else if mode == SslMode::Require {
                return Err(ReplicationError::Tls(
                    "server refused TLS and sslmode=require".into(),
                ));
            } else {
                Box::new(stream)
            }
        }
        Host::Unix(dir) => {
            Box::new(UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await?)
        }
    };
    let mut conn = Connection {
        io,
        read_buf: BytesMut::with_capacity(64 * 1024),
        write_buf: BytesMut::new(),
        server_version_num: 0,
    };
    startup(&mut conn, config, replication).await?;
    Ok(conn)
}

/// Sends SSLRequest; true when the server agreed to TLS.
async fn request_tls(stream: &mut TcpStream) -> Result<bool> {
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await?;
    Ok(stream.read_u8().await? == b'S')
}

/// Startup message, authentication, then waits for ReadyForQuery.
async fn startup(
    conn: &mut Connection,
    config: &tokio_postgres::Config,
    replication: bool,
) -> Result<()> {
    let user = config
        .get_user()
        .ok_or(ReplicationError::Auth("no user configured"))?;
    let mut params: Vec<(&str, &str)> = vec![("user", user)];
    if let Some(db) = config.get_dbname() {
        params.push(("database", db));
    }
    if replication {
        params.push(("replication", "database"));
    }
    params.push((
        "application_name",
        config
            .get_application_name()
            .unwrap_or("fluxbase-replication"),
    ));
    params.extend_from_slice(SESSION_SETTINGS);
    frontend::startup_message(params.iter().copied(), &mut conn.write_buf)?;
    conn.flush_out().await?;
    authenticate(conn, config, user).await?;

    loop {
        match conn.read_backend().await? {
            Backend::Message(Message::ParameterStatus(p)) => {
                if p.name()? == "server_version" {
                    conn.server_version_num = parse_server_version(p.value()?);
                }
            }
            Backend::Message(Message::BackendKeyData(_) | Message::NoticeResponse(_)) => {}
            Backend::Message(Message::ReadyForQuery(_)) => return Ok(()),
            Backend::Message(Message::ErrorResponse(body)) => {
                return Err(ReplicationError::Server(server_error(&body)));
            }
            _ => {
                return Err(ReplicationError::Protocol(
                    "unexpected message during startup".into(),
                ));
            }
        }
    }
}

/// Answers the server's authentication requests until AuthenticationOk.
async fn authenticate(
    conn: &mut Connection,
    config: &tokio_postgres::Config,
    user: &str,
) -> Result<()> {
    let password = || {
        config
            .get_password()
            .ok_or(ReplicationError::Auth("server requires a password"))
    };
    let mut scram: Option<ScramSha256> = None;
    loop {
        let Backend::Message(message) = conn.read_backend().await? else {
            return Err(ReplicationError::Protocol(
                "unexpected CopyBothResponse during authentication".into(),
            ));
        };
        match message {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?, &mut conn.write_buf)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(user.as_bytes(), password()?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut conn.write_buf)?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut has_scram = false;
                while let Some(m) = fallible_iterator::FallibleIterator::next(&mut mechanisms)? {
                    has_scram |= m == SCRAM_SHA_256;
                }
                if !has_scram {
                    return Err(ReplicationError::Auth(
                        "server offers no supported SASL mechanism",
                    ));
                }
                // Channel binding is not offered: "n" is always accepted, even over TLS.
                let s = ScramSha256::new(password()?, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut conn.write_buf)?;
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s = scram.as_mut().ok_or_else(|| {
                    ReplicationError::Protocol("SASL continue before start".into())
                })?;
                s.update(body.data()).map_err(ReplicationError::Scram)?;
                frontend::sasl_response(s.message(), &mut conn.write_buf)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| ReplicationError::Protocol("SASL final before start".into()))?;
                s.finish(body.data()).map_err(ReplicationError::Scram)?;
                continue;
            }
            Message::ErrorResponse(body) => {
                return Err(ReplicationError::Server(server_error(&body)));
            }
            Message::NoticeResponse(_) => continue,
            _ => return Err(ReplicationError::Auth("unsupported authentication method")),
        }
        conn.flush_out().await?;
    }
}

/// `15.4 (Debian 15.4-1)` → 150004; `9.6.3` → 90603. Unknown shapes give 0.
fn parse_server_version(text: &str) -> u32 {
    let numeric: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if major >= 10 {
        major * 10_000 + minor
    } else {
        major * 10_000 + minor * 100 + parts.next().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_server_version;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_server_version("15.4 (Debian 15.4-1.pgdg120+1)"),
            150004
        );
        assert_eq!(parse_server_version("13.0"), 130000);
        assert_eq!(parse_server_version("16beta1"), 160000);
        assert_eq!(parse_server_version("9.6.3"), 90603);
    }
}
