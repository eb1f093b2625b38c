//! Command line: `fluxbase [serve]`, `fluxbase migrate`, `--config PATH`, `--config-test`,
//! `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, LoadedConfig};

/// Fluxbase: a self-hosted Backend-as-a-Service on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "fluxbase", version, about)]
pub struct Cli {
    /// Configuration file (default: ./fluxbase.yaml, then /etc/fluxbase/fluxbase.yaml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Check the configuration and exit: prints `configuration OK` or every error.
    #[arg(long)]
    pub config_test: bool,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print an `anon` and a `service_role` API key (long-lived JWTs signed with the
    /// configured secret), as Supabase clients expect.
    Keys,
}

/// Environment variables as strings (non-UTF-8 ones cannot be configuration).
fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = config::load(cli.config.as_deref(), environment());
    if cli.config_test {
        return match loaded {
            Ok(LoadedConfig { file, .. }) => {
                match file {
                    Some(path) => println!("configuration OK ({})", path.display()),
                    None => println!("configuration OK (defaults and environment; no file)"),
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("configuration has {} error(s):", errors.len());
                for err in &errors {
                    eprintln!("  {err}");
                }
                ExitCode::FAILURE
            }
        };
    }
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("fluxbase: invalid configuration:");
            for err in &errors {
                eprintln!("  {err}");
            }
            return ExitCode::FAILURE;
        }
    };
    // Before any thread starts (logging starts one): see `descriptors`. Logged by `serve`,
    // after its first line.
    let descriptors = matches!(cli.command, None | Some(Command::Serve))
        .then(|| crate::descriptors::prepare(u64::from(loaded.config.realtime.max_connections)));
    // `keys` prints only the keys on stdout (where logs go), so that it can be scripted.
    if !matches!(cli.command, Some(Command::Keys)) {
        crate::telemetry::init_logging(&loaded.config.log);
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::server::serve(loaded.config, descriptors),
        Command::Migrate => crate::server::migrate(loaded.config),
        Command::Keys => keys(loaded.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "fluxbase stopped");
            eprintln!("fluxbase: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `fluxbase keys`: the secret is resolved as `serve` does (in embedded mode, the
/// development secret of `.fluxbase/jwt-secret`, created if missing), then one line per key.
fn keys(mut config: config::Config) -> anyhow::Result<()> {
    let embedded = config.database.url.is_none();
    let development = embedded && config.auth.jwt_secret.is_none();
    crate::server::resolve_jwt_secret(&mut config, embedded)?;
    let secret = config
        .auth
        .jwt_secret
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("auth.jwt_secret is not set"))?;
    if development {
        eprintln!(
            "fluxbase: signed with the development secret in {}/jwt-secret (set FLUXBASE_JWT_SECRET for production)",
            crate::server::STATE_DIR
        );
    }
    let jwt = fluxbase_auth::JwtKeys::hs256(secret.as_bytes());
    let now = fluxbase_auth::tokens::now_secs();
    println!(
        "anon key: {}",
        fluxbase_auth::tokens::api_key(&jwt, "anon", now)
    );
    println!(
        "service_role key: {}",
        fluxbase_auth::tokens::api_key(&jwt, "service_role", now)
    );
    eprintln!(
        "fluxbase: the service_role key bypasses Row-Level Security: keep it on servers only"
    );
    Ok(())
}
