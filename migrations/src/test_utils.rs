//! Test harness: one embedded cluster per test process, a fresh database per test cloned
//! from a migrated template, dropped when the test ends; the cluster and its directory are
//! removed when the process exits.
//!
//! ```ignore
//! let db = TestDb::new().await;
//! let client = db.client().await;
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use crate::cluster::{self, ClusterOptions, EmbeddedCluster};
use crate::secret::generate_secret;

/// Prefix of the per-process temp directories.
const DIR_PREFIX: &str = "fluxbase-test-";

/// Name of the migrated template every test database is cloned from.
const TEMPLATE: &str = "fluxbase_template";

/// The process-wide cluster. Kept in a `Mutex<Option<…>>` so the exit hook can stop it.
static CLUSTER: OnceLock<Mutex<Option<EmbeddedCluster>>> = OnceLock::new();

/// Connection facts of the shared cluster, readable without the lock.
#[derive(Debug, Clone)]
struct ClusterInfo {
    port: u16,
    password: String,
    root: PathBuf,
}

static INFO: OnceLock<ClusterInfo> = OnceLock::new();
static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Starts the shared cluster once, panicking with install instructions when PostgreSQL is
/// missing: a test that cannot find PostgreSQL fails, it never skips.
fn info() -> &'static ClusterInfo {
    INFO.get_or_init(|| {
        cluster::remove_stale_dirs(DIR_PREFIX);
        let root = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            generate_secret(6)
        ));
        let cluster = EmbeddedCluster::start(ClusterOptions::ephemeral(root.join("pg")))
            .unwrap_or_else(|err| panic!("cannot start the test PostgreSQL cluster: {err}"));
        let info = ClusterInfo {
            port: cluster.port(),
            password: cluster.password().to_string(),
            root: root.clone(),
        };
        CLUSTER.get_or_init(|| Mutex::new(Some(cluster)));
        // SAFETY: registering a plain extern "C" function has no preconditions.
        unsafe { libc::atexit(stop_at_exit) };
        info
    })
}

/// Stops the shared cluster and removes its directory when the test process exits.
extern "C" fn stop_at_exit() {
    if let Some(lock) = CLUSTER.get()
        && let Ok(mut guard) = lock.lock()
        && let Some(mut cluster) = guard.take()
    {
        let _ = cluster.stop();
    }
    if let Some(info) = INFO.get() {
        let _ = std::fs::remove_dir_all(&info.root);
    }
}

fn config_for(dbname: &str) -> tokio_postgres::Config {
    let info = info();
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(info.port)
        .user(cluster::EMBEDDED_SUPERUSER)
        .password(info.password.as_str())
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(10));
    config
}

async fn connect(dbname: &str) -> Client {
    let (client, connection) = config_for(dbname)
        .connect(NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect to test database {dbname}: {err}"));
    tokio::spawn(connection);
    client
}

/// Creates and migrates the template database once per process.
async fn ensure_template() {
    TEMPLATE_READY
        .get_or_init(|| async {
            let admin = connect("postgres").await;
            admin
                .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
                .await
                .expect("create the template database");
            let mut client = connect(TEMPLATE).await;
            crate::runner::run(&mut client)
                .await
                .expect("migrate the template database");
            // No connection may stay open on a template while it is being cloned.
            drop(client);
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&TEMPLATE],
                )
                .await
                .expect("close template connections");
        })
        .await;
}

/// A fresh, migrated database for one test, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
}

impl TestDb {
    /// Creates a fresh database from the migrated template.
    pub async fn new() -> TestDb {
        ensure_template().await;
        Self::create(TEMPLATE).await
    }

    /// Creates a fresh database with no migrations applied (for tests of migrating).
    pub async fn new_empty() -> TestDb {
        Self::create("template0").await
    }

