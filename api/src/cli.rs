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
    crate::telemetry::init_logging(&loaded.config.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::server::serve(loaded.config),
        Command::Migrate => crate::server::migrate(loaded.config),
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
