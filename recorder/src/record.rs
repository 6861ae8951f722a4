//! A recording session: set up the probes, drain the ring buffer into trace files (rotating
//! them), keep the process table and the loss records, and stop cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use format::raw::{MAX_SNAPLEN, RAW_HEADER_SIZE};
use format::{CaptureHeader, LossRecord, SocketCapture};
use recorder_ebpf::{
    Config, FILTER_CGROUP, FILTER_COMM, FILTER_ERRORS_ONLY, FILTER_FAMILY, FILTER_LEVEL,
    FILTER_OPTNAME, FILTER_PID, FILTER_PORT, FILTER_REMOTE_ADDR, FILTER_UID, INFLIGHT_MAX_ENTRIES,
    MAX_FILTER_PORTS, SOCK_WALK_UNCACHED, SockOffsets, TaskOffsets,
};

use crate::aggregate::Aggregator;
use crate::bpf::{AttachMode, BufferKind, EventBuffer, Probes, load_and_attach};
use crate::cgroupfs::{Cgroup2, CgroupNames};
use crate::docker::ContainerNames;
use crate::output::Target;
use crate::sink::{BATCH_BYTES, Msg, QUEUE_BATCHES, Sink, push_record};
use crate::sys;

/// Filters applied in the kernel.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    /// (cgroup id, as the user gave it).
    pub cgroup: Option<(u64, String)>,
    pub level: Option<i32>,
    pub optname: Option<i32>,
    pub errors_only: bool,
    /// `--port`: local or remote port, host order.
    pub ports: Vec<u16>,
    /// `--remote-addr`: the network.
    pub remote_addr: Option<crate::sock::Cidr>,
    /// `--family`: (AF_* number, the name given).
    pub family: Option<(u16, String)>,
}

impl Filters {
    /// The (name, value) pairs stored in the file header.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let mut push = |k: &str, val: String| v.push((k.to_string(), val));
        if let Some(p) = self.pid {
            push("pid", p.to_string());
        }
        if let Some(c) = &self.comm {
            push("comm", c.clone());
        }
        if let Some(u) = self.uid {
            push("uid", u.to_string());
        }
        if let Some((id, given)) = &self.cgroup {
            push("cgroup", format!("{given} (id {id})"));
        }
        if let Some(l) = self.level {
            push("level", l.to_string());
        }
        if let Some(o) = self.optname {
            push("optname", o.to_string());
        }
        if self.errors_only {
            push("errors_only", "true".into());
        }
        if !self.ports.is_empty() {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            push("port", ports.join(","));
        }
        if let Some(c) = &self.remote_addr {
            push("remote_addr", c.to_string());
        }
        if let Some((_, name)) = &self.family {
            push("family", name.clone());
        }
        v
    }

    /// Whether a filter needs the socket of every call.
    pub fn need_sockets(&self) -> bool {
        !self.ports.is_empty() || self.remote_addr.is_some() || self.family.is_some()
    }

    fn apply(&self, cfg: &mut Config) -> Result<()> {
        cfg.filters = 0;
        if let Some(p) = self.pid {
            cfg.filters |= FILTER_PID;
            cfg.pid = p;
        }
        if let Some(c) = &self.comm {
            if c.is_empty() || c.len() > 15 {
                bail!("--comm {c:?}: the kernel keeps at most 15 bytes of a task name");
            }
            cfg.filters |= FILTER_COMM;
            cfg.comm = [0; 16];
            cfg.comm[..c.len()].copy_from_slice(c.as_bytes());
        }
        if let Some(u) = self.uid {
            cfg.filters |= FILTER_UID;
            cfg.uid = u;
        }
        if let Some((id, _)) = self.cgroup {
            cfg.filters |= FILTER_CGROUP;
            cfg.cgroup_id = id;
        }
        if let Some(l) = self.level {
            cfg.filters |= FILTER_LEVEL;
            cfg.level = l;
        }
        if let Some(o) = self.optname {
            cfg.filters |= FILTER_OPTNAME;
            cfg.optname = o;
        }
        if self.errors_only {
            cfg.filters |= FILTER_ERRORS_ONLY;
        }
        self.apply_socket_filters(cfg)
    }

    fn apply_socket_filters(&self, cfg: &mut Config) -> Result<()> {
        let sf = &mut cfg.sock_filter;
        if !self.ports.is_empty() {
            if self.ports.len() > MAX_FILTER_PORTS {
                bail!("--port takes at most {MAX_FILTER_PORTS} ports");
            }
            cfg.filters |= FILTER_PORT;
            sf.ports[..self.ports.len()].copy_from_slice(&self.ports);
            sf.n_ports = self.ports.len() as u32;
        }
        if let Some(c) = &self.remote_addr {
            cfg.filters |= FILTER_REMOTE_ADDR;
            (sf.remote_net, sf.remote_mask) = c.words();
        }
        if let Some((af, _)) = self.family {
            cfg.filters |= FILTER_FAMILY;
            sf.family = af.into();
        }
        Ok(())
    }
}