    async fn create(template: &str) -> TestDb {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect("postgres").await;
        // Cloning fails while another session is briefly connected to the template
        // (e.g. a concurrent clone's own check); retry a few times.
        let mut attempt = 0;
        loop {
            match admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .await
            {
                Ok(()) => break,
                Err(err) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(error = %err, "template busy, retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("create test database {name}: {err}"),
            }
        }
        TestDb { name }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for this database as the cluster's superuser.
    pub fn url(&self) -> String {
        let info = info();
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            cluster::EMBEDDED_SUPERUSER,
            info.password,
            info.port,
            self.name
        )
    }

    /// A tokio-postgres configuration for this database.
    pub fn config(&self) -> tokio_postgres::Config {
        config_for(&self.name)
    }

    /// Fails at once, naming the package and the command that installs it, when the
    /// cluster's PostgreSQL has no wal2json output plugin (tests of `replication.plugin:
    /// wal2json` would otherwise only time out waiting for events).
    pub async fn require_wal2json(&self) {
        let row = self
            .client()
            .await
            .query_one(
                "SELECT setting, current_setting('server_version_num')::int / 10000 \
                 FROM pg_config WHERE name = 'PKGLIBDIR'",
                &[],
            )
            .await
            .expect("read the server's pkglibdir");
        let (dir, major): (String, i32) = (row.get(0), row.get(1));
        let lib = std::path::Path::new(&dir).join("wal2json.so");
        assert!(
            lib.is_file(),
            "the wal2json output plugin is not installed: {} is missing. Install it with \
             `deploy/scripts/install-deps.sh postgres` (or `apt-get install -y \
             postgresql-{major}-wal2json`; elsewhere build https://github.com/eulerto/wal2json \
             into that directory), then rerun the tests",
            lib.display()
        );
    }

    /// A new connection to this database, its connection task spawned on the current
    /// runtime.
    pub async fn client(&self) -> Client {
        connect(&self.name).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: do it on a thread with its own small runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping a test database");
            rt.block_on(async {
                let admin = connect("postgres").await;
                // Replication slots pin the database; drop the test's own first.
                let _ = admin
                    .execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                         WHERE database = $1 AND NOT active",
                        &[&name],
                    )
                    .await;
                if let Err(err) = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                {
                    tracing::warn!(database = %name, error = %err, "dropping test database failed");
                }
            });
        });
        let _ = handle.join();
    }
}

/// Writes a self-signed certificate and key (`openssl req -x509`) into a cluster's data
/// directory, owned by the cluster's user and `0600` as PostgreSQL demands, for tests that
/// turn `ssl` on. Returns the (certificate, key) paths.
pub fn self_signed_cert(data_dir: &str) -> (String, String) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(data_dir).expect("the data directory exists");
    let (cert, key) = (
        format!("{data_dir}/test_cert.pem"),
        format!("{data_dir}/test_key.pem"),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout", &key, "-out", &cert])
        .output()
        .expect("openssl is needed to make a test certificate (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [&cert, &key] {
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())).expect("chown");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    (cert, key)
}

/// A cluster of the test's own, for tests that stop and start PostgreSQL. Stopped and
/// removed on drop.
#[derive(Debug)]
pub struct DedicatedCluster {
    cluster: EmbeddedCluster,
    root: PathBuf,
}

impl DedicatedCluster {
    /// Initializes and starts a new cluster in a temp directory, with the `fluxbase`
    /// database created (not migrated).
    pub async fn start() -> DedicatedCluster {
        cluster::remove_stale_dirs(DIR_PREFIX);
        let root = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            generate_secret(6)
        ));
        let options = ClusterOptions::ephemeral(root.join("pg"));
        let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(options))
            .await
            .expect("cluster start task")
            .unwrap_or_else(|err| panic!("cannot start a dedicated PostgreSQL cluster: {err}"));
        let (client, connection) = cluster
            .config("postgres")
            .connect(NoTls)
            .await
            .expect("connect to the dedicated cluster");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {}", cluster::EMBEDDED_DATABASE))
            .await
            .expect("create the fluxbase database");
        DedicatedCluster { cluster, root }
    }

    /// The URL of its `fluxbase` database.
    pub fn url(&self) -> String {
        self.cluster.url(cluster::EMBEDDED_DATABASE)
    }

    /// Stops PostgreSQL (fast shutdown), keeping the data.
    pub fn stop(&mut self) {
        self.cluster.stop().expect("stop the dedicated cluster");
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.cluster
            .restart()
            .unwrap_or_else(|err| panic!("restart the dedicated cluster: {err}"));
    }
}

impl Drop for DedicatedCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
