//! Man pages and shell completions printed from a tool's own clap [`Command`], so they can
//! never drift from the command line (ripgrep's shape: each tool has a hidden
//! `generate KIND` subcommand that calls [`run`]; `scripts/release.sh` packages the output).
//!
//! [`gaps`] is the check the tools' tests run: every visible subcommand, flag and value of
//! the real command must appear in what each kind generates.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Command, ValueEnum};
use clap_complete::Shell;

/// What `generate` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Man pages (section 1): TOOL.1 and one TOOL-SUBCOMMAND.1 per subcommand, git's shape.
    Man,
    /// bash completion script.
    CompleteBash,
    /// zsh completion script.
    CompleteZsh,
    /// fish completion script.
    CompleteFish,
}

impl Kind {
    /// Every kind, in the order `release.sh` and the tests go through them.
    pub const ALL: [Kind; 4] = [
        Kind::Man,
        Kind::CompleteBash,
        Kind::CompleteZsh,
        Kind::CompleteFish,
    ];

    fn shell(self) -> Option<Shell> {
        match self {
            Kind::Man => None,
            Kind::CompleteBash => Some(Shell::Bash),
            Kind::CompleteZsh => Some(Shell::Zsh),
            Kind::CompleteFish => Some(Shell::Fish),
        }
    }
}

/// The arguments of a tool's hidden `generate` subcommand.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Write the files into DIR (created if missing) under the names they are installed as,
    /// and print their paths; without it the text is printed (for `man`, TOOL.1 alone).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// One generated file: the name it is installed under and its contents.
#[derive(Debug)]
pub struct File {
    pub name: String,
    pub text: Vec<u8>,
}

/// Everything `kind` generates for `cmd`; the tool's own page or script comes first.
pub fn files(cmd: Command, kind: Kind) -> io::Result<Vec<File>> {
    let cmd = match kind {
        Kind::Man => cmd,
        _ => without_hidden_subcommands(cmd),
    };
    // `help` is clap's, not the tool's: no page of its own (as clap_mangen::generate_to does).
    let mut cmd = cmd.disable_help_subcommand(true);
    // Fills in display names (TOOL-SUBCOMMAND), which name the pages and their cross-references.
    cmd.build();
    match kind.shell() {
        None => {
            let mut files = Vec::new();
            man_pages(&cmd, &mut files)?;
            Ok(files)
        }
        Some(shell) => {
            let name = cmd.get_name().to_string();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut text);
            // bash-completion loads completions/NAME when NAME is first completed, and Debian
            // installs them under that name; zsh (_NAME) and fish (NAME.fish) as clap names them.
            let file_name = match shell {
                Shell::Bash => name,
                _ => clap_complete::Generator::file_name(&shell, &name),
            };
            Ok(vec![File {
                name: file_name,
                text,
            }])
        }
    }
}

/// `cmd` without its hidden subcommands, which clap_complete would offer (it completes them on
/// purpose, clap-rs/clap#1335) and clap has no way to remove: every command that has one is
/// assembled anew from its own name, texts, arguments, groups and visible subcommands (before
/// `build`, which adds `--help` and `--version`). Hidden flags are still completed: dropping
/// one would break a group or conflict that names it.
fn without_hidden_subcommands(cmd: Command) -> Command {
    let cmd = cmd.mut_subcommands(without_hidden_subcommands);
    if !cmd.get_subcommands().any(Command::is_hide_set) {
        return cmd;
    }
    let mut new = Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .groups(cmd.get_groups().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        new = new.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        new = new.long_about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        new = new.version(version.to_string());
    }
    new
}

fn man_pages(cmd: &Command, files: &mut Vec<File>) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut text = Vec::new();
    man.render(&mut text)?;
    files.push(File {
        name: man.get_filename(),
        text,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, files)?;
    }
    Ok(())
}

