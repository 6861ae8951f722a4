//! `analyze generate KIND` (hidden): the man pages and shell completions, from the real
//! command line; `scripts/release.sh` packages them.

use std::io::Write;

use clap::CommandFactory;

use crate::{AppError, Cli};

pub use clidoc::GenerateArgs;

pub fn run(a: &GenerateArgs, out: &mut dyn Write) -> Result<(), AppError> {
    Ok(clidoc::run(a, Cli::command(), out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_and_completions_cover_every_subcommand_and_flag() {
        assert_eq!(clidoc::gaps(Cli::command()).unwrap(), Vec::<String>::new());
    }
}
