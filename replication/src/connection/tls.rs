//! TLS for the replication connection (`sslmode=prefer|require`), with the one rustls
//! setup of `fluxbase_migrations::tls`: encryption without certificate verification, which
//! is what libpq's `require` means.

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::error::{ReplicationError, Result};

/// Upgrades an accepted `SSLRequest` stream to TLS.
pub(crate) async fn connect(stream: TcpStream, host: &str) -> Result<TlsStream<TcpStream>> {
    let config = fluxbase_migrations::tls::client_config();
    let name =
        ServerName::try_from(host.to_owned()).map_err(|e| ReplicationError::Tls(e.to_string()))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| ReplicationError::Tls(e.to_string()))
}