/// The `generate` subcommand: prints to `out`, or writes files with `--out-dir`.
pub fn run(args: &GenerateArgs, cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let files = files(cmd, args.kind)?;
    let Some(dir) = &args.out_dir else {
        return out.write_all(&files[0].text);
    };
    let named = |path: &std::path::Path, e: io::Error| {
        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| named(dir, e))?;
    for f in &files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.text).map_err(|e| named(&path, e))?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

/// What is wrong with a built tool's `generate`, for the tools' integration tests: for every
/// kind, `EXE generate KIND` must exit 0 and print a non-empty text, and `--out-dir` must
/// write the same text as the first file it lists.
pub fn check_binary(exe: &Path) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("clidoc-check-{}", std::process::id()));
    let mut problems = Vec::new();
    for kind in Kind::ALL {
        let kind = kind
            .to_possible_value()
            .expect("not hidden")
            .get_name()
            .to_string();
        let run = |extra: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new(exe)
                .args(["generate", &kind])
                .args(extra)
                .output();
            match out {
                Ok(o) if o.status.success() => Ok(o.stdout),
                Ok(o) => Err(format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                )),
                Err(e) => Err(e.to_string()),
            }
        };
        let printed = match run(&[]) {
            Ok(text) if text.is_empty() => Err("printed nothing".to_string()),
            other => other,
        };
        let written = run(&["--out-dir".as_ref(), dir.as_os_str()]).and_then(|listing| {
            let first = String::from_utf8_lossy(&listing)
                .lines()
                .next()
                .map(PathBuf::from);
            let first = first.ok_or("--out-dir listed no file")?;
            std::fs::read(&first).map_err(|e| format!("{}: {e}", first.display()))
        });
        match (printed, written) {
            (Ok(p), Ok(w)) if p == w => {}
            (Ok(_), Ok(_)) => problems.push(format!("{kind}: --out-dir wrote another text")),
            (Err(e), _) => problems.push(format!("{kind}: {e}")),
            (_, Err(e)) => problems.push(format!("{kind} --out-dir: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    problems
}

/// What the generated output gets wrong about `cmd`, one line each (empty: nothing).
///
/// Man pages: each visible subcommand has its page, listed on its parent's page, and each
/// visible flag (long and short) and value is on the page of the command that takes it.
/// Completions: each visible subcommand name, flag and possible value is in the script,
/// spelled as that shell's script spells it. Hidden subcommands are in neither.
pub fn gaps(cmd: Command) -> io::Result<Vec<String>> {
    gaps_in(cmd.clone(), &|kind| files(cmd.clone(), kind))
}

/// [`gaps`] of `cmd` in what `generated` returns for each kind.
fn gaps_in(
    cmd: Command,
    generated: &dyn Fn(Kind) -> io::Result<Vec<File>>,
) -> io::Result<Vec<String>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut gaps = Vec::new();
    for kind in Kind::ALL {
        let files = generated(kind)?;
        let kind_name = kind
            .to_possible_value()
            .expect("not hidden")
            .get_name()
            .to_string();
        let mut gap = |what: String| gaps.push(format!("{kind_name}: {what}"));
        walk(&cmd, &mut |c: &Command| {
            let path = c.get_display_name().unwrap_or(c.get_name());
            let page = |p: &str| files.iter().find(|f| f.name == format!("{p}.1"));
            let text = match kind {
                Kind::Man => match page(path) {
                    Some(f) => String::from_utf8_lossy(&f.text).into_owned(),
                    None => return gap(format!("{path}: no page {path}.1")),
                },
                _ => String::from_utf8_lossy(&files[0].text).into_owned(),
            };
            for item in expected(c, kind) {
                if text.contains(&item.spelling) != item.shown {
                    let how = if item.shown { "missing" } else { "shown" };
                    gap(format!("{path}: {} {how} ({:?})", item.what, item.spelling));
                }
            }
            for sub in c.get_subcommands().filter(|s| s.is_hide_set()) {
                let sub_path = sub.get_display_name().unwrap_or(sub.get_name());
                if kind == Kind::Man && page(sub_path).is_some() {
                    gap(format!(
                        "{path}: hidden subcommand {} has a page",
                        sub.get_name()
                    ));
                }
            }
        });
    }
    Ok(gaps)
}

/// Calls `f` on `cmd` and every visible subcommand below it.
fn walk(cmd: &Command, f: &mut dyn FnMut(&Command)) {
    f(cmd);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        walk(sub, f);
    }
}

