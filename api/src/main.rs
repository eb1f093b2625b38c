//! The `fluxbase` binary.

fn main() -> std::process::ExitCode {
    fluxbase_api::cli::main()
}
