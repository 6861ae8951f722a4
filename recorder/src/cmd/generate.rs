//! `recorder generate KIND` (hidden): the man pages and shell completions, from the real
//! command line; `scripts/release.sh` packages them.

use clap::CommandFactory;

pub(super) use clidoc::GenerateArgs as Args;

pub(super) fn run(args: Args) -> anyhow::Result<()> {
    clidoc::run(&args, super::Cli::command(), &mut std::io::stdout().lock())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_and_completions_cover_every_subcommand_and_flag() {
        let gaps = clidoc::gaps(super::super::Cli::command()).unwrap();
        assert_eq!(gaps, Vec::<String>::new());
    }
}
