//! The `analyze` command line; everything is in the library so tests and later subcommands
//! share it.

use std::process::ExitCode;

fn main() -> ExitCode {
    analyze::run(std::env::args_os())
}