/// Everything `recorder record` can be told.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub output: Target,
    /// Modes to try, in order (one for an explicit `--attach`).
    pub modes: Vec<AttachMode>,
    pub snaplen: u32,
    pub ringbuf_size: u32,
    /// `--buffer`: the ring buffer, per-CPU perf buffers, or whichever the kernel has.
    pub buffer: BufferKind,
    pub filters: Filters,
    pub duration: Option<Duration>,
    pub max_events: Option<u64>,
    pub rotate_size: Option<u64>,
    pub rotate_time: Option<Duration>,
    /// `--ring`: a flight recorder, writing only when triggered.
    pub ring: Option<crate::ring::RingOptions>,
    pub block_events: u32,
    /// Longest time an event waits in the open block before it is flushed to the file.
    pub flush_interval: Duration,
    /// How often the ring buffer is drained when no burst forces a wakeup.
    pub drain_interval: Duration,
    pub command_line: Vec<String>,
    /// `--user`: who the recorder runs as once attached, and who owns its files.
    pub run_as: Option<crate::privs::RunAs>,
    /// Ask Docker for container names (off with `--no-container-names`).
    pub container_names: bool,
    /// In-flight slots (a power of two, at most `INFLIGHT_MAX_ENTRIES`); fewer only in tests.
    pub inflight_slots: u32,
    /// Test only: the writer thread sleeps this long per batch, as a stalled compression or
    /// disk would make it.
    pub test_write_delay: Duration,
    /// `--no-sockets`: no socket identity (no walk from the fd to its socket).
    pub no_sockets: bool,
    /// How the programs walk from an fd to its socket.
    pub socket_walk: SocketWalk,
    /// `--max-rate`: events a second the kernel hands over at most; every call is counted in
    /// aggregate records.
    pub max_rate: Option<u64>,
}

impl RecordOptions {
    /// The uid that owns the output files (an existing one must already be theirs).
    pub(crate) fn owner(&self) -> u32 {
        // SAFETY: geteuid cannot fail.
        self.run_as
            .as_ref()
            .map_or_else(|| unsafe { libc::geteuid() }, |u| u.uid)
    }
}

/// What a finished session did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub lost: u64,
    pub bytes_written: u64,
    pub files: Vec<PathBuf>,
    pub mode: String,
}

impl Summary {
    pub fn bytes_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.bytes_written as f64 / self.events as f64
        }
    }
}

/// What a session tells its user while it runs; the binary prints these, a test may collect them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Kernel BTF gave no task offsets: ppid and namespace ids will be 0.
    NoBtfOffsets(String),
    /// Kernel BTF lacks what the socket walk needs: no socket identity in this capture.
    NoSocketIdentity(String),
    /// An attach mode tried before the one that worked, and why it was not used.
    NotUsing(String),
    /// The probes are attached.
    Attached { mode: AttachMode, to: String },
    /// The buffer the records come through, and why.
    Buffer { kind: BufferKind, why: String },
    /// A new output file was started.
    Rotated(PathBuf),
    /// A flight recorder's trigger fired: its file is being written.
    Triggered { by: String, path: PathBuf },
    /// At the end of a flight recorder's capture: the most compressed bytes its ring held.
    RingPeak { peak_bytes: u64, size: u64 },
    /// The kernel has no BPF compare-and-swap: two threads' calls colliding in one in-flight
    /// slot at the wrong moment can go unrecorded and uncounted.
    InexactClaims,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::NoBtfOffsets(e) => write!(
                f,
                "warning: no kernel BTF offsets ({e}); ppid and namespace ids will be 0"
            ),
            Notice::NoSocketIdentity(e) => {
                write!(f, "warning: no socket identity in this capture: {e}")
            }
            Notice::NotUsing(why) => write!(f, "not using {why}"),
            Notice::Attached { mode, to } => write!(f, "attached via {mode} ({to})"),
            Notice::Buffer { kind, why } => write!(f, "buffer: {} ({why})", kind.name()),
            Notice::Rotated(path) => write!(f, "rotated to {}", path.display()),
            Notice::Triggered { by, path } => {
                write!(f, "triggered by {by}: writing {}", path.display())
            }
            Notice::RingPeak { peak_bytes, size } => write!(
                f,
                "the flight recorder's ring held at most {peak_bytes} bytes (--ring-size {size})"
            ),
            Notice::InexactClaims => write!(
                f,
                "warning: kernel before 5.12 (no BPF compare-and-swap): a call colliding with \
                 another thread's in its in-flight slot can go uncounted"
            ),
        }
    }
}

