//! Secrets kept in files: generated once, written `0600` (only this user may read them),
//! read back on later starts — the embedded cluster's password, the development JWT secret.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::Rng;
use rand::distr::Alphanumeric;

/// A random alphanumeric secret of `len` characters.
pub fn generate_secret(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The secret in `path` when it holds one of at least `min_len` characters; otherwise a
/// new secret of `new_len` characters written there with mode `0600` (parent directories
/// created as needed).
pub fn read_or_create(path: &Path, min_len: usize, new_len: usize) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= min_len.max(1) => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let secret = generate_secret(new_len);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_once_with_mode_0600_then_reads_back() {
        let dir = std::env::temp_dir().join(format!("fluxbase-secret-{}", generate_secret(8)));
        let path = dir.join("nested").join("secret");
        let first = read_or_create(&path, 32, 48).unwrap();
        assert_eq!(first.len(), 48);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_or_create(&path, 32, 48).unwrap(), first);
        // Too short to be a secret: replaced.
        fs::write(&path, "short").unwrap();
        assert_ne!(read_or_create(&path, 32, 48).unwrap(), "short");
        fs::remove_dir_all(dir).unwrap();
    }
}
