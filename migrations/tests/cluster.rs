//! The embedded cluster: start, persistence across restarts, password auth, stop.

use std::os::unix::fs::PermissionsExt;

use fluxbase_migrations::test_utils::DedicatedCluster;
use fluxbase_migrations::{ClusterOptions, EmbeddedCluster, PgBinaries};
use tokio_postgres::NoTls;

#[test]
fn finds_server_binaries() {
    let bins = PgBinaries::find().unwrap_or_else(|e| panic!("{e}"));
    assert!(bins.major >= 13, "{bins:?}");
    assert!(bins.bindir.join("initdb").is_file());
}

#[tokio::test]
async fn restart_keeps_data_and_requires_the_password() {
    let root = tempdir();
    let options = ClusterOptions::ephemeral(root.join("pg"));
    let opts = options.clone();
    let mut cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(opts))
        .await
        .unwrap()
        .unwrap();
    assert!(cluster.is_owned());
    let password_file = root.join("pg-password");
    let mode = std::fs::metadata(&password_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "password file mode {mode:o}");

    let (client, conn) = cluster.config("postgres").connect(NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(wal_level, "logical");

    // A wrong password is refused: no trust access for other local users.
    let mut wrong = cluster.config("postgres");
    wrong.password("not-the-password");
    let err = wrong
        .connect(NoTls)
        .await
        .err()
        .expect("wrong password accepted");
    let code = err.as_db_error().map(|e| e.code().clone());
    assert_eq!(
        code,
        Some(tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );

    drop(client);
    let _ = conn.await;
    let port = cluster.port();
    tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        drop(cluster);
    })
    .await
    .unwrap();
    assert!(
        !root.join("pg/postmaster.pid").exists(),
        "not stopped cleanly"
    );

    let opts = options.clone();
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(opts))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cluster.port(), port, "port not reused");
    let (client, conn) = cluster.config("postgres").connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    let v: String = client
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "still here");
    drop(client);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn second_start_on_a_running_directory_attaches() {
    let root = tempdir();
    let options = ClusterOptions::ephemeral(root.join("pg"));
    let opts = options.clone();
    let first = tokio::task::spawn_blocking(move || EmbeddedCluster::start(opts))
        .await
        .unwrap()
        .unwrap();
    let opts = options.clone();
    let second = tokio::task::spawn_blocking(move || EmbeddedCluster::start(opts))
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_owned());
    assert!(!second.is_owned());
    assert_eq!(first.port(), second.port());
    // Dropping the attached handle must not stop the cluster.
    drop(second);
    let (client, conn) = first.config("postgres").connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("SELECT 1").await.unwrap();
    drop(client);
    tokio::task::spawn_blocking(move || drop(first))
        .await
        .unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn dedicated_cluster_stops_and_restarts() {
    let mut cluster = DedicatedCluster::start().await;
    let url = cluster.url();
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("SELECT 1").await.unwrap();
    cluster.stop();
    assert!(tokio_postgres::connect(&url, NoTls).await.is_err());
    cluster.restart();
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("SELECT 1").await.unwrap();
}

/// A fresh directory under the temp dir, removed by the test itself.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fluxbase-test-{}-{}",
        std::process::id(),
        fluxbase_migrations::secret::generate_secret(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `DATABASE_URL` naming the unix socket directory works with the pool's TLS connector
/// (it used to fail with "invalid dns name" before any TLS was attempted).
#[tokio::test]
async fn the_pool_connects_over_the_unix_socket() {
    let root = tempdir();
    let options = ClusterOptions::ephemeral(root.join("pg"));
    let mut cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(options))
        .await
        .unwrap()
        .unwrap();
    let url = format!(
        "host={} port={} user={} password={} dbname=postgres",
        cluster.socket_dir().display(),
        cluster.port(),
        fluxbase_migrations::cluster::EMBEDDED_SUPERUSER,
        cluster.password()
    );
    let db = fluxbase_migrations::Db::new(
        fluxbase_migrations::pool::parse_url(&url).unwrap(),
        fluxbase_migrations::PoolSettings::default(),
    );
    db.ping()
        .await
        .unwrap_or_else(|e| panic!("ping over {url}: {e}"));
    db.close();
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(root);
}