/// An item of a command, how one kind's output spells it, and whether it must be there.
struct Expected {
    what: String,
    spelling: String,
    shown: bool,
}

/// The items of `cmd` (not its subcommands' flags) as `kind`'s output spells them.
fn expected(cmd: &Command, kind: Kind) -> Vec<Expected> {
    let mut items = Vec::new();
    let mut push = |what: String, spelling: String, shown: bool| {
        items.push(Expected {
            what,
            spelling,
            shown,
        })
    };
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        let spelling = match kind {
            // The SUBCOMMANDS section refers to the page: recorder\-record(1).
            Kind::Man => format!("{}(1)", roff(sub.get_display_name().unwrap_or(name))),
            // The case arm that descends into it.
            Kind::CompleteBash => format!(",{name})"),
            Kind::CompleteZsh => format!("'{name}:"),
            Kind::CompleteFish => format!("-a \"{name}\""),
        };
        let hidden = sub.is_hide_set();
        let what = if hidden {
            "hidden subcommand"
        } else {
            "subcommand"
        };
        push(format!("{what} {name}"), spelling, !hidden);
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            let spelling = match kind {
                Kind::Man => roff(&format!("--{long}")),
                Kind::CompleteFish => format!("-l {long}"),
                _ => format!("--{long}"),
            };
            push(format!("flag --{long}"), spelling, true);
        }
        if let Some(short) = arg.get_short() {
            let spelling = match kind {
                Kind::Man => roff(&format!("-{short}")),
                Kind::CompleteFish => format!("-s {short}"),
                _ => format!("-{short}"),
            };
            push(format!("flag -{short}"), spelling, true);
        }
        for value in arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
        {
            let name = value.get_name();
            let spelling = if kind == Kind::Man {
                roff(name)
            } else {
                name.to_string()
            };
            push(format!("value {name} of {}", arg.get_id()), spelling, true);
        }
    }
    items
}

