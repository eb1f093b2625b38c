//! Authentication methods, TLS and unix sockets, on a cluster of the test's own (it
//! rewrites pg_hba.conf and enables TLS, which must not leak into other tests).

use fluxbase_migrations::test_utils::DedicatedCluster;
use tokio::time::timeout;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use crate::support::{WAIT, config_for, next, start_streaming};

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn one_value(client: &Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Streams one insert as `config`; returns whether the walsender's session used TLS.
async fn stream_one(admin: &Client, config: tokio_postgres::Config, slot: &str, id: i32) -> bool {
    let (handle, mut rx) = start_streaming(config_for(config, slot)).await;
    admin
        .execute("INSERT INTO t VALUES ($1)", &[&id])
        .await
        .unwrap();
    let tx = next(&handle, &mut rx).await;
    assert_eq!(
        tx.changes[0].record.as_ref().unwrap()["id"],
        serde_json::json!(id)
    );
    let ssl: bool = admin
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_replication_slots r ON r.active_pid = s.pid WHERE r.slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    handle.shutdown().await;
    ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_md5_cleartext_tls_and_unix_socket() {
    let mut cluster = DedicatedCluster::start().await;
    let base: tokio_postgres::Config = cluster.url().parse().unwrap();
    let admin = connect(&base).await;
    let data_dir = one_value(&admin, "SHOW data_directory").await;
    let hba_file = one_value(&admin, "SHOW hba_file").await;
    let socket_dir = one_value(&admin, "SHOW unix_socket_directories").await;
    let socket_dir = socket_dir.split(',').next().unwrap().trim().to_owned();

    // A self-signed certificate owned by the server's user.
    let (cert, key) = fluxbase_migrations::test_utils::self_signed_cert(&data_dir);
    let hba = std::fs::read_to_string(&hba_file).unwrap();
    std::fs::write(
        &hba_file,
        format!("host all fx_md5 127.0.0.1/32 md5\nhost all fx_plain 127.0.0.1/32 password\n{hba}"),
    )
    .unwrap();
    // One statement per call: ALTER SYSTEM refuses to run in a multi-statement (implicit) transaction.
    for sql in [
        "ALTER SYSTEM SET ssl = on".to_owned(),
        format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
        format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
        "SET password_encryption = 'md5'".to_owned(),
        "CREATE ROLE fx_md5 SUPERUSER LOGIN PASSWORD 'md5-secret'".to_owned(),
        "RESET password_encryption".to_owned(),
        "CREATE ROLE fx_plain SUPERUSER LOGIN PASSWORD 'plain-secret'".to_owned(),
        "CREATE TABLE t (id int PRIMARY KEY)".to_owned(),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    drop(admin);
    // A restart applies TLS and pg_hba.conf deterministically (a reload is asynchronous).
    cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    let admin = connect(&base).await;

    // MD5 over TLS (sslmode=require).
    let mut md5 = base.clone();
    md5.user("fx_md5")
        .password("md5-secret")
        .ssl_mode(SslMode::Require);
    assert!(
        stream_one(&admin, md5, "auth_md5_tls", 1).await,
        "md5 session uses TLS"
    );

    // Cleartext password without TLS.
    let mut plain = base.clone();
    plain
        .user("fx_plain")
        .password("plain-secret")
        .ssl_mode(SslMode::Disable);
    assert!(!stream_one(&admin, plain, "auth_cleartext", 2).await);

    // SCRAM-SHA-256 over the unix socket.
    let mut unix_only = tokio_postgres::Config::new();
    unix_only
        .host_path(&socket_dir)
        .port(base.get_ports()[0])
        .user(base.get_user().unwrap())
        .password(base.get_password().unwrap())
        .dbname(base.get_dbname().unwrap());
    assert!(!stream_one(&admin, unix_only, "auth_scram_unix", 3).await);

    // A wrong password is reported, and retried rather than panicking.
    let mut wrong = base.clone();
    wrong.password("wrong");
    let (handle, _rx) = fluxbase_replication::start(config_for(wrong, "auth_wrong")).unwrap();
    let mut status = handle.watch_status();
    let s = timeout(WAIT, status.wait_for(|s| s.reconnects >= 2))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        s.last_error.as_deref().is_some_and(|e| e.contains("28P01")),
        "{s:?}"
    );
    assert!(!s.connected);
    handle.shutdown().await;
    drop(cluster);
}
