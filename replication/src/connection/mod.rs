//! A PostgreSQL frontend connection on `postgres-protocol` codecs: startup and authentication,
//! simple queries, and the CopyBoth sub-protocol that streaming replication runs in.

mod startup;
pub(crate) mod tls;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{ReplicationError, Result, ServerError};

pub(crate) use startup::connect;

/// Byte tag of CopyBothResponse, which postgres-protocol's backend parser does not know.
const COPY_BOTH_RESPONSE_TAG: u8 = b'W';

/// Anything a connection can run on: TCP, a unix socket, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One backend message, including CopyBothResponse which the codec lacks.
enum Backend {
    /// A message postgres-protocol parsed.
    Message(Message),
    /// The server entered CopyBoth mode (after START_REPLICATION).
    CopyBoth,
}

/// A row of a simple-query result: every value in text form.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Column names, shared by all rows of one result.
    columns: Arc<[String]>,
    /// Values; `None` is SQL NULL.
    values: Vec<Option<String>>,
}

impl Row {
    /// The value of column `name`, `None` when NULL or absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == name)?;
        self.values.get(i)?.as_deref()
    }
}

/// An authenticated connection, idle or streaming.
pub(crate) struct Connection {
    /// The transport.
    io: Box<dyn Io>,
    /// Bytes read but not yet parsed; kept here so reading is cancel-safe inside `select!`.
    read_buf: BytesMut,
    /// Scratch buffer for outgoing messages.
    write_buf: BytesMut,
    /// `server_version_num` as reported at startup (e.g. 150004).
    server_version_num: u32,
}

impl Connection {
    /// The server's version number, e.g. 150004 for 15.4.
    pub(crate) fn server_version_num(&self) -> u32 {
        self.server_version_num
    }

    /// Reads one backend message; cancel-safe because partial input stays in `read_buf`.
    async fn read_backend(&mut self) -> Result<Backend> {
        loop {
            if self.read_buf.len() >= 5 && self.read_buf[0] == COPY_BOTH_RESPONSE_TAG {
                let len = u32::from_be_bytes([
                    self.read_buf[1],
                    self.read_buf[2],
                    self.read_buf[3],
                    self.read_buf[4],
                ]);
                let total = (len as usize).saturating_add(1);
                if len < 4 {
                    return Err(ReplicationError::Protocol(
                        "invalid CopyBothResponse length".into(),
                    ));
                }
                if self.read_buf.len() >= total {
                    let _ = self.read_buf.split_to(total);
                    return Ok(Backend::CopyBoth);
                }
            } else if let Some(message) = Message::parse(&mut self.read_buf)? {
                return Ok(Backend::Message(message));
            }
            let n = self.io.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ReplicationError::Io(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
    }

    /// Reads one message, skipping the asynchronous ones (notices, parameter changes).
    async fn read_message(&mut self) -> Result<Backend> {
        loop {
            match self.read_backend().await? {
                Backend::Message(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {
                    continue;
                }
                other => return Ok(other),
            }
        }
    }

    /// Writes whatever is in `write_buf`.
    async fn flush_out(&mut self) -> Result<()> {
        let out = self.write_buf.split();
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Runs a simple query (one or more statements) and returns the rows of all results.
    pub(crate) async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>> {
        frontend::query(sql, &mut self.write_buf)?;
        self.flush_out().await?;
        let mut rows = Vec::new();
        let mut columns: Arc<[String]> = Arc::from(Vec::new());
        let mut error = None;
        loop {
            match self.read_message().await? {
                Backend::Message(Message::RowDescription(body)) => {
                    let names: Vec<String> =
                        body.fields().map(|f| Ok(f.name().to_owned())).collect()?;
                    columns = Arc::from(names);
                }
                Backend::Message(Message::DataRow(body)) => {
                    let buf = body.buffer();
                    let values = body
                        .ranges()
                        .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                        .collect()?;
                    rows.push(Row {
                        columns: columns.clone(),
                        values,
                    });
                }
                Backend::Message(Message::ErrorResponse(body)) => error = Some(server_error(&body)),
                Backend::Message(Message::ReadyForQuery(_)) => break,
                Backend::Message(
                    Message::CommandComplete(_) | Message::EmptyQueryResponse | Message::CopyDone,
                ) => {}
                Backend::Message(Message::CopyOutResponse(_) | Message::CopyInResponse(_))
                | Backend::CopyBoth => {
                    return Err(ReplicationError::Protocol(
                        "unexpected copy response to a simple query".into(),
                    ));
                }
                Backend::Message(_) => {
                    return Err(ReplicationError::Protocol(
                        "unexpected message in simple query".into(),
                    ));
                }
            }
        }
        match error {
            Some(e) => Err(ReplicationError::Server(e)),
            None => Ok(rows),
        }
    }

    /// Sends `START_REPLICATION …` and waits for the server to enter CopyBoth mode.
    pub(crate) async fn start_copy_both(&mut self, command: &str) -> Result<()> {
        frontend::query(command, &mut self.write_buf)?;
        self.flush_out().await?;
        match self.read_message().await? {
            Backend::CopyBoth => Ok(()),
            Backend::Message(Message::ErrorResponse(body)) => {
                Err(ReplicationError::Server(server_error(&body)))
            }
            Backend::Message(_) => Err(ReplicationError::Protocol(
                "expected CopyBothResponse".into(),
            )),
        }
    }

    /// The next CopyData payload in CopyBoth mode; `None` when the server ends the copy.
    /// Cancel-safe.
    pub(crate) async fn next_copy_data(&mut self) -> Result<Option<Bytes>> {
        match self.read_message().await? {
            Backend::Message(Message::CopyData(body)) => Ok(Some(body.into_bytes())),
            Backend::Message(Message::CopyDone) => Ok(None),
            Backend::Message(Message::ErrorResponse(body)) => {
                Err(ReplicationError::Server(server_error(&body)))
            }
            _ => Err(ReplicationError::Protocol(
                "unexpected message in copy-both mode".into(),
            )),
        }
    }

    /// Sends one CopyData message.
    pub(crate) async fn send_copy_data(&mut self, data: &[u8]) -> Result<()> {
        frontend::CopyData::new(data)?.write(&mut self.write_buf);
        self.flush_out().await
    }

    /// Ends the session politely: CopyDone (if streaming) and Terminate. Errors are ignored
    /// because the connection is being dropped anyway.
    pub(crate) async fn close(mut self, streaming: bool) {
        if streaming {
            frontend::copy_done(&mut self.write_buf);
        }
        frontend::terminate(&mut self.write_buf);
        let _ = self.flush_out().await;
        let _ = self.io.shutdown().await;
    }
}

/// Copies the fields of an ErrorResponse that we keep.
fn server_error(body: &ErrorResponseBody) -> ServerError {
    let mut error = ServerError {
        code: String::new(),
        severity: String::new(),
        message: String::new(),
    };
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => error.code = value,
            b'V' => error.severity = value,
            b'S' if error.severity.is_empty() => error.severity = value,
            b'M' => error.message = value,
            _ => {}
        }
    }
    error
}
