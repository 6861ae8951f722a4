//! `recorder`: record every getsockopt() call on this machine into a trace file.

use std::process::ExitCode;

mod cmd;

fn main() -> ExitCode {
    cmd::main()
}