/// Receives a session's notices as they happen.
pub type Reporter = Box<dyn FnMut(Notice) + Send>;

/// The n-th file of a rotated capture: `trace.gsot`, `trace.1.gsot`, `trace.2.gsot`, ...
pub fn rotated_path(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    base.with_file_name(name)
}

/// Largest `--ringbuf-size`. The ring buffer's data pages are mapped twice into the recorder
/// (so that a record which wraps reads as one) and resident memory counts them twice, so the
/// ring weighs twice its size there; this is the largest that keeps the recorder's peak
/// resident memory under its 64 MiB bound (measured: README, "Performance").
pub const MAX_RINGBUF_SIZE: u32 = 16 << 20;

/// `--ringbuf-size`: a power of two from 4 KiB to [`MAX_RINGBUF_SIZE`].
pub fn ringbuf_size(bytes: u64) -> Result<u32> {
    if !bytes.is_power_of_two() || bytes < 4096 {
        bail!("--ringbuf-size must be a power of two of at least 4096 bytes, got {bytes}");
    }
    match u32::try_from(bytes) {
        Ok(n) if n <= MAX_RINGBUF_SIZE => Ok(n),
        _ => bail!(
            "--ringbuf-size {bytes} is over the largest, {MAX_RINGBUF_SIZE} (16M): the ring \
             buffer's pages are mapped twice and count twice in resident memory, which a larger \
             one would put over the recorder's 64 MiB bound"
        ),
    }
}

/// A running capture: the probes and the drain on the calling thread, the files on a writer
/// thread of their own (see [`crate::sink`]) once it runs.
pub struct Session {
    opts: RecordOptions,
    probes: Probes,
    sink: Sink,
    last_loss_count: Vec<u64>,
    agg: Option<Aggregator>,
}

