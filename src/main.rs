//! Entry point: parse the command line and hand over to `cli::run`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    gatehouse::cli::run(gatehouse::cli::Cli::parse())
}
