//! The VM kernel matrix: boots stock Debian kernels under qemu (software emulation), runs the
//! recorder in every attach mode around the demo workload in each, brings the trace files out
//! over the serial console and checks them here field by field; also runs the same driver on
//! the host kernel. Prints one table (kernel x mode) and fails if any row failed.
//!
//!   vmtest                       the default matrix: Debian 5.10, 6.1 and 6.12 cloud kernels + host
//!   vmtest --kernels 6.12 --no-host
//!
//! Kernel packages are looked up with apt-cache (names change with Debian updates), fetched
//! with apt-get download and cached (vmlinuz + config only) under --cache, so a second run
//! fetches nothing. Series the machine's suites lack (5.10: Debian 11) come through package
//! lists of vmtest's own under the cache ([`OWN_SUITES`]). The recorder and the driver must be
//! static (scripts/static-build.sh): the initramfs carries no libraries.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Parser;
use vmtest::{GuestRun, Outcome};

#[derive(Parser)]
#[command(about = "Prove every recorder attach mode on stock Debian kernels booted under qemu")]
struct Cli {
    /// Debian kernel series to boot (the newest `linux-image-SERIES.*-cloud-amd64` of each;
    /// 5.10 from Debian 11, through a sources list of vmtest's own in the cache).
    #[arg(long, value_delimiter = ',', default_values_t = ["5.10", "6.1", "6.12"].map(String::from))]
    kernels: Vec<String>,
    /// Where fetched kernels are kept between runs (created if missing). Default:
    /// $GSOT_VMTEST_CACHE, else /var/cache/gsot-vmtest (outside the work tree, so it survives
    /// fresh clones on the same machine).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Where consoles, trace files and the table go (default: vmtest-out beside this binary).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The recorder binary to test (default: beside this binary).
    #[arg(long)]
    recorder: Option<PathBuf>,
    /// Longest one guest may run, boot to power-off.
    #[arg(long, default_value_t = 420)]
    timeout: u64,
    /// getsockopt calls per timed loop in a guest (emulated: slow; keep it short). About 5 s
    /// per guest; fewer calls make the ratio noisier.
    #[arg(long, default_value_t = 50_000)]
    bench_calls: u64,
    /// getsockopt calls per timed loop on the host.
    #[arg(long, default_value_t = 500_000)]
    host_bench_calls: u64,
    /// vCPUs per guest (the bench pins its loop to one and the recorder to the others).
    #[arg(long, default_value_t = 2)]
    smp: u32,
    /// Guests booted at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Skip the host kernel's row.
    #[arg(long)]
    no_host: bool,
}

