//! The `tokenrouter` binary: parse the command line and run the command.

use std::process::ExitCode;

fn main() -> ExitCode {
    tokenrouter::cli::main()
}
