//! The `tokenrouter` binary: parse the command line and run the command.

use std::process::ExitCode;

/// mimalloc instead of the C library's allocator: a request allocates and frees many small
/// buffers, and glibc's malloc spent ~8 % of the gateway's CPU doing it (`bench/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tokenrouter::cli::main()
}