impl Session {
    /// Checks privileges, attaches the probes and creates the first output file.
    pub fn start(mut opts: RecordOptions, mut report: Reporter) -> Result<Session> {
        sys::check_privileges()?;
        sys::raise_memlock_limit();
        if opts.modes.contains(&AttachMode::Tracepoint) {
            sys::ensure_tracefs()?;
        }
        if opts.snaplen == 0 || opts.snaplen as usize >= MAX_SNAPLEN {
            bail!("--snaplen must be between 1 and {}", MAX_SNAPLEN - 1);
        }
        ringbuf_size(opts.ringbuf_size.into())?;
        if !opts.inflight_slots.is_power_of_two() || opts.inflight_slots > INFLIGHT_MAX_ENTRIES {
            bail!("--inflight-slots must be a power of two of at most {INFLIGHT_MAX_ENTRIES}");
        }
        let offsets = match crate::btf::Btf::from_sys_fs().and_then(|b| b.task_offsets()) {
            Ok(o) => o,
            Err(e) => {
                report(Notice::NoBtfOffsets(format!("{e:#}")));
                TaskOffsets::default()
            }
        };
        let mut sockets = socket_offsets(&opts, &mut report)?;
        let ring_buffer = crate::support::KernelFacts::probe().ring_buffer;
        let (buffer, buffer_why) = opts.buffer.choose(ring_buffer);
        let mut config = Config {
            self_tgid: std::process::id(),
            snaplen: opts.snaplen,
            wakeup_threshold: opts.ringbuf_size / 2,
            loss_window_ns: sys::boot_ns(),
            offsets,
            inflight_mask: opts.inflight_slots - 1,
            ..Config::default()
        };
        opts.filters.apply(&mut config)?;
        let agg = aggregator(&opts)?;
        if let Some(a) = &agg {
            a.apply(&mut config);
        }
        let rotates = opts.rotate_size.is_some() || opts.rotate_time.is_some();
        if let Some(ring) = &opts.ring {
            ring.validate()?;
            if rotates {
                bail!(
                    "--ring writes one file per trigger (numbered like rotated files): \
                     --rotate-size and --rotate-time do not apply to it"
                );
            }
            if opts.output.is_stream() && ring.max_triggers.is_some_and(|n| n > 1) {
                bail!(
                    "--ring with a stream writes one trigger's trace to {}, then stops: \
                     --max-triggers above 1 needs -o FILE (one file per trigger)",
                    opts.output
                );
            }
        }
        // A stream holds one trace: the first trigger's, after which the capture ends.
        if let Some(ring) = opts.ring.as_mut().filter(|_| opts.output.is_stream()) {
            ring.max_triggers = Some(1);
        }
        if rotates && opts.output.is_stream() {
            bail!(
                "--rotate-size and --rotate-time need an output file: {} is a stream, which \
                 cannot be rotated",
                opts.output
            );
        }
        // Files created after the drop of privileges (rotated ones, a flight recorder's).
        if let Some(u) = &opts.run_as
            && (rotates || opts.ring.is_some())
            && !opts.output.is_stream()
        {
            u.check_writable(opts.output.path().parent().unwrap_or(Path::new(".")))?;
        }
        // Create the file before attaching, so an unwritable output fails fast. A flight
        // recorder writes nothing before a trigger: its directory is checked instead.
        // A stream is taken (and checked: not a terminal) now even when a flight recorder
        // writes its one trace there later.
        let mut held_stream = None;
        let first = match opts.ring {
            None => Some(crate::output::open(&opts.output, opts.owner())?),
            Some(_) if opts.output.is_stream() => {
                held_stream = Some(crate::output::open(&opts.output, opts.owner())?);
                None
            }
            Some(_) => {
                let dir = opts
                    .output
                    .path()
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new("."));
                if !dir.is_dir() {
                    bail!(
                        "cannot write {}: {} is not a directory",
                        opts.output,
                        dir.display()
                    );
                }
                None
            }
        };
        let probes = match sockets.load_and_attach(config, &opts, buffer, &mut report) {
            Ok(p) => p,
            Err(e) => {
                // Leave no empty trace file behind a capture that never started.
                if first.is_some() {
                    crate::output::discard(&opts.output);
                }
                return Err(e);
            }
        };
        for f in &probes.fallbacks {
            report(Notice::NotUsing(f.to_string()));
        }
        report(Notice::Attached {
            mode: probes.mode,
            to: probes.attached_to.clone(),
        });
        if !probes.exact_claims {
            report(Notice::InexactClaims);
        }
        report(Notice::Buffer {
            kind: buffer,
            why: buffer_why.clone(),
        });

