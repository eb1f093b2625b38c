//! Finding the PostgreSQL server binaries (and their version) the cluster runs from.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::MIN_PG_MAJOR;
use super::error::ClusterError;

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
    pub fn find() -> Result<Self, ClusterError> {
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
            Some((found, bindir)) => Err(ClusterError::TooOld { found, bindir }),
            None => Err(ClusterError::BinariesNotFound),
        }
    }

    pub(super) fn tool(&self, name: &str) -> PathBuf {
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
