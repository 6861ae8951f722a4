//! `recorder demo`: record while the built-in workload runs as a child, and the hidden
//! `recorder workload` that is that child.

use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use recorder::record::{Filters, Session};
use recorder::{sys, workload};

use super::{CommonArgs, print_summary, stderr_reporter};

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args)]
pub(super) struct WorkloadArgs {
    /// Wait for a line on stdin before starting, so the tracer can set its pid filter.
    #[arg(long)]
    wait_stdin: bool,
}

pub(super) fn run(args: Args) -> Result<()> {
    sys::install_stop_handlers();
    let started = Instant::now();
    // The workload waits for a line on stdin, so the session can start with the pid filter
    // already in the kernel: no other process's call is recorded before it is set.
    let exe = std::env::current_exe().context("locating the recorder binary")?;
    let mut child = Command::new(exe)
        .args(["workload", "--wait-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo workload")?;
    let filters = Filters {
        pid: Some(child.id()),
        ..Filters::default()
    };
    let session = args
        .common
        .record_options(filters)
        .and_then(|opts| Session::start(opts, stderr_reporter()));
    let session = match session {
        Ok(session) => session,
        Err(e) => {
            // Killed, not left to read EOF on its stdin and run unrecorded.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    eprintln!(
        "recorder: recording the demo workload (pid {}) to {}",
        child.id(),
        args.common.target()
    );
    writeln!(child.stdin.take().context("workload stdin")?, "go")
        .context("starting the demo workload")?;
    let stdout = child.stdout.take().context("workload stdout")?;
    let printer = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
    });
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        // Give the last exit events a drain cycle to land before stopping.
        std::thread::sleep(Duration::from_millis(200));
        sys::STOP.store(true, Ordering::Relaxed);
        status
    });
    let summary = session.run(&sys::STOP)?;
    let status = waiter
        .join()
        .expect("waiter thread")
        .context("waiting for the workload")?;
    let _ = printer.join();
    if !status.success() {
        bail!("the demo workload failed ({status})");
    }
    print_summary(&summary, &args.common.target(), started);
    Ok(())
}

pub(super) fn run_workload(args: WorkloadArgs) -> Result<()> {
    if args.wait_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the start signal")?;
    }
    let calls = workload::run().context("demo workload")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36} {:>4} {:>6} {:>8} {:>10} {:>10} {:>6}",
        "call", "fd", "level", "optname", "optlen in", "optlen out", "ret"
    )?;
    for c in &calls {
        writeln!(
            out,
            "{:<36} {:>4} {:>6} {:>8} {:>10} {:>10} {:>6}",
            c.label, c.fd, c.level, c.optname, c.optlen_in, c.optlen_out, c.ret
        )?;
    }
    Ok(())
}