        let mut header = CaptureHeader {
            capture_id: sys::random_id(),
            host_name: sys::hostname(),
            kernel_release: sys::uname_field(|u| &u.release),
            arch: sys::uname_field(|u| &u.machine),
            cpu_count: sys::possible_cpus(),
            boot_to_wall_ns: sys::boot_to_wall_ns(),
            start_ts_ns: sys::boot_ns(),
            recorder_version: format!("recorder {}", env!("CARGO_PKG_VERSION")),
            command_line: opts.command_line.clone(),
            attach_mode: probes.mode.name().to_string(),
            filters: opts.filters.labels(),
            snaplen: opts.snaplen,
            sequence: 0,
            redacted: false,
            extra: vec![
                ("ringbuf_size".into(), opts.ringbuf_size.to_string()),
                ("buffer".into(), buffer.name().into()),
                ("buffer_reason".into(), buffer_why),
                ("attached_to".into(), probes.attached_to.clone()),
                // How in-flight calls are claimed: "cas" (exact) or "plain" (before 5.12).
                (
                    "inflight_claims".into(),
                    if probes.exact_claims { "cas" } else { "plain" }.into(),
                ),
            ]
            .into_iter()
            .chain(sockets.header_pairs.clone())
            .collect(),
        };
        if !probes.replaced_helpers.is_empty() {
            // Older helpers in place of ones this kernel lacks: FORMAT.md says what it means
            // for the timestamps.
            let v = probes.replaced_helpers.join(", ");
            header.extra.push(("replaced_helpers".into(), v));
        }
        if let Some(ring) = &opts.ring {
            header.extra.extend(ring.labels());
        }
        if let Some(a) = &agg {
            header.extra.extend(a.labels());
        }
        if opts.output.is_stream() {
            // Written in order and never rotated: FORMAT.md 2.3.
            header.extra.push(("output".into(), "stream".into()));
        }
        let mut sink = Sink::try_new(first, opts.clone(), report, header, probes.mode.name())?;
        sink.held_stream = held_stream;
        // Before privileges go: a host without cgroup2 gets a private mount.
        sink.cgroups = match Cgroup2::open() {
            Ok(fs) => Some(CgroupNames::new(fs)),
            Err(e) => {
                eprintln!(
                    "recorder: warning: {e:#}; processes that exit quickly get no cgroup path"
                );
                None
            }
        };
        let last_loss_count = probes.losses()?.iter().map(|l| l.count).collect();
        // Attached, maps open, first file there: root's remaining powers are not needed.
        crate::privs::drop_after_start(opts.run_as.as_ref())?;
        // After the drop, which needs a single thread: the Docker client has one of its own,
        // and the writer thread collects its answers, so the drain never waits for Docker.
        sink.names = opts
            .container_names
            .then(|| ContainerNames::docker(Path::new(crate::docker::DOCKER_SOCKET)))
            .flatten();
        Ok(Session {
            opts,
            probes,
            sink,
            last_loss_count,
            agg,
        })
    }

    pub fn mode(&self) -> AttachMode {
        self.probes.mode
    }

    /// Runs until `stop` is set, `--duration` passes or `--max-events` is reached, then drains
    /// what is left, finishes the file and returns the summary. An output error stops the
    /// capture too: the file keeps everything flushed before it, and the error is returned.
    pub fn run(self, stop: &AtomicBool) -> Result<Summary> {
        let Session {
            opts,
            probes,
            sink,
            last_loss_count,
            agg,
        } = self;
        let (queue, inbox) = mpsc::sync_channel(QUEUE_BATCHES);
        let (empties_tx, empties) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let writer_done = Arc::clone(&done);
        let writer = std::thread::Builder::new()
            .name("gsot-writer".into())
            .spawn(move || sink.run(inbox, empties_tx, &writer_done))
            .context("starting the writer thread")?;
        let mut drain = Drain {
            probes,
            perf_excess: vec![0; last_loss_count.len()],
            loss_base: last_loss_count.clone(),
            started_ns: sys::boot_ns(),
            last_loss_count,
            queue,
            empties,
            batch: Vec::with_capacity(BATCH_BYTES),
            forwarded: 0,
            max: opts.max_events.unwrap_or(u64::MAX),
            agg,
        };
        let drained = drain.run(&opts, stop, &done);
        // Hanging up is what tells the writer to finish the file.
        drop(drain);
        let written = writer
            .join()
            .map_err(|_| anyhow!("the writer thread panicked"))?;
        // An output error first: it is also why a drain would have found the queue closed.
        let summary = written?;
        drained?;
        Ok(summary)
    }
}

/// The drain: moves ring buffer records into batches for the writer thread and collects the
/// kernel's loss counters. When the queue is full it waits, and the kernel counts what its
/// ring buffer cannot take meanwhile (with CPU and interval), as when the drain falls behind.
struct Drain {
    probes: Probes,
    last_loss_count: Vec<u64>,
    /// Per CPU: the programs' loss count when the capture started, and the perf buffer's
    /// losses (PERF_RECORD_LOST) beyond what the programs counted since, already written.
    loss_base: Vec<u64>,
    perf_excess: Vec<u64>,
    /// Boot ns when the drain started.
    started_ns: u64,
    queue: SyncSender<Msg>,
    empties: Receiver<Vec<u8>>,
    batch: Vec<u8>,
    /// Events handed to the writer so far.
    forwarded: u64,
    max: u64,
    agg: Option<Aggregator>,
}