/// How roff (and so clap_mangen) writes `s`: a hyphen is `\-`, so man prints it as one.
fn roff(s: &str) -> String {
    s.replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn tool() -> Command {
        Command::new("tool")
            .version("1.0")
            .arg(Arg::new("threads").long("threads").global(true))
            .subcommand(
                Command::new("run")
                    .about("Runs")
                    .arg(Arg::new("output").short('o').long("output"))
                    .arg(
                        Arg::new("mode")
                            .long("mode")
                            .value_parser(["fast-path", "slow"]),
                    )
                    .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue)),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn generated_output_covers_the_command() {
        assert_eq!(gaps(tool()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_page_per_visible_subcommand_under_installed_names() {
        let names = |kind| -> Vec<String> {
            files(tool(), kind)
                .unwrap()
                .into_iter()
                .map(|f| f.name)
                .collect()
        };
        assert_eq!(names(Kind::Man), ["tool.1", "tool-run.1"]);
        assert_eq!(names(Kind::CompleteBash), ["tool"]);
        assert_eq!(names(Kind::CompleteZsh), ["_tool"]);
        assert_eq!(names(Kind::CompleteFish), ["tool.fish"]);
    }

    /// The check sees what the generated text lacks or shows wrongly: here the pages and
    /// scripts of an older command (no --quiet, no `fast-path` value, `secret` not hidden) are
    /// held against the current one.
    #[test]
    fn what_the_output_lacks_or_shows_wrongly_is_reported_for_every_kind() {
        let older = Command::new("tool")
            .version("1.0")
            .arg(Arg::new("threads").long("threads").global(true))
            .subcommand(
                Command::new("run")
                    .arg(Arg::new("output").short('o').long("output"))
                    .arg(Arg::new("mode").long("mode").value_parser(["slow"])),
            )
            .subcommand(Command::new("secret"));
        let gaps = gaps_in(tool(), &|kind| files(older.clone(), kind)).unwrap();
        assert_eq!(
            gaps,
            [
                r#"man: tool: hidden subcommand secret shown ("tool\\-secret(1)")"#,
                r#"man: tool: hidden subcommand secret has a page"#,
                r#"man: tool-run: value fast-path of mode missing ("fast\\-path")"#,
                r#"man: tool-run: flag --quiet missing ("\\-\\-quiet")"#,
                r#"complete-bash: tool: hidden subcommand secret shown (",secret)")"#,
                r#"complete-bash: tool-run: value fast-path of mode missing ("fast-path")"#,
                r#"complete-bash: tool-run: flag --quiet missing ("--quiet")"#,
                r#"complete-zsh: tool: hidden subcommand secret shown ("'secret:")"#,
                r#"complete-zsh: tool-run: value fast-path of mode missing ("fast-path")"#,
                r#"complete-zsh: tool-run: flag --quiet missing ("--quiet")"#,
                r#"complete-fish: tool: hidden subcommand secret shown ("-a \"secret\"")"#,
                r#"complete-fish: tool-run: value fast-path of mode missing ("fast-path")"#,
                r#"complete-fish: tool-run: flag --quiet missing ("-l quiet")"#,
            ]
        );
    }

    /// What bash offers at the end of `line` with the generated script loaded, as
    /// bash-completion calls it: the function gets the command, the word and the one before.
    fn bash_completes(line: &str) -> String {
        let script = files(tool(), Kind::CompleteBash).unwrap().remove(0).text;
        let words: Vec<&str> = line.split(' ').collect();
        let n = words.len();
        let program = format!(
            "{}\nCOMP_WORDS=({}); COMP_CWORD={}; _tool tool '{}' '{}'; echo \"${{COMPREPLY[*]}}\"",
            String::from_utf8(script).unwrap(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            n - 1,
            words[n - 1],
            words[n - 2],
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn the_bash_script_completes_subcommands_flags_and_values() {
        // `secret` is hidden: not offered.
        assert_eq!(
            bash_completes("tool "),
            "-h -V --threads --help --version run"
        );
        assert_eq!(bash_completes("tool run --q"), "--quiet");
        assert_eq!(bash_completes("tool run --mode f"), "fast-path");
    }

    #[test]
    fn prints_the_first_file_or_writes_all_into_out_dir() {
        let mut out = Vec::new();
        let args = GenerateArgs {
            kind: Kind::Man,
            out_dir: None,
        };
        run(&args, tool(), &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with(".ie \\n(.g .ds Aq")
        );

        let dir = std::env::temp_dir().join(format!("clidoc-test-{}", std::process::id()));
        let args = GenerateArgs {
            kind: Kind::Man,
            out_dir: Some(dir.join("man1")),
        };
        let mut out = Vec::new();
        run(&args, tool(), &mut out).unwrap();
        let listed = String::from_utf8(out).unwrap();
        let page = std::fs::read_to_string(dir.join("man1/tool-run.1")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            listed,
            format!("{0}/man1/tool.1\n{0}/man1/tool-run.1\n", dir.display())
        );
        assert!(page.contains("\\-\\-output"), "{page}");
    }

    /// `true` takes any arguments and prints nothing: what the tools' tests would see if
    /// `generate` were a stub.
    #[test]
    fn check_binary_reports_a_generate_that_prints_nothing() {
        assert_eq!(
            check_binary(Path::new("/bin/true")),
            [
                "man: printed nothing",
                "complete-bash: printed nothing",
                "complete-zsh: printed nothing",
                "complete-fish: printed nothing",
            ]
        );
    }

    #[test]
    fn an_unwritable_out_dir_names_the_path() {
        let args = GenerateArgs {
            kind: Kind::CompleteBash,
            out_dir: Some("/proc/clidoc/no".into()),
        };
        let e = run(&args, tool(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().starts_with("/proc/clidoc/no: "), "{e}");
    }
}
