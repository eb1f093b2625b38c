//! The embedded PostgreSQL cluster: started from the system's PostgreSQL binaries when no
//! `DATABASE_URL` is given, and by the test harness.
//!
//! The cluster listens on 127.0.0.1 and on a unix socket only, with SCRAM password auth and
//! a generated password kept `0600` beside the data directory, so other local users get no
//! trust access. As root it runs as the `postgres` user (PostgreSQL refuses to run as root).

mod binaries;
mod error;
mod postmaster;
mod run_as;

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use binaries::PgBinaries;
pub use error::ClusterError;
use postmaster::{choose_port, running_postmaster, socket_dir_for, tail};
pub use postmaster::{is_running, postmaster_pid, remove_stale_dirs};
use run_as::{RunAs, check_reachable};

/// The oldest PostgreSQL major version we support (logical replication, `DROP DATABASE …
/// WITH (FORCE)`, SCRAM by default).
pub const MIN_PG_MAJOR: u32 = 13;

/// Database superuser created by `initdb` for the embedded cluster.
pub const EMBEDDED_SUPERUSER: &str = "fluxbase";

/// Database the server uses inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "fluxbase";

/// One line on how to get PostgreSQL, repeated wherever binaries are missing.
pub const INSTALL_HINT: &str = "install the PostgreSQL server binaries (`deploy/scripts/install-deps.sh postgres` \
     in a Fluxbase checkout; Debian/Ubuntu: `apt-get install -y postgresql`; macOS: `brew install postgresql`), \
     put their bin directory on PATH or in FLUXBASE_PG_BINDIR, or set DATABASE_URL to use an existing server";

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How long start-up may take before we give up and show the cluster's log.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before we escalate to an immediate one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to set up and run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The data directory (`./.fluxbase/pg` for the server). Its parent holds the password
    /// file, the port file and the log.
    pub data_dir: PathBuf,
    /// `false` for throw-away test clusters: no fsync, faster initdb and commits.
    pub durable: bool,
    /// Kill the cluster (fast shutdown) when this process dies without stopping it.
    pub die_with_parent: bool,
}

impl ClusterOptions {
    /// Options for the server's persistent cluster in `data_dir`.
    pub fn persistent(data_dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            data_dir: data_dir.into(),
            durable: true,
            die_with_parent: true,
        }
    }

    /// Options for a throw-away test cluster in `data_dir`.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            data_dir: data_dir.into(),
            durable: false,
            die_with_parent: true,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.data_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    fn password_file(&self) -> PathBuf {
        self.state_dir().join("pg-password")
    }

    fn port_file(&self) -> PathBuf {
        self.state_dir().join("pg-port")
    }

    fn log_file(&self) -> PathBuf {
        self.state_dir().join("pg.log")
    }
}

/// A running cluster, started by us or found running on the same data directory.
#[derive(Debug)]
pub struct EmbeddedCluster {
    options: ClusterOptions,
    binaries: PgBinaries,
    port: u16,
    socket_dir: PathBuf,
    password: String,
    /// Set when we started the postmaster: the thread that owns and reaps it.
    supervisor: Option<Supervisor>,
}

/// Owns the postmaster child. The child is spawned from this long-lived thread because
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked it exits.
#[derive(Debug)]
struct Supervisor {
    pid: i32,
    thread: JoinHandle<()>,
}

