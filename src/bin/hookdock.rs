//! The `hookdock` command-line tool: see `hookdock --help`, and the `hookdock::cli` module
//! for what it does.

fn main() -> std::process::ExitCode {
    hookdock::cli::main()
}