/// Largest record a batch may have to take (length prefix, header, value).
const MAX_RECORD: usize = 4 + RAW_HEADER_SIZE + MAX_SNAPLEN;

impl Drain {
    /// `done`: the writer has finished (a flight recorder's last trigger, an output error).
    fn run(&mut self, opts: &RecordOptions, stop: &AtomicBool, done: &AtomicBool) -> Result<()> {
        self.run_until_stopped(opts, stop, done)?;
        // After the last drain: every drained event's call is counted by then.
        let Some(agg) = self.agg.as_mut() else {
            return Ok(());
        };
        for period in agg.finish(&mut self.probes)? {
            // A writer that has hung up has its own error to report.
            let _ = self.queue.send(Msg::Aggregates(period));
        }
        Ok(())
    }

    fn run_until_stopped(
        &mut self,
        opts: &RecordOptions,
        stop: &AtomicBool,
        done: &AtomicBool,
    ) -> Result<()> {
        let started = Instant::now();
        let timeout_ms = opts.drain_interval.as_millis().clamp(1, 1000) as i32;
        let wakeups = sys::WakeupWait::new(&self.probes.wakeup_fds())
            .context("waiting on the event buffer (epoll)")?;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if done.load(Ordering::Relaxed) {
                return Ok(());
            }
            if opts.duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
            wakeups.wait(timeout_ms);
            if !self.drain()? {
                // The writer stopped (an output error, which it returns).
                return Ok(());
            }
            if self.forwarded >= self.max {
                return Ok(());
            }
            if !self.switch_aggregates()? {
                return Ok(());
            }
        }
        self.drain().map(|_| ())
    }

    /// Moves everything in the event buffer to the writer, then the loss counters. False if
    /// the writer has hung up.
    fn drain(&mut self) -> Result<bool> {
        let Drain {
            probes,
            queue,
            empties,
            batch,
            forwarded,
            max,
            ..
        } = self;
        let mut open = true;
        let mut take = |record: &[u8]| {
            if *forwarded >= *max {
                // Keep consuming so the kernel side does not count phantom losses: the file
                // is complete.
                return true;
            }
            push_record(batch, record);
            *forwarded += 1;
            open = batch.len() + MAX_RECORD <= BATCH_BYTES || send(queue, empties, batch);
            open
        };
        let perf_lost = match &mut probes.events {
            EventBuffer::Ring(ring) => {
                while let Some(item) = ring.next() {
                    if !take(&item) {
                        break;
                    }
                }
                None
            }
            EventBuffer::Perf(perf) => Some(perf.drain(take)),
        };
        if !open || (!batch.is_empty() && !send(queue, empties, batch)) {
            return Ok(false);
        }
        self.collect_losses(perf_lost.as_deref())
    }

    /// `--max-rate`: at every flush interval, the period the programs left a flush ago goes to
    /// the writer. False if the writer has hung up.
    fn switch_aggregates(&mut self) -> Result<bool> {
        let Some(agg) = self.agg.as_mut().filter(|a| a.due()) else {
            return Ok(true);
        };
        match agg.switch(&mut self.probes)? {
            Some(period) => Ok(self.queue.send(Msg::Aggregates(period)).is_ok()),
            None => Ok(true),
        }
    }

    /// The programs' loss counters as loss records. `perf_lost`: each CPU's PERF_RECORD_LOST
    /// total, which counts the same failed `bpf_perf_event_output` calls the programs count
    /// (with their interval): only a CPU whose perf total ever exceeds its program count gets
    /// the excess, as a loss record over the whole capture so far, so no loss is left out or
    /// counted twice. With `--max-rate` a sampled record the buffer had no room for is
    /// counted with the sample, not as lost (`agg::count_output_loss`), so the check is off.
    fn collect_losses(&mut self, perf_lost: Option<&[(u32, u64)]>) -> Result<bool> {
        let slots = self.probes.losses()?;
        let perf_lost = perf_lost.filter(|_| self.agg.is_none());
        for &(cpu, total) in perf_lost.unwrap_or_default() {
            let (Some(slot), Some(&base)) =
                (slots.get(cpu as usize), self.loss_base.get(cpu as usize))
            else {
                continue;
            };
            let excess = total.saturating_sub(slot.count - base);
            let written = &mut self.perf_excess[cpu as usize];
            if excess > *written {
                let loss = LossRecord {
                    cpu,
                    lost: excess - *written,
                    start_ns: self.started_ns,
                    end_ns: sys::boot_ns(),
                };
                *written = excess;
                if self.queue.send(Msg::Loss(loss)).is_err() {
                    return Ok(false);
                }
            }
        }
        let mut any = false;
        for (cpu, slot) in slots.iter().enumerate() {
            let prev = self.last_loss_count.get(cpu).copied().unwrap_or(0);
            if slot.count > prev {
                any = true;
                let loss = LossRecord {
                    cpu: cpu as u32,
                    lost: slot.count - prev,
                    start_ns: slot.first_ns,
                    end_ns: slot.last_ns,
                };
                if self.queue.send(Msg::Loss(loss)).is_err() {
                    return Ok(false);
                }
            }
        }
        self.last_loss_count = slots.iter().map(|s| s.count).collect();
        if any {
            // Losses after this moment start a new interval (see LossSlot).
            let mut cfg = *self.probes.config();
            cfg.loss_window_ns = sys::boot_ns();
            self.probes.set_config(cfg)?;
        }
        Ok(true)
    }
}

