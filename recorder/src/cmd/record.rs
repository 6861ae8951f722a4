//! `recorder record`: record until Ctrl-C/SIGTERM, `--duration` or `--max-events`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use gsot_decode::levels::{parse_level, resolve_option};
use gsot_decode::time::parse_std_duration as parse_duration;
use recorder::record::{Filters, Session};
use recorder::ring::{RingOptions, Trigger};
use recorder::sys;

use super::{CommonArgs, parse_size, print_summary, stderr_reporter};

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Only this process (tgid).
    #[arg(long)]
    pid: Option<u32>,
    /// Only tasks with this name (exact, at most 15 bytes).
    #[arg(long)]
    comm: Option<String>,
    /// Only this user id.
    #[arg(long)]
    uid: Option<u32>,
    /// Only this cgroup v2: a path (e.g. /system.slice/nginx.service) or a numeric id.
    #[arg(long)]
    cgroup: Option<String>,
    /// Only this level: a name (SOL_SOCKET, IPPROTO_TCP, ...) or a number.
    #[arg(long, value_parser = parse_level)]
    level: Option<i32>,
    /// Only this option: a name (SO_RCVBUF, TCP_INFO, ...) or a number. A name sets the level
    /// too when only one level has it; otherwise give --level.
    #[arg(long)]
    optname: Option<String>,
    /// Only calls that failed.
    #[arg(long)]
    errors_only: bool,
    /// Only calls on a TCP/UDP socket with one of these ports (local or remote), e.g.
    /// --port 443,8443. Like --remote-addr and --family, this walks to the socket of every
    /// call, also of those it rejects: about 125 ns of program time per rejected call here
    /// (as much as --comm), 300 on kernels before 6.2 (README, Performance).
    #[arg(long, value_delimiter = ',', value_name = "N[,N..]")]
    port: Vec<u16>,
    /// Only calls on an IPv4/IPv6 socket whose peer is in this network (an address or CIDR;
    /// an IPv4 network also matches v4-mapped peers of IPv6 sockets).
    #[arg(long, value_name = "CIDR")]
    remote_addr: Option<String>,
    /// Only calls on sockets of this family: inet, inet6 or unix.
    #[arg(long, value_name = "FAMILY")]
    family: Option<String>,
    /// Stop after this long (e.g. 10s, 1.5s, 5m, 1h, 500ms; a unit is required).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    max_events: Option<u64>,
    /// Start a new file when the current one reaches this size (e.g. 100M).
    #[arg(long, value_parser = parse_size)]
    rotate_size: Option<u64>,
    /// Start a new file after this long (e.g. 1h).
    #[arg(long, value_parser = parse_duration)]
    rotate_time: Option<Duration>,
    /// Once attached, run as this user (who then owns the output and creates rotated files).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Do not ask Docker (/var/run/docker.sock) for container names, images and Kubernetes
    /// labels; containers keep the runtime and id their cgroup path gives.
    #[arg(long)]
    no_container_names: bool,
    /// Flight recorder: keep the calls of this last stretch of time in memory (compressed) and
    /// write nothing until a trigger (SIGUSR1 or --trigger); then write them, and the calls of
    /// --after, to OUTPUT (the next triggers to OUTPUT.1.EXT, ...; a stream, -o -, takes one
    /// trigger's trace and the capture stops).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    ring: Option<Duration>,
    /// Most memory the ring's compressed calls take (at least 1M; the oldest go first).
    #[arg(long, value_parser = parse_size, default_value = "256M", requires = "ring")]
    ring_size: u64,
    /// Write a trigger's file when a drained call matches this `analyze --where` expression
    /// (e.g. 'errno == ECONNREFUSED').
    #[arg(long, value_name = "EXPR", requires = "ring")]
    trigger: Option<String>,
    /// How long after a trigger its file keeps taking calls.
    #[arg(long, value_parser = parse_duration, default_value = "10s", requires = "ring")]
    after: Duration,
    /// Stop the capture once this many trigger files are written.
    #[arg(long, value_name = "N", requires = "ring")]
    max_triggers: Option<u32>,
}

pub(super) fn run(args: Args) -> Result<()> {
    let cgroup = match &args.cgroup {
        Some(spec) => Some((sys::cgroup_id(spec)?, spec.clone())),
        None => None,
    };
    let (level, optname) = match &args.optname {
        Some(name) => {
            let (level, optname) =
                resolve_option(args.level, name).map_err(|e| anyhow!("--optname: {e}"))?;
            (level, Some(optname))
        }
        None => (args.level, None),
    };
    let filters = Filters {
        pid: args.pid,
        comm: args.comm.clone(),
        uid: args.uid,
        cgroup,
        level,
        optname,
        errors_only: args.errors_only,
        ports: args.port.clone(),
        remote_addr: match &args.remote_addr {
            Some(c) => Some(recorder::sock::Cidr::parse(c).context("--remote-addr")?),
            None => None,
        },
        family: match &args.family {
            Some(f) => Some((
                recorder::sock::parse_family(f).context("--family")?,
                f.clone(),
            )),
            None => None,
        },
    };
    let mut opts = args.common.record_options(filters)?;
    opts.duration = args.duration;
    opts.max_events = args.max_events;
    opts.container_names = !args.no_container_names;
    opts.rotate_size = args.rotate_size;
    opts.rotate_time = args.rotate_time;
    opts.ring = match args.ring {
        Some(window) => Some(RingOptions {
            window,
            size: args.ring_size,
            after: args.after,
            trigger: args.trigger.as_deref().map(Trigger::parse).transpose()?,
            max_triggers: args.max_triggers,
        }),
        None => None,
    };
    opts.run_as = args
        .user
        .as_deref()
        .map(recorder::privs::RunAs::lookup)
        .transpose()?;
    sys::install_stop_handlers();
    if opts.ring.is_some() {
        recorder::ring::install_trigger_signal();
    }
    let started = Instant::now();
    let opts_ring = opts.ring.clone();
    let session = Session::start(opts, stderr_reporter())?;
    // Tests, `recorder bench` and the VM guest wait for this line: keep it as it is.
    eprintln!(
        "recorder: recording to {} (Ctrl-C to stop)",
        args.common.target()
    );
    if let Some(r) = &opts_ring {
        eprintln!(
            "recorder: flight recorder: keeping the last {:?} in memory (at most {} bytes); \
             SIGUSR1 (kill -USR1 {}){} writes them",
            r.window,
            r.size,
            std::process::id(),
            r.trigger
                .as_ref()
                .map(|t| format!(" or a call matching {}", t.source))
                .unwrap_or_default()
        );
    }
    let summary = session.run(&sys::STOP)?;
    print_summary(&summary, &args.common.target(), started);
    Ok(())
}
