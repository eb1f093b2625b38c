//! The embedded PostgreSQL cluster: started from the system's PostgreSQL binaries when no
//! `DATABASE_URL` is given, and by the test harness.
//!
//! The cluster listens on 127.0.0.1 and on a unix socket only, with SCRAM password auth and
//! a generated password kept `0600` beside the data directory, so other local users get no
//! trust access. As root it runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;

/// The oldest PostgreSQL major version we support (logical replication, `DROP DATABASE …
/// WITH (FORCE)`, SCRAM by default).
pub const MIN_PG_MAJOR: u32 = 13;

/// Database superuser created by `initdb` for the embedded cluster.
pub const EMBEDDED_SUPERUSER: &str = "fluxbase";

/// Database the server uses inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "fluxbase";

/// One line on how to get PostgreSQL, repeated wherever binaries are missing.
pub const INSTALL_HINT: &str = "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install -y postgresql`; \
     macOS: `brew install postgresql`), put their bin directory on PATH or in FLUXBASE_PG_BINDIR, \
     or set DATABASE_URL to use an existing server";

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How long start-up may take before we give up and show the cluster's log.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before we escalate to an immediate one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the embedded cluster, each with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No PostgreSQL server binaries were found.
    #[error("no PostgreSQL server binaries (initdb, postgres) found: {INSTALL_HINT}")]
    BinariesNotFound,
    /// The binaries found are too old.
    #[error(
        "PostgreSQL {found} found in {bindir}, but {MIN_PG_MAJOR} or newer is required: {INSTALL_HINT}"
    )]
    TooOld { found: String, bindir: PathBuf },
    /// Running as root without a `postgres` user to run the cluster as.
    #[error(
        "running as root, but there is no `postgres` user to run the embedded cluster as \
         (PostgreSQL refuses to run as root): install the postgresql package, which creates it, \
         or run fluxbase as an unprivileged user"
    )]
    NoPostgresUser,
    /// The data directory cannot be reached by the user the cluster runs as.
    #[error(
        "the embedded cluster's data directory {path} cannot be reached by the `postgres` user \
         ({blocker} is not searchable by others): run fluxbase from a directory outside it, \
         or set DATABASE_URL"
    )]
    Unreachable { path: PathBuf, blocker: PathBuf },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A PostgreSQL tool exited with an error.
    #[error("{tool} failed ({status}): {output}")]
    Tool {
        tool: &'static str,
        status: String,
        output: String,
    },
    /// The server did not become ready.
    #[error("the embedded PostgreSQL did not start: {reason}; last lines of {log}:\n{tail}")]
    StartFailed {
        reason: String,
        log: PathBuf,
        tail: String,
    },
}

impl EmbeddedError {
    /// Wraps an I/O error with what we were doing and to which path.
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| EmbeddedError::Io {
            action,
            path,
            source,
        }
    }
}

/// The directory of PostgreSQL server binaries and their version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// Directory holding `initdb` and `postgres`.
    pub bindir: PathBuf,
    /// Major version reported by `postgres --version`.
    pub major: u32,
    /// Full version string, e.g. `15.18`.
    pub version: String,
}

impl PgBinaries {
    /// Finds the server binaries: `FLUXBASE_PG_BINDIR`, then `PATH`, then
    /// `pg_config --bindir`, then `/usr/lib/postgresql/*/bin` (newest first), then the
    /// Homebrew and PGDG locations.
    pub fn find() -> Result<Self, EmbeddedError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("FLUXBASE_PG_BINDIR") {
            candidates.push(PathBuf::from(dir));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            candidates.push(PathBuf::from(dir));
        }
        for root in [
            "/usr/lib/postgresql",
            "/usr/pgsql",
            "/opt/homebrew/opt",
            "/usr/local/opt",
        ] {
            candidates.extend(versioned_bindirs(Path::new(root)));
        }
        let mut too_old = None;
        for dir in candidates {
            if !(dir.join("initdb").is_file() && dir.join("postgres").is_file()) {
                continue;
            }
            let Some((major, version)) = server_version(&dir) else {
                continue;
            };
            if major < MIN_PG_MAJOR {
                too_old.get_or_insert((version, dir));
                continue;
            }
            return Ok(PgBinaries {
                bindir: dir,
                major,
                version,
            });
        }
        match too_old {
            Some((found, bindir)) => Err(EmbeddedError::TooOld { found, bindir }),
            None => Err(EmbeddedError::BinariesNotFound),
        }
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// `root/<version>/bin` directories, newest version first.
fn versioned_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let digits: String = name.chars().filter(|c| c.is_ascii_digit()).collect();
            let version = digits.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, p)| p).collect()
}