/// Hands the filled `batch` to the writer (waiting while the queue is full) and starts a new
/// one in a buffer the writer gave back. False if the writer has hung up.
fn send(queue: &SyncSender<Msg>, empties: &Receiver<Vec<u8>>, batch: &mut Vec<u8>) -> bool {
    let next = empties
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(BATCH_BYTES));
    queue
        .send(Msg::Batch(std::mem::replace(batch, next)))
        .is_ok()
}

/// `--max-rate`'s state, checked against the modes it does not compose with.
fn aggregator(opts: &RecordOptions) -> Result<Option<Aggregator>> {
    let Some(rate) = opts.max_rate else {
        return Ok(None);
    };
    let agg = Aggregator::try_new(rate, opts.flush_interval)?;
    if opts.ring.is_some() {
        bail!(
            "--max-rate and --ring do not compose: a flight recorder keeps every call of its \
             window, and its files would hold aggregates of periods they do not cover"
        );
    }
    Ok(Some(agg))
}

/// How the programs walk from an fd to its socket (`--socket-walk`, hidden: for `bench`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SocketWalk {
    /// Loads through BTF pointers where the kernel has `bpf_rdonly_cast` (6.2), else `probe`.
    #[default]
    Auto,
    /// `bpf_probe_read_kernel` spans, with the per-thread cache (what 6.1 gets).
    Probe,
    /// The same without the cache.
    ProbeUncached,
}

/// How the socket walk is set up for a capture.
struct SocketSetup {
    offsets: SockOffsets,
    /// The `bpf_rdonly_cast` kfunc's BTF id, for the BTF-pointer walk.
    rdonly_cast: Option<u32>,
    /// The header's extra pairs about it.
    header_pairs: Vec<(String, String)>,
}

impl SocketSetup {
    /// Loads and attaches the programs; if the verifier of this kernel refuses the BTF-pointer
    /// walk (a kernel this was not tried on), says so and falls back to the probe-read walk.
    fn load_and_attach(
        &mut self,
        config: Config,
        opts: &RecordOptions,
        buffer: BufferKind,
        report: &mut Reporter,
    ) -> Result<Probes> {
        let (size, modes) = ((opts.ringbuf_size, buffer), &opts.modes);
        let first = load_and_attach(config, self.offsets, self.rdonly_cast, size, modes);
        let e = match first {
            Err(e) if self.offsets.fast != 0 && e.is::<crate::bpf::ProgramsRefused>() => e,
            other => return other,
        };
        report(Notice::NotUsing(format!("the BTF socket walk: {e:#}")));
        self.offsets.fast = 0;
        self.rdonly_cast = None;
        for (k, v) in &mut self.header_pairs {
            if k == "socket_walk" {
                *v = "probe-read".into();
            }
        }
        load_and_attach(config, self.offsets, None, size, modes)
    }
}