impl EmbeddedCluster {
    /// Initializes the data directory when new, then starts the cluster, or attaches to the
    /// one already running on this data directory. Blocking: call it before starting async
    /// work or from `spawn_blocking`.
    pub fn start(mut options: ClusterOptions) -> Result<Self, ClusterError> {
        // Tools run with the data directory as their working directory: paths must be
        // absolute.
        options.data_dir = std::path::absolute(&options.data_dir)
            .map_err(ClusterError::io("resolve", &options.data_dir))?;
        let binaries = PgBinaries::find()?;
        let run_as = RunAs::detect()?;
        let state_dir = options.state_dir();
        fs::create_dir_all(&state_dir).map_err(ClusterError::io("create", &state_dir))?;
        if run_as.is_some() {
            // Root-owned and not listable by others, but traversable by `postgres`.
            fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o711))
                .map_err(ClusterError::io("set permissions on", &state_dir))?;
            check_reachable(&options.data_dir)?;
        }
        let password_file = options.password_file();
        let password = crate::secret::read_or_create(&password_file, 1, 32)
            .map_err(ClusterError::io("read or create", &password_file))?;
        if !options.data_dir.join("PG_VERSION").is_file() {
            init_data_dir(&options, &binaries, run_as, &password)?;
        }
        let socket_dir = socket_dir_for(&options.data_dir, run_as)?;

        if let Some(port) = running_postmaster(&options.data_dir) {
            tracing::info!(data_dir = %options.data_dir.display(), port, "attaching to the embedded PostgreSQL already running");
            return Ok(EmbeddedCluster {
                options,
                binaries,
                port,
                socket_dir,
                password,
                supervisor: None,
            });
        }
        let port = choose_port(&options.port_file());
        let mut cluster = EmbeddedCluster {
            options,
            binaries,
            port,
            socket_dir,
            password,
            supervisor: None,
        };
        match cluster.launch(run_as) {
            Ok(()) => Ok(cluster),
            // Another process started it between our check and our launch: attach.
            Err(err) => match running_postmaster(&cluster.options.data_dir) {
                Some(port) => {
                    cluster.port = port;
                    Ok(cluster)
                }
                None => Err(err),
            },
        }
    }

    /// Starts the postmaster and waits until it accepts connections.
    fn launch(&mut self, run_as: Option<RunAs>) -> Result<(), ClusterError> {
        let log_path = self.options.log_file();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(ClusterError::io("open", &log_path))?;
        let log_err = log
            .try_clone()
            .map_err(ClusterError::io("open", &log_path))?;

        let mut cmd = Command::new(self.binaries.tool("postgres"));
        cmd.arg("-D")
            .arg(&self.options.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "wal_level=logical"])
            .args(["-c", "max_replication_slots=64"])
            .args(["-c", "max_wal_senders=64"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "unix_socket_permissions=0700"]);
        if !self.options.durable {
            cmd.args(["-c", "fsync=off"])
                .args(["-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        cmd.current_dir(&self.options.data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(run_as) = run_as {
            run_as.apply(&mut cmd);
        }
        let die_with_parent = self.options.die_with_parent;
        // SAFETY: setsid and prctl are async-signal-safe; nothing else runs between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Its own session: a Ctrl-C in our terminal must not reach PostgreSQL
                // before our HTTP server has drained; we stop it ourselves afterwards.
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }

        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pg-supervisor".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id() as i32));
                    let _ = child.wait();
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                }
            })
            .map_err(ClusterError::io(
                "spawn a thread for",
                &self.options.data_dir,
            ))?;
        let pid = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("supervisor thread died")))
            .map_err(ClusterError::io("start", &self.binaries.tool("postgres")))?;
        self.supervisor = Some(Supervisor { pid, thread });

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if postmaster::postmaster_ready(&self.options.data_dir, pid) {
                let _ = fs::write(self.options.port_file(), self.port.to_string());
                return Ok(());
            }
            let exited = self
                .supervisor
                .as_ref()
                .is_some_and(|s| s.thread.is_finished());
            if exited || Instant::now() > deadline {
                self.supervisor = None;
                return Err(ClusterError::StartFailed {
                    reason: if exited {
                        "postgres exited".into()
                    } else {
                        format!("not ready after {}s", START_TIMEOUT.as_secs())
                    },
                    tail: tail(&log_path, 15),
                    log: log_path,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The superuser's generated password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    /// The server binaries in use.
    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    /// Whether this process started the postmaster (and so stops it).
    pub fn is_owned(&self) -> bool {
        self.supervisor.is_some()
    }

    /// A URL for `dbname` as the superuser over TCP.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{EMBEDDED_SUPERUSER}:{}@127.0.0.1:{}/{dbname}",
            self.password, self.port
        )
    }

    /// A tokio-postgres configuration for `dbname` as the superuser over TCP.
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(EMBEDDED_SUPERUSER)
            .password(self.password.as_str())
            .dbname(dbname)
            .application_name("fluxbase")
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// Stops the cluster with a fast shutdown (clients disconnected, data flushed) and waits
    /// for it. Does nothing for a cluster we attached to.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        let Some(supervisor) = self.supervisor.take() else {
            return Ok(());
        };
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(supervisor.pid, libc::SIGINT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !supervisor.thread.is_finished() {
            if Instant::now() > deadline {
                tracing::warn!(
                    pid = supervisor.pid,
                    "embedded PostgreSQL slow to stop, sending an immediate shutdown"
                );
                // SAFETY: as above.
                unsafe { libc::kill(supervisor.pid, libc::SIGQUIT) };
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = supervisor.thread.join();
        Ok(())
    }

    /// Starts a cluster stopped by [`EmbeddedCluster::stop`] again, on the same port.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        if self.supervisor.is_some() {
            return Ok(());
        }
        let run_as = RunAs::detect()?;
        self.launch(run_as)
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::warn!(error = %err, "stopping the embedded PostgreSQL failed");
        }
    }
}

/// Runs `initdb` with SCRAM auth for local and host connections.
fn init_data_dir(
    options: &ClusterOptions,
    binaries: &PgBinaries,
    run_as: Option<RunAs>,
    password: &str,
) -> Result<(), ClusterError> {
    let data_dir = &options.data_dir;
    fs::create_dir_all(data_dir).map_err(ClusterError::io("create", data_dir))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .map_err(ClusterError::io("set permissions on", data_dir))?;
    // initdb reads the password from a file the cluster's user can read; it lives only
    // for the duration of initdb, inside the 0700 data directory's parent.
    let pwfile = options
        .state_dir()
        .join(format!(".pwfile-{}", std::process::id()));
    fs::write(&pwfile, password).map_err(ClusterError::io("write", &pwfile))?;
    fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
        .map_err(ClusterError::io("set permissions on", &pwfile))?;
    if let Some(run_as) = run_as {
        run_as.chown(data_dir)?;
        run_as.chown(&pwfile)?;
    }
    let mut cmd = Command::new(binaries.tool("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .arg(format!("--username={EMBEDDED_SUPERUSER}"))
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
        .args(["--encoding=UTF8", "--locale=C"])
        .current_dir(data_dir)
        .stdin(Stdio::null());
    if !options.durable {
        cmd.arg("--no-sync");
    }
    if let Some(run_as) = run_as {
        run_as.apply(&mut cmd);
    }
    let out = cmd.output();
    let _ = fs::remove_file(&pwfile);
    let out = out.map_err(ClusterError::io("run", &binaries.tool("initdb")))?;
    if !out.status.success() {
        // A half-initialized directory would be mistaken for a cluster next time.
        let _ = fs::remove_dir_all(data_dir);
        return Err(ClusterError::Tool {
            tool: "initdb",
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