/// Runs `postgres --version` and parses `postgres (PostgreSQL) 15.18 (Debian …)`.
fn server_version(bindir: &Path) -> Option<(u32, String)> {
    let out = Command::new(bindir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?.to_string();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, version))
}

/// The OS user the cluster's processes run as.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `None` when we are not root: the cluster then runs as ourselves.
    fn detect() -> Result<Option<RunAs>, EmbeddedError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let passwd = fs::read_to_string("/etc/passwd")
            .map_err(EmbeddedError::io("read", Path::new("/etc/passwd")))?;
        passwd
            .lines()
            .find_map(|line| {
                let mut f = line.split(':');
                (f.next()? == "postgres").then_some(())?;
                let uid = f.nth(1)?.parse().ok()?;
                let gid = f.next()?.parse().ok()?;
                Some(Some(RunAs { uid, gid }))
            })
            .ok_or(EmbeddedError::NoPostgresUser)
    }

    fn chown(self, path: &Path) -> Result<(), EmbeddedError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(EmbeddedError::io("change the owner of", path))
    }

    fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }
}

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
    pub fn start(mut options: ClusterOptions) -> Result<Self, EmbeddedError> {
        // Tools run with the data directory as their working directory: paths must be
        // absolute.
        options.data_dir = std::path::absolute(&options.data_dir)
            .map_err(EmbeddedError::io("resolve", &options.data_dir))?;
        let binaries = PgBinaries::find()?;
        let run_as = RunAs::detect()?;
        let state_dir = options.state_dir();
        fs::create_dir_all(&state_dir).map_err(EmbeddedError::io("create", &state_dir))?;
        if run_as.is_some() {
            // Root-owned and not listable by others, but traversable by `postgres`.
            fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o711))
                .map_err(EmbeddedError::io("set permissions on", &state_dir))?;
            check_reachable(&options.data_dir)?;
        }
        let password = read_or_create_password(&options.password_file())?;
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
    fn launch(&mut self, run_as: Option<RunAs>) -> Result<(), EmbeddedError> {
        let log_path = self.options.log_file();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(EmbeddedError::io("open", &log_path))?;
        let log_err = log
            .try_clone()
            .map_err(EmbeddedError::io("open", &log_path))?;

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
            .map_err(EmbeddedError::io(
                "spawn a thread for",
                &self.options.data_dir,
            ))?;
        let pid = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("supervisor thread died")))
            .map_err(EmbeddedError::io("start", &self.binaries.tool("postgres")))?;
        self.supervisor = Some(Supervisor { pid, thread });

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if postmaster_ready(&self.options.data_dir, pid) {
                let _ = fs::write(self.options.port_file(), self.port.to_string());
                return Ok(());
            }
            let exited = self
                .supervisor
                .as_ref()
                .is_some_and(|s| s.thread.is_finished());
            if exited || Instant::now() > deadline {
                self.supervisor = None;
                return Err(EmbeddedError::StartFailed {
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
    pub fn stop(&mut self) -> Result<(), EmbeddedError> {
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
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
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

/// Every ancestor of `path` must be searchable by the `postgres` user.
fn check_reachable(path: &Path) -> Result<(), EmbeddedError> {
    let abs = std::path::absolute(path).map_err(EmbeddedError::io("resolve", path))?;
    for ancestor in abs.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        if meta.mode() & 0o001 == 0 {
            return Err(EmbeddedError::Unreachable {
                path: abs.clone(),
                blocker: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn random_secret(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Reads the superuser password, generating it (`0600`) on first use.
fn read_or_create_password(path: &Path) -> Result<String, EmbeddedError> {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(EmbeddedError::io("read", path)(err)),
    }
    let password = random_secret(32);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(EmbeddedError::io("create", path))?;
    file.write_all(password.as_bytes())
        .map_err(EmbeddedError::io("write", path))?;
    Ok(password)
}

/// Runs `initdb` with SCRAM auth for local and host connections.
fn init_data_dir(
    options: &ClusterOptions,
    binaries: &PgBinaries,
    run_as: Option<RunAs>,
    password: &str,
) -> Result<(), EmbeddedError> {
    let data_dir = &options.data_dir;
    fs::create_dir_all(data_dir).map_err(EmbeddedError::io("create", data_dir))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .map_err(EmbeddedError::io("set permissions on", data_dir))?;
    // initdb reads the password from a file the cluster's user can read; it lives only
    // for the duration of initdb, inside the 0700 data directory's parent.
    let pwfile = options
        .state_dir()
        .join(format!(".pwfile-{}", std::process::id()));
    fs::write(&pwfile, password).map_err(EmbeddedError::io("write", &pwfile))?;
    fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
        .map_err(EmbeddedError::io("set permissions on", &pwfile))?;
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
    let out = out.map_err(EmbeddedError::io("run", &binaries.tool("initdb")))?;
    if !out.status.success() {
        // A half-initialized directory would be mistaken for a cluster next time.
        let _ = fs::remove_dir_all(data_dir);
        return Err(EmbeddedError::Tool {
            tool: "initdb",
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The data directory when the socket path fits, else a short private directory in /tmp.
fn socket_dir_for(data_dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf, EmbeddedError> {
    let abs = std::path::absolute(data_dir).map_err(EmbeddedError::io("resolve", data_dir))?;
    if abs.as_os_str().len() + "/.s.PGSQL.65535".len() <= MAX_SOCKET_PATH {
        return Ok(abs);
    }
    let mut hasher = sha2::Sha256::default();
    sha2::Digest::update(&mut hasher, abs.as_os_str().as_encoded_bytes());
    let digest = hex::encode(sha2::Digest::finalize(hasher));
    let dir = std::env::temp_dir().join(format!("fluxbase-pg-{}", &digest[..12]));
    fs::create_dir_all(&dir).map_err(EmbeddedError::io("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(EmbeddedError::io("set permissions on", &dir))?;
    if let Some(run_as) = run_as {
        run_as.chown(&dir)?;
    }
    Ok(dir)
}

/// Fields of `postmaster.pid`: pid, data dir, start time, port, socket dir, listen address,
/// shared memory key, status.
fn read_pid_file(data_dir: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    Some(text.lines().map(|l| l.trim().to_string()).collect())
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The port of a live postmaster already serving `data_dir`, if any.
fn running_postmaster(data_dir: &Path) -> Option<u16> {
    let fields = read_pid_file(data_dir)?;
    let pid: i32 = fields.first()?.parse().ok()?;
    if !process_alive(pid) {
        return None;
    }
    let port = fields.get(3)?.parse().ok()?;
    // Wait (bounded) for a postmaster that is still starting up.
    let deadline = Instant::now() + START_TIMEOUT;
    while !postmaster_ready(data_dir, pid) {
        if Instant::now() > deadline || !process_alive(pid) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Some(port)
}

/// Whether the postmaster `pid` reports `ready` in its pid file.
fn postmaster_ready(data_dir: &Path, pid: i32) -> bool {
    read_pid_file(data_dir).is_some_and(|f| {
        f.first().and_then(|p| p.parse::<i32>().ok()) == Some(pid)
            && f.get(7).is_some_and(|s| s == "ready")
    })
}

/// The port used last time when it is still free, else a fresh free port.
fn choose_port(port_file: &Path) -> u16 {
    let previous = fs::read_to_string(port_file)
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok());
    if let Some(port) = previous
        && TcpListener::bind(("127.0.0.1", port)).is_ok()
    {
        return port;
    }
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

/// The last `n` lines of a log file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes directories left in the temp dir by test processes that died.
pub fn remove_stale_dirs(prefix: &str) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let pg_running = read_pid_file(&entry.path().join("pg"))
            .and_then(|f| f.first()?.parse::<i32>().ok())
            .is_some_and(process_alive);
        if !process_alive(pid) && !pg_running {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Generates a random alphanumeric secret (passwords, dev JWT secrets).
pub fn generate_secret(len: usize) -> String {
    random_secret(len)
}

/// Ensures `path`'s parent exists for state files written by the server.
pub fn ensure_state_dir(path: &Path) -> Result<(), EmbeddedError> {
    fs::create_dir_all(path).map_err(EmbeddedError::io("create", path))
}

/// Whether the postmaster of `data_dir` is running (for tests and diagnostics).
pub fn is_running(data_dir: &Path) -> bool {
    read_pid_file(data_dir)
        .and_then(|f| f.first()?.parse::<i32>().ok())
        .is_some_and(process_alive)
}

/// Helper for the pid-file owner check used by tests.
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    read_pid_file(data_dir)?.first()?.parse().ok()
}