/// The socket walk's offsets, the `bpf_rdonly_cast` kfunc id for the BTF-pointer walk, and
/// the header's extra pairs about it: `socket_identity` (format::SocketCapture) and, when
/// recorded, `socket_walk` (`btf`, `probe-read`, or `probe-read, uncached`).
fn socket_offsets(opts: &RecordOptions, report: &mut Reporter) -> Result<SocketSetup> {
    let need = opts.filters.need_sockets();
    let pairs = |c: SocketCapture<'_>| c.extra_pair().into_iter().collect::<Vec<_>>();
    if opts.no_sockets {
        if need {
            bail!("--port, --remote-addr and --family need the sockets --no-sockets turns off");
        }
        return Ok(SocketSetup {
            offsets: SockOffsets::default(),
            rdonly_cast: None,
            header_pairs: pairs(SocketCapture::Off("--no-sockets")),
        });
    }
    let btf = crate::btf::Btf::from_sys_fs();
    let mut o = match btf
        .as_ref()
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|b| b.sock_offsets())
    {
        Ok(o) => o,
        Err(e) => {
            let why = format!("{e:#}");
            if need {
                bail!("--port, --remote-addr and --family need socket identity: {why}");
            }
            report(Notice::NoSocketIdentity(why.clone()));
            return Ok(SocketSetup {
                offsets: SockOffsets::default(),
                rdonly_cast: None,
                header_pairs: pairs(SocketCapture::Unavailable(&why)),
            });
        }
    };
    let fast = match (opts.socket_walk, btf.ok().map(|b| b.fast_walk_ids())) {
        (SocketWalk::Auto, Some(Ok(f))) => Some(f),
        _ => None,
    };
    let walk = match (fast, opts.socket_walk) {
        (Some(f), _) => {
            o.fast = 1;
            o.btf_file_holder = f.file_holder;
            o.btf_socket_alloc = f.socket_alloc;
            o.btf_unix_sock = f.unix_sock;
            o.btf_netlink_sock = f.netlink_sock;
            o.btf_packet_sock = f.packet_sock;
            "btf"
        }
        (None, SocketWalk::ProbeUncached) => {
            o.enabled = SOCK_WALK_UNCACHED;
            "probe-read, uncached"
        }
        (None, _) => "probe-read",
    };
    let mut extra = pairs(SocketCapture::Recorded);
    extra.push(("socket_walk".into(), walk.into()));
    Ok(SocketSetup {
        offsets: o,
        rdonly_cast: fast.map(|f| f.rdonly_cast),
        header_pairs: extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_number_before_the_extension() {
        let p = Path::new("/tmp/x/trace.gsot");
        assert_eq!(rotated_path(p, 0), p);
        assert_eq!(rotated_path(p, 1), Path::new("/tmp/x/trace.1.gsot"));
        assert_eq!(rotated_path(Path::new("out"), 12), Path::new("out.12"));
    }

    #[test]
    fn ring_buffer_sizes_are_powers_of_two_up_to_16m() {
        assert_eq!(ringbuf_size(4096).unwrap(), 4096);
        assert_eq!(ringbuf_size(16 << 20).unwrap(), MAX_RINGBUF_SIZE);
        assert_eq!(
            ringbuf_size(12 << 10).unwrap_err().to_string(),
            "--ringbuf-size must be a power of two of at least 4096 bytes, got 12288"
        );
        assert_eq!(
            ringbuf_size(32 << 20).unwrap_err().to_string(),
            "--ringbuf-size 33554432 is over the largest, 16777216 (16M): the ring buffer's \
             pages are mapped twice and count twice in resident memory, which a larger one \
             would put over the recorder's 64 MiB bound"
        );
        assert!(ringbuf_size(1 << 40).is_err());
    }

    #[test]
    fn filters_reject_long_comms() {
        let f = Filters {
            comm: Some("sixteen_chars_xx".into()),
            ..Filters::default()
        };
        assert!(f.apply(&mut Config::default()).is_err());
        let f = Filters {
            comm: Some("curl".into()),
            errors_only: true,
            ..Filters::default()
        };
        let mut c = Config::default();
        f.apply(&mut c).unwrap();
        assert_eq!(&c.comm[..5], b"curl\0");
        assert_eq!(c.filters, FILTER_COMM | FILTER_ERRORS_ONLY);
    }
}