/// A kernel ready to boot.
#[derive(Clone, Debug)]
struct Kernel {
    release: String,
    /// The decompressed ELF when it could be made (boots faster), else the bzImage.
    image: PathBuf,
    config: PathBuf,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Orders versions like `6.12.117+deb12` numerically, field by field.
fn version_key(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Kernel series the machine's Debian 12 suites do not carry, with the Debian suite that does.
const OWN_SUITES: [(&str, &str); 1] = [("5.10", "bullseye")];

/// Where a series' packages come from: the machine's apt configuration, or for a series in
/// [`OWN_SUITES`] a sources list and package lists of vmtest's own under the cache, so the
/// machine's apt setup and lists are never touched.
struct Apt {
    opts: Vec<String>,
}

impl Apt {
    fn for_series(cache: &Path, series: &str) -> Result<Apt> {
        let Some((_, suite)) = OWN_SUITES.iter().find(|(s, _)| *s == series) else {
            return Ok(Apt { opts: Vec::new() });
        };
        let dir = cache.join(format!("apt-{suite}"));
        for sub in ["lists/partial", "archives/partial", "sources.list.d"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let list = dir.join("sources.list");
        std::fs::write(
            &list,
            format!(
                "deb http://deb.debian.org/debian {suite} main\n\
                 deb http://deb.debian.org/debian-security {suite}-security main\n"
            ),
        )?;
        let d = |sub: &str| dir.join(sub).display().to_string();
        let opts = [
            format!("Dir::Etc::SourceList={}", list.display()),
            format!("Dir::Etc::SourceParts={}", d("sources.list.d")),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::Cache={}", dir.display()),
            "Dir::Cache::pkgcache=".into(),
            "Dir::Cache::srcpkgcache=".into(),
            // _apt cannot write into a root-owned cache.
            "APT::Sandbox::User=root".into(),
        ];
        Ok(Apt {
            opts: opts.iter().flat_map(|o| ["-o".into(), o.clone()]).collect(),
        })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(&self.opts);
        c
    }

    fn update(&self) -> Result<String> {
        run(self.cmd("apt-get").args(["update", "-q"]))
    }
}

/// Kernel releases of `series` the package lists know, newest first
/// (`linux-image-6.1.0-56-cloud-amd64` -> `6.1.0-56-cloud-amd64`).
fn apt_releases(apt: &Apt, series: &str) -> Result<Vec<String>> {
    let out = run(apt.cmd("apt-cache").args([
        "search",
        "--names-only",
        r"^linux-image-[0-9.]+.*-cloud-amd64$",
    ]))?;
    let mut rels: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|p| p.strip_prefix("linux-image-"))
        .filter(|r| r.starts_with(&format!("{series}.")) && r.ends_with("-cloud-amd64"))
        .map(String::from)
        .collect();
    rels.sort_by_key(|r| std::cmp::Reverse(version_key(r)));
    Ok(rels)
}

fn cached_releases(cache: &Path, series: &str) -> Vec<String> {
    let mut rels: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|r| r.starts_with(&format!("{series}.")))
        .filter(|r| cache.join("kernels").join(r).join("vmlinuz").exists())
        .collect();
    rels.sort_by_key(|r| std::cmp::Reverse(version_key(r)));
    rels
}

/// Fetches `linux-image-RELEASE` and keeps its vmlinuz and config under the cache.
fn fetch(apt: &Apt, cache: &Path, release: &str) -> Result<()> {
    let tmp = cache.join(format!("tmp-{release}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let pkg = format!("linux-image-{release}");
    let download = |tmp: &Path| {
        // Sandbox user root: _apt cannot write into a root-owned cache.
        run(apt
            .cmd("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", &pkg])
            .current_dir(tmp))
    };
    if let Err(first) = download(&tmp) {
        // Stale package lists name files the mirror no longer has: refresh once and retry.
        eprintln!("vmtest: {first:#}\nvmtest: refreshing the package lists and retrying");
        apt.update()?;
        download(&tmp)?;
    }
    let deb = std::fs::read_dir(&tmp)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let x = tmp.join("x");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&x))?;
    let dest = cache.join("kernels").join(release);
    std::fs::create_dir_all(&dest)?;
    for (from, to) in [("vmlinuz", "vmlinuz"), ("config", "config")] {
        let src = x.join(format!("boot/{from}-{release}"));
        std::fs::copy(&src, dest.join(to)).with_context(|| format!("{}", src.display()))?;
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// The newest kernel of `series`: from the cache when the package lists name nothing newer,
/// fetched otherwise; an older cached one when fetching fails.
fn resolve_kernel(cache: &Path, series: &str) -> Result<Kernel> {
    let apt = Apt::for_series(cache, series)?;
    let mut wanted = apt_releases(&apt, series)?;
    if wanted.is_empty() {
        // A fresh machine (or cache) has no package lists yet.
        eprintln!("vmtest: no {series} cloud kernel in the package lists; running apt-get update");
        apt.update()?;
        wanted = apt_releases(&apt, series)?;
    }
    let cached = cached_releases(cache, series);
    let release = match wanted.first() {
        Some(newest) if cached.contains(newest) => newest.clone(),
        Some(newest) => {
            eprintln!("vmtest: fetching linux-image-{newest}");
            match fetch(&apt, cache, newest) {
                Ok(()) => {
                    // Keep one kernel per series: older ones are of no use any more.
                    for old in &cached {
                        let _ = std::fs::remove_dir_all(cache.join("kernels").join(old));
                    }
                    newest.clone()
                }
                Err(e) => match cached.first() {
                    Some(old) => {
                        eprintln!("vmtest: {e:#}\nvmtest: using the cached {old} instead");
                        old.clone()
                    }
                    None => return Err(e),
                },
            }
        }
        None => cached.first().cloned().with_context(|| {
            format!("no Debian {series} cloud kernel in the package lists or the cache")
        })?,
    };
    let dir = cache.join("kernels").join(&release);
    let vmlinuz = dir.join("vmlinuz");
    let vmlinux = dir.join("vmlinux");
    if !vmlinux.exists() {
        match decompress(&vmlinuz) {
            Ok(elf) => std::fs::write(&vmlinux, elf)?,
            Err(e) => eprintln!("vmtest: booting the bzImage of {release}: {e:#}"),
        }
    }
    Ok(Kernel {
        image: if vmlinux.exists() { vmlinux } else { vmlinuz },
        config: dir.join("config"),
        release,
    })
}

/// The ELF vmlinux inside a bzImage: finds a compressed stream by its magic and inflates it
/// with the matching tool (the kernel's own scripts/extract-vmlinux does the same). Booting
/// it saves the emulated guest the decompression, seconds under emulation.
fn decompress(vmlinuz: &Path) -> Result<Vec<u8>> {
    let img = std::fs::read(vmlinuz)?;
    let formats: [(&[u8], &str); 4] = [
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
        (&[0x1f, 0x8b, 0x08], "gzip"),
    ];
    for (magic, tool) in formats {
        let Some(at) = img.windows(magic.len()).position(|w| w == magic) else {
            continue;
        };
        let Ok(mut child) = Command::new(tool)
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        else {
            continue;
        };
        let mut stdin = child.stdin.take().expect("stdin");
        let data = img[at..].to_vec();
        // Trailing bytes after the stream make the tools complain; the output is what counts.
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output()?;
        let _ = feeder.join();
        if out.stdout.starts_with(b"\x7fELF") && out.stdout.len() > 1 << 20 {
            return Ok(out.stdout);
        }
    }
    bail!("no compressed ELF found (or no zstd/xz/lz4/gzip tool to inflate it)")
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("exe dir")?.join(name))
}

/// Copies `bin` into the initramfs tree without debug info. It must be statically linked:
/// the guest has no loader and no libraries, which is what proves the release binary runs on
/// a bare system.
fn install_binary(root: &Path, bin: &Path, dest: &str) -> Result<()> {
    let elf = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    if let Some(interp) = vmtest::elf_interpreter(&elf).map_err(anyhow::Error::msg)? {
        bail!(
            "{} is dynamically linked (loader {interp}); the guests carry no libraries: build \
             it static as scripts/build-static.sh does",
            bin.display()
        );
    }
    let to = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap())?;
    run(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(bin)
        .arg(&to))?;
    Ok(())
}

