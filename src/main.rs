//! Entry point: parse the command line and hand over to `cli::run`.

use clap::Parser as _;

/// mimalloc instead of glibc malloc: a 100-variable list allocates several hundred small
/// objects per request, and glibc's allocator (malloc, free, chunk consolidation) was 19 % of
/// the server's CPU under load in a profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gatehouse::cli::run(gatehouse::cli::Cli::parse())
}
