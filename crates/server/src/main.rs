//! The `tokenrouter` binary: parse the command line and run the command.

use std::process::ExitCode;

/// jemalloc rather than the system's allocator: 7 % fewer instructions per request at
/// saturation than glibc's malloc (`bench/prof/instr.sh`, which spent 15 % of the
/// gateway's instructions in it), for about 3 MiB more resident memory, still flat over a
/// million requests (`bench/nginx.sh`). mimalloc, tried before, cost 20–35 MiB.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tokenrouter::cli::main()
}