/// The guest's initramfs (uncompressed newc cpio: nothing to inflate at boot).
fn build_initramfs(out: &Path, recorder: &Path, guest: &Path, guest_args: &str) -> Result<PathBuf> {
    let root = out.join("initramfs");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin"))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox not installed (apt-get install busybox-static)")?;
    ensure!(
        vmtest::elf_interpreter(&std::fs::read(busybox)?)
            .map_err(anyhow::Error::msg)?
            .is_none(),
        "{busybox} is dynamically linked; install busybox-static"
    );
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    install_binary(&root, recorder, "/bin/recorder")?;
    install_binary(&root, guest, "/bin/vmtest-guest")?;
    let init = root.join("init");
    std::fs::write(&init, include_str!("../../init.sh"))?;
    std::fs::write(root.join("args"), guest_args)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let cpio = out.join("initramfs.cpio");
    run(Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet > \"$0\"")
        .arg(&cpio)
        .current_dir(&root))?;
    Ok(cpio)
}

/// Runs `cmd` with its stdout and stderr into `console`, killing it after `limit`.
/// Returns the wall time and whether it timed out.
fn run_logged(mut cmd: Command, console: &Path, limit: Duration) -> Result<(Duration, bool)> {
    let file = std::fs::File::create(console)?;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    loop {
        if child.try_wait()?.is_some() {
            return Ok((started.elapsed(), false));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok((started.elapsed(), true));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn boot(cli: &Cli, k: &Kernel, initrd: &Path, console: &Path) -> Result<(Duration, bool)> {
    let mut cmd = Command::new("qemu-system-x86_64");
    // Software emulation: this machine's /dev/kvm cannot run stock kernels (see the notes in
    // README's "Attach modes on real kernels").
    cmd.args(["-accel", "tcg", "-cpu", "max"])
        .args(["-smp", &cli.smp.to_string(), "-m", "1024"])
        .args([
            "-display", "none", "-vga", "none", "-net", "none", "-monitor", "none",
        ])
        .arg("-serial")
        .arg(format!(
            "file:{}",
            console.with_extension("serial").display()
        ))
        .arg("-no-reboot")
        .arg("-kernel")
        .arg(&k.image)
        .arg("-initrd")
        .arg(initrd)
        // panic=-1: a panic reboots at once, and -no-reboot turns that into qemu exiting.
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"]);
    let qemu_log = console.with_extension("qemu.log");
    let r = run_logged(cmd, &qemu_log, Duration::from_secs(cli.timeout))?;
    std::fs::rename(console.with_extension("serial"), console)
        .with_context(|| format!("qemu wrote no console ({})", qemu_log.display()))?;
    let qemu_out = std::fs::read_to_string(&qemu_log).unwrap_or_default();
    if !qemu_out.trim().is_empty() {
        let mut c = std::fs::OpenOptions::new().append(true).open(console)?;
        writeln!(c, "--- qemu's own output:\n{qemu_out}")?;
    }
    Ok(r)
}

/// The console without the trace file's hex chunks: what a person needs to see on failure.
fn readable_console(text: &str) -> String {
    let mut s = String::new();
    let mut chunks = 0;
    for l in text.lines() {
        if l.contains("GSOT chunk ") {
            chunks += 1;
            continue;
        }
        if chunks > 0 {
            s.push_str(&format!("    [{chunks} trace file chunk lines]\n"));
            chunks = 0;
        }
        s.push_str(l.trim_end_matches('\r'));
        s.push('\n');
    }
    s
}

/// One kernel's (or the host's) run, checked.
struct Checked {
    label: String,
    wall: Duration,
    rows: Vec<Outcome>,
    problems: Vec<String>,
    console: PathBuf,
}

/// Whether the guest's kernel panicked before the driver printed its first `GSOT` line.
fn panicked_before_driver(console: &Path) -> bool {
    let text = String::from_utf8_lossy(&std::fs::read(console).unwrap_or_default()).into_owned();
    text.contains("Kernel panic") && !text.contains("GSOT ")
}

/// Whether the guest timed out with its kernel reporting a soft lockup (seen once on 5.10
/// under TCG, in the tracepoint bench, both vCPUs stuck; the next boot of the same binaries
/// passed). Kept apart from a guest that is merely slow or a driver that failed.
fn locked_up(console: &Path, timed_out: bool) -> bool {
    let text = String::from_utf8_lossy(&std::fs::read(console).unwrap_or_default()).into_owned();
    timed_out && text.contains("watchdog: BUG: soft lockup")
}

fn check_run(
    label: &str,
    dir: &Path,
    console: &Path,
    (wall, timed_out): (Duration, bool),
    config: Option<&Path>,
    analyze: Option<&Path>,
    scenarios: &[&str],
) -> Result<Checked> {
    let text = String::from_utf8_lossy(&std::fs::read(console)?).into_owned();
    let run: GuestRun = vmtest::parse_console(&text);
    let mut problems: Vec<String> = run.problems.clone();
    if timed_out {
        problems.push(format!("timed out after {:.0}s", wall.as_secs_f64()));
    }
    if !run.done {
        problems.push("the driver never reached its end (GSOT done)".into());
    }
    let expect = match config {
        Some(p) => Some(vmtest::expected_support(
            &std::fs::read_to_string(p)?,
            &run.kernel_release,
        )),
        None => None,
    };
    let mut rows = Vec::new();
    for &mode in scenarios {
        let Some(m) = run.mode(mode) else {
            problems.push(format!("{mode}: no result"));
            rows.push(Outcome {
                kernel: label.to_string(),
                mode: mode.to_string(),
                note: "no result: the run stopped before it".into(),
                problems: vec!["no result".into()],
                ..Outcome::default()
            });
            continue;
        };
        let mut trace = None;
        if let Ok(bytes) = &m.file {
            let path = dir.join(format!("{mode}.gsot"));
            std::fs::write(&path, bytes)?;
            match format::TraceReader::open(&path) {
                Ok(r) => trace = Some(r),
                Err(e) => problems.push(format!("{mode}: trace file unreadable: {e}")),
            }
            if let Some(analyze) = analyze {
                let out = Command::new(analyze).arg("info").arg(&path).output()?;
                let info = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                std::fs::write(dir.join(format!("{mode}.info.txt")), &info)?;
                if !out.status.success() {
                    problems.push(format!(
                        "{mode}: analyze info failed ({}): {info}",
                        out.status
                    ));
                }
            }
        }
        // What the kernel must support depends on the attach mode, not the buffer kind.
        let attach = vmtest::scenario(mode).map_or(mode, |s| s.attach);
        let e = expect.as_ref().and_then(|x| x.get(attach));
        let mut o = vmtest::check_mode(&run, m, e, trace.as_ref());
        o.kernel = label.to_string();
        if vmtest::scenario(mode).is_some_and(|s| s.attach == "auto") {
            vmtest::check_auto(&run, &mut o);
        }
        rows.push(o);
    }
    for o in &rows {
        problems.extend(o.problems.iter().map(|p| format!("{}: {p}", o.mode)));
    }
    Ok(Checked {
        label: label.to_string(),
        wall,
        rows,
        problems,
        console: console.to_path_buf(),
    })
}

fn guest_matrix(
    cli: &Cli,
    out: &Path,
    recorder: &Path,
    analyze: Option<&Path>,
) -> Result<Vec<Checked>> {
    let t = Instant::now();
    let cache = cli
        .cache
        .clone()
        .or_else(|| std::env::var_os("GSOT_VMTEST_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/cache/gsot-vmtest"));
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("creating the kernel cache {}", cache.display()))?;
    let mut kernels = Vec::new();
    for series in &cli.kernels {
        kernels.push(resolve_kernel(&cache, series)?);
    }
    let guest_scenarios: Vec<&str> = vmtest::SCENARIOS.iter().map(|s| s.name).collect();
    let guest_args = format!(
        "--recorder /bin/recorder --out /out --bench-calls {} --modes {}",
        cli.bench_calls,
        guest_scenarios.join(",")
    );
    let initrd = build_initramfs(out, recorder, &sibling("vmtest-guest")?, &guest_args)?;
    eprintln!(
        "vmtest: kernels ready and initramfs built in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // Boot up to --jobs guests at once.
    let queue = std::sync::Mutex::new(kernels.iter());
    let results: Vec<Result<Checked>> = std::thread::scope(|s| {
        let queue = &queue;
        let initrd = &initrd;
        let guest_scenarios = &guest_scenarios;
        let handles: Vec<_> = (0..cli.jobs.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let Some(k) = queue.lock().unwrap().next() else {
                            return done;
                        };
                        done.push((|| {
                            let dir = out.join(&k.release);
                            let _ = std::fs::remove_dir_all(&dir);
                            std::fs::create_dir_all(&dir)?;
                            let console = dir.join("console.log");
                            eprintln!("vmtest: booting {} ({})", k.release, k.image.display());
                            let mut run = boot(cli, k, initrd, &console)?;
                            if panicked_before_driver(&console) {
                                // Seen on 6.12 under TCG: an int3 oops while the kernel
                                // patches its own text at boot, before any of our code runs.
                                // One retry tells that flake from a real failure.
                                let first = dir.join("console.first-boot.log");
                                std::fs::rename(&console, &first)?;
                                eprintln!(
                                    "vmtest: {} panicked before the driver started (see {}); booting it again",
                                    k.release,
                                    first.display()
                                );
                                run = boot(cli, k, initrd, &console)?;
                            } else if locked_up(&console, run.1) {
                                // Not hidden: the first console stays beside the second, the
                                // message names it, and a second lockup fails the row.
                                let first = dir.join("console.lockup.log");
                                std::fs::rename(&console, &first)?;
                                eprintln!(
                                    "vmtest: WARNING: {}'s kernel reported a soft lockup and timed out (see {}); booting it again",
                                    k.release,
                                    first.display()
                                );
                                run = boot(cli, k, initrd, &console)?;
                            }
                            let (wall, timed_out) = run;
                            eprintln!(
                                "vmtest: {} ran for {:.1}s{}",
                                k.release,
                                wall.as_secs_f64(),
                                if timed_out { " and timed out" } else { "" }
                            );
                            check_run(
                                &k.release,
                                &dir,
                                &console,
                                (wall, timed_out),
                                Some(&k.config),
                                analyze,
                                guest_scenarios,
                            )
                        })());
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut checked: Vec<Checked> = results.into_iter().collect::<Result<_>>()?;
    // Table order follows --kernels, whatever order the guests finished in.
    checked.sort_by_key(|c| kernels.iter().position(|k| k.release == c.label));
    Ok(checked)
}

fn host_run(cli: &Cli, out: &Path, recorder: &Path, analyze: Option<&Path>) -> Result<Checked> {
    let label = format!("host {}", recorder::sys::uname_field(|u| &u.release));
    let dir = out.join("host");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let console = dir.join("console.log");
    let mut cmd = Command::new(sibling("vmtest-guest")?);
    cmd.arg("--recorder")
        .arg(recorder)
        .arg("--out")
        .arg(&dir)
        .args(["--bench-calls", &cli.host_bench_calls.to_string()]);
    eprintln!("vmtest: running the driver on the host kernel");
    let (wall, timed_out) = run_logged(cmd, &console, Duration::from_secs(cli.timeout))?;
    // The host's config says what the kernel was built with, not what this sandbox allows
    // (it refuses fentry): the host row reports, it does not hold modes to the config.
    check_run(
        &label,
        &dir,
        &console,
        (wall, timed_out),
        None,
        analyze,
        &vmtest::MODES,
    )
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vmtest: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner() -> Result<bool> {
    let cli = Cli::parse();
    let started = Instant::now();
    let out = match &cli.out {
        Some(o) => o.clone(),
        None => sibling("vmtest-out")?,
    };
    std::fs::create_dir_all(&out)?;
    let recorder = match &cli.recorder {
        Some(r) => r.clone(),
        None => sibling("recorder")?,
    };
    ensure!(
        recorder.exists(),
        "no recorder at {} (source scripts/static-build.sh && static_build -p recorder -p analyze)",
        recorder.display()
    );
    let analyze = sibling("analyze")?;
    let analyze = if analyze.exists() {
        Some(analyze.as_path())
    } else {
        eprintln!(
            "vmtest: no analyze binary beside vmtest; trace files are checked with the format reader only"
        );
        None
    };
    let mut all = Vec::new();
    if !cli.no_host {
        all.push(host_run(&cli, &out, &recorder, analyze)?);
    }
    if !cli.kernels.is_empty() {
        all.extend(guest_matrix(&cli, &out, &recorder, analyze)?);
    }
    let rows: Vec<Outcome> = all.iter().flat_map(|c| c.rows.clone()).collect();
    let table = vmtest::table(&rows);
    std::fs::write(out.join("results.md"), &table)?;
    let mut ok = true;
    for c in &all {
        if c.problems.is_empty() {
            continue;
        }
        ok = false;
        let console = std::fs::read(&c.console).unwrap_or_default();
        println!(
            "\n=== {} FAILED; its console ({}):\n{}",
            c.label,
            c.console.display(),
            readable_console(&String::from_utf8_lossy(&console))
        );
        println!("=== {} problems:", c.label);
        for p in &c.problems {
            println!("  - {p}");
        }
    }
    println!("\n{table}");
    for c in &all {
        println!("{}: {:.1}s", c.label, c.wall.as_secs_f64());
    }
    println!(
        "vmtest: {} in {:.1}s; consoles, traces and results.md in {}",
        if ok { "all passed" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(ok)
}
