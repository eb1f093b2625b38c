//! The running postmaster as seen from outside: its pid file, whether it is alive and
//! ready, its port and socket directory, its log, and stale test directories.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::ClusterError;
use super::run_as::RunAs;
use super::{MAX_SOCKET_PATH, START_TIMEOUT};

/// The data directory when the socket path fits, else a short private directory in /tmp.
pub(super) fn socket_dir_for(
    data_dir: &Path,
    run_as: Option<RunAs>,
) -> Result<PathBuf, ClusterError> {
    let abs = std::path::absolute(data_dir).map_err(ClusterError::io("resolve", data_dir))?;
    if abs.as_os_str().len() + "/.s.PGSQL.65535".len() <= MAX_SOCKET_PATH {
        return Ok(abs);
    }
    let mut hasher = sha2::Sha256::default();
    sha2::Digest::update(&mut hasher, abs.as_os_str().as_encoded_bytes());
    let digest = hex::encode(sha2::Digest::finalize(hasher));
    let dir = std::env::temp_dir().join(format!("fluxbase-pg-{}", &digest[..12]));
    fs::create_dir_all(&dir).map_err(ClusterError::io("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(ClusterError::io("set permissions on", &dir))?;
    if let Some(run_as) = run_as {
        run_as.chown(&dir)?;
    }
    Ok(dir)
}

/// Fields of `postmaster.pid`: pid, data dir, start time, port, socket dir, listen address,
/// shared memory key, status.
pub(super) fn read_pid_file(data_dir: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    Some(text.lines().map(|l| l.trim().to_string()).collect())
}

pub(super) fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The port of a live postmaster already serving `data_dir`, if any.
pub(super) fn running_postmaster(data_dir: &Path) -> Option<u16> {
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
pub(super) fn postmaster_ready(data_dir: &Path, pid: i32) -> bool {
    read_pid_file(data_dir).is_some_and(|f| {
        f.first().and_then(|p| p.parse::<i32>().ok()) == Some(pid)
            && f.get(7).is_some_and(|s| s == "ready")
    })
}

/// The port used last time when it is still free, else a fresh free port.
pub(super) fn choose_port(port_file: &Path) -> u16 {
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
pub(super) fn tail(path: &Path, n: usize) -> String {
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
