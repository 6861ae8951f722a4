//! The flight recorder (`record --ring`): the most recent drained records kept in memory as
//! zstd-compressed batches, bounded by age and by bytes, and nothing written until a trigger
//! (SIGUSR1 or a `--trigger` expression matching a drained call). A trigger makes the writer
//! thread ([`crate::sink`]) write one normal trace file: the window before it, then the calls
//! of `--after` after it.
//!
//! The ring keeps the drain's batches (ring buffer records), not the file's column blocks: a
//! column block's summary and the file index name offsets in the file it was written to, so
//! blocks could not be copied into a later file as they are, and re-encoding decoded blocks
//! would cost as much as encoding the records.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use format::raw::RawEventHeader;
use format::{LossRecord, OwnedSocketRef, Socket};
use gsot_decode::cgroup;
use gsot_decode::expr::{self, Call, Expr, IntField};
use gsot_decode::sockid::SocketView;

use crate::record::Notice;
use crate::sink::{Sink, records};
use crate::sys;

/// The smallest `--ring-size`: a few compressed batches, so one batch never evicts the rest.
pub const MIN_RING_SIZE: u64 = 1 << 20;

/// Batches older than the window are kept this much longer, for the time between a call and
/// its drain (a trigger's time is its call's entry, which the drain sees only at its exit).
const RETAIN_SLACK_NS: u64 = 2_000_000_000;

/// `--ring` and what goes with it.
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// `--ring`: how much time before a trigger its file holds.
    pub window: Duration,
    /// `--ring-size`: the most compressed bytes the ring holds.
    pub size: u64,
    /// `--after`: how much time after a trigger its file holds.
    pub after: Duration,
    pub trigger: Option<Trigger>,
    /// `--max-triggers`: the capture stops after this many files.
    pub max_triggers: Option<u32>,
}

impl RingOptions {
    pub fn validate(&self) -> Result<()> {
        if self.window.is_zero() {
            bail!("--ring 0: the window must be longer than 0 (e.g. --ring 30s)");
        }
        if self.size < MIN_RING_SIZE {
            bail!("--ring-size must be at least 1M");
        }
        if self.max_triggers == Some(0) {
            bail!("--max-triggers 0 would never write a file: give at least 1");
        }
        Ok(())
    }

    /// The header's record of the mode and its parameters.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("ring_window_ns".to_string(), nanos(self.window).to_string()),
            ("ring_size".into(), self.size.to_string()),
            ("ring_after_ns".into(), nanos(self.after).to_string()),
        ];
        if let Some(t) = &self.trigger {
            v.push(("ring_trigger_expr".into(), t.source.clone()));
        }
        if let Some(n) = self.max_triggers {
            v.push(("ring_max_triggers".into(), n.to_string()));
        }
        v
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A `--trigger` expression, parsed by the `--where` parser.
#[derive(Clone, Debug)]
pub struct Trigger {
    pub source: String,
    pub expr: Expr,
}

impl Trigger {
    pub fn parse(source: &str) -> Result<Trigger> {
        let expr = expr::parse(source)
            .map_err(|e| anyhow::anyhow!("--trigger: {}", e.render(source)))?
            .cheapest_first();
        Ok(Trigger {
            source: source.to_string(),
            expr,
        })
    }
}

/// Boot-time ns of the last SIGUSR1 not yet acted on; 0 when none.
static SIGNALLED_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe and `ts` is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let ns = (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64;
    SIGNALLED_NS.store(ns.max(1), Ordering::Relaxed);
}

/// Makes SIGUSR1 a trigger. Without it the signal would end the process.
pub fn install_trigger_signal() {
    // SAFETY: the handler reads the clock and stores to an atomic, both async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// The time of a SIGUSR1 received since the last call, if any.
pub(crate) fn take_signal() -> Option<u64> {
    match SIGNALLED_NS.swap(0, Ordering::Relaxed) {
        0 => None,
        ns => Some(ns),
    }
}

/// What fired: the header of the trigger's file says it.
#[derive(Clone, Debug)]
pub(crate) enum Fired {
    Signal,
    /// The matching call's thread and entry time.
    Call {
        tid: u32,
        ts_ns: u64,
    },
}

/// One trigger: when, and what.
#[derive(Clone, Debug)]
pub(crate) struct Firing {
    pub at_ns: u64,
    pub what: Fired,
}

/// A drained event as the trigger expression sees it.
struct Drained<'a> {
    h: &'a RawEventHeader,
    /// The whole record: its AF_UNIX names follow the value.
    record: &'a [u8],
    capture_start_ns: u64,
    /// Made from the record when a socket test first asks (most triggers have none).
    socket: OnceCell<OwnedSocketRef>,
}

impl Call for Drained<'_> {
    fn int(&self, f: IntField) -> i128 {
        let h = self.h;
        match f {
            IntField::Pid => h.tgid.into(),
            IntField::Tid => h.tid.into(),
            IntField::Ppid => h.ppid.into(),
            IntField::Uid => h.uid.into(),
            IntField::Gid => h.gid.into(),
            IntField::Cgroup => h.cgroup_id.into(),
            IntField::PidNs => h.pid_ns.into(),
            IntField::MntNs => h.mnt_ns.into(),
            IntField::Cpu => h.cpu.into(),
            IntField::Fd => h.fd.into(),
            IntField::Level => h.level.into(),
            IntField::Optname => h.optname.into(),
            IntField::OptlenIn => h.optlen_in.into(),
            IntField::OptlenOut => h.optlen_out.into(),
            IntField::Ret => h.ret.into(),
            IntField::Errno => (-i128::from(h.ret)).max(0),
            IntField::ValueLen => h.value_len.into(),
            IntField::Flags => h.flags.into(),
        }
    }

    fn comm(&self) -> &[u8] {
        let end = self.h.comm.iter().position(|&c| c == 0);
        &self.h.comm[..end.unwrap_or(self.h.comm.len())]
    }

    fn cgroup_path(&self) -> Vec<u8> {
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", self.h.tgid));
        cgroup
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("0::").map(Into::into))
            })
            .unwrap_or_default()
    }

    /// From the cgroup path alone: the runtime's names (Docker's) are not asked for a trigger.
    fn attribution(&self) -> cgroup::Attribution {
        cgroup::Attribution {
            cgroup: cgroup::parse(&String::from_utf8_lossy(&self.cgroup_path())),
            names: cgroup::Names::default(),
        }
    }

    /// As the writer will record it, so a trigger judges the socket its file shows.
    fn socket(&self) -> Option<SocketView<'_>> {
        let s = self
            .socket
            .get_or_init(|| crate::sock::of_record(self.h, self.record).1);
        s.as_ref().socket().map(Socket::view)
    }

    fn duration_ns(&self) -> u64 {
        self.h.duration_ns
    }

    fn time_ns(&self) -> u64 {
        self.h.ts_enter_ns.saturating_sub(self.capture_start_ns)
    }
}

impl Trigger {
    /// The first call of `batch` that matches.
    pub(crate) fn first_match(&self, batch: &[u8], capture_start_ns: u64) -> Option<Firing> {
        records(batch).find_map(|item| {
            let h = RawEventHeader::read_from(item)?;
            let call = Drained {
                h: &h,
                record: item,
                capture_start_ns,
                socket: OnceCell::new(),
            };
            self.expr.matches(&call).then_some(Firing {
                at_ns: h.ts_enter_ns,
                what: Fired::Call {
                    tid: h.tid,
                    ts_ns: h.ts_enter_ns,
                },
            })
        })
    }
}

/// The flight recorder's side of the writer thread: the ring, and the trigger whose file is
/// being written, if any.
pub(crate) struct Flight {
    opts: RingOptions,
    ring: Ring,
    capture_start_ns: u64,
    /// How long after a trigger's `--after` ends its file stays open for calls that entered
    /// before that end but are drained later.
    grace_ns: u64,
    active: Option<Active>,
    /// Trigger files finished.
    finished: u32,
}

/// A trigger whose file is open: it takes the calls that entered from `from_ns` to `until_ns`.
struct Active {
    from_ns: u64,
    until_ns: u64,
}

impl Flight {
    pub(crate) fn try_new(
        opts: &RingOptions,
        capture_start_ns: u64,
        drain_interval: Duration,
    ) -> Result<Flight> {
        Ok(Flight {
            ring: Ring::try_new(opts)?,
            opts: opts.clone(),
            capture_start_ns,
            grace_ns: 2 * nanos(drain_interval) + 250_000_000,
            active: None,
            finished: 0,
        })
    }

    /// A drained batch: into the open trigger file (the calls of its range), or checked for
    /// the trigger expression; then into the ring, for the triggers to come.
    pub(crate) fn on_batch(&mut self, batch: &[u8], files: &mut Sink) -> Result<()> {
        if self.active.is_none()
            && let Some(t) = &self.opts.trigger
            && let Some(firing) = t.first_match(batch, self.capture_start_ns)
        {
            self.fire(firing, files)?;
        }
        if let Some(a) = &self.active {
            files.write_batch(batch, a.from_ns, a.until_ns)?;
        }
        self.ring.push(batch, sys::boot_ns())
    }

    /// What the ring held at most, for the session's last notice.
    pub(crate) fn peak(&self) -> Notice {
        Notice::RingPeak {
            peak_bytes: self.ring.peak_bytes,
            size: self.opts.size,
        }
    }

    pub(crate) fn on_loss(&mut self, loss: LossRecord, files: &mut Sink) {
        if self.active.is_some() {
            files.add_loss(loss);
        }
        self.ring.push_loss(loss);
    }

    /// The time-driven work: SIGUSR1, the end of a trigger's file. True once the capture is
    /// done (`--max-triggers` files written).
    pub(crate) fn poll(&mut self, files: &mut Sink) -> Result<bool> {
        files.poll()?;
        // A signal while a trigger's file is open is answered by that file.
        if let Some(at_ns) = take_signal()
            && self.active.is_none()
        {
            self.fire(
                Firing {
                    at_ns,
                    what: Fired::Signal,
                },
                files,
            )?;
        }
        let Some(a) = &self.active else {
            return Ok(false);
        };
        if sys::boot_ns() <= a.until_ns.saturating_add(self.grace_ns) {
            return Ok(false);
        }
        files.finish_file()?;
        self.active = None;
        self.finished += 1;
        Ok(self.opts.max_triggers.is_some_and(|n| self.finished >= n))
    }

    /// Opens the trigger's file and writes the window before it from the ring.
    fn fire(&mut self, firing: Firing, files: &mut Sink) -> Result<()> {
        let from_ns = firing
            .at_ns
            .saturating_sub(nanos(self.opts.window))
            .max(self.capture_start_ns);
        let until_ns = firing.at_ns.saturating_add(nanos(self.opts.after));
        let mut extra = vec![
            ("trigger_number".to_string(), self.finished.to_string()),
            ("trigger_ns".into(), firing.at_ns.to_string()),
            (
                "ring_complete_from_ns".into(),
                from_ns.max(self.ring.complete_from_ns()).to_string(),
            ),
        ];
        let what = match (&firing.what, &self.opts.trigger) {
            (Fired::Call { tid, ts_ns }, Some(t)) => {
                extra.extend([
                    ("trigger".into(), format!("expression {}", t.source)),
                    ("trigger_event_tid".into(), tid.to_string()),
                    ("trigger_event_ts_ns".into(), ts_ns.to_string()),
                ]);
                format!("{} (thread {tid})", t.source)
            }
            _ => {
                extra.push(("trigger".into(), "signal SIGUSR1".into()));
                "SIGUSR1".to_string()
            }
        };
        files.start_file(self.finished, from_ns, extra, &what)?;
        for loss in self.ring.losses_since(from_ns) {
            files.add_loss(*loss);
        }
        self.ring
            .replay(from_ns, |b| files.write_batch(b, from_ns, until_ns))?;
        self.active = Some(Active { from_ns, until_ns });
        Ok(())
    }
}

/// One compressed batch of the ring.
struct Stored {
    /// Latest entry time of its records.
    end_ns: u64,
    raw_len: usize,
    data: Vec<u8>,
}

/// The ring: compressed batches and loss records, oldest first.
pub(crate) struct Ring {
    window_ns: u64,
    size: u64,
    blocks: VecDeque<Stored>,
    losses: VecDeque<LossRecord>,
    bytes: u64,
    /// The most `bytes` has been after an eviction.
    peak_bytes: u64,
    /// Every event from this time on is still held (later than any batch evicted for room).
    complete_from_ns: u64,
    compressor: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Ring {
    pub(crate) fn try_new(opts: &RingOptions) -> Result<Ring> {
        Ok(Ring {
            window_ns: nanos(opts.window),
            size: opts.size,
            blocks: VecDeque::new(),
            losses: VecDeque::new(),
            bytes: 0,
            peak_bytes: 0,
            complete_from_ns: 0,
            compressor: zstd::bulk::Compressor::new(1).context("starting zstd")?,
            scratch: Vec::new(),
        })
    }

    /// Compressed bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Keeps `batch`, then lets go of what is older than the window (as of `now_ns`) and of
    /// the oldest batches while the ring holds more than its size.
    pub(crate) fn push(&mut self, batch: &[u8], now_ns: u64) -> Result<()> {
        let end_ns = records(batch)
            .filter_map(RawEventHeader::read_from)
            .map(|h| h.ts_enter_ns)
            .max();
        if let Some(end_ns) = end_ns {
            self.scratch.clear();
            self.scratch
                .reserve(zstd::zstd_safe::compress_bound(batch.len()));
            self.compressor
                .compress_to_buffer(batch, &mut self.scratch)
                .context("compressing a batch for the ring")?;
            // An exact-size copy: the ring's bound counts what it really holds.
            let data = self.scratch.to_vec();
            self.bytes += data.len() as u64;
            self.blocks.push_back(Stored {
                end_ns,
                raw_len: batch.len(),
                data,
            });
        }
        let cutoff = now_ns.saturating_sub(self.window_ns + RETAIN_SLACK_NS);
        while self.blocks.front().is_some_and(|b| b.end_ns < cutoff) {
            self.evict();
        }
        while self.bytes > self.size {
            let end = self.evict();
            self.complete_from_ns = self.complete_from_ns.max(end + 1);
        }
        self.losses.retain(|l| l.end_ns >= cutoff);
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        Ok(())
    }

    fn evict(&mut self) -> u64 {
        let b = self.blocks.pop_front().expect("a block to evict");
        self.bytes -= b.data.len() as u64;
        b.end_ns
    }

    pub(crate) fn push_loss(&mut self, loss: LossRecord) {
        self.losses.push_back(loss);
    }

    /// From when on every event is still held.
    pub(crate) fn complete_from_ns(&self) -> u64 {
        self.complete_from_ns
    }

    /// The loss records of intervals that end at or after `from_ns`.
    pub(crate) fn losses_since(&self, from_ns: u64) -> impl Iterator<Item = &LossRecord> {
        self.losses.iter().filter(move |l| l.end_ns >= from_ns)
    }

    /// Calls `each` with every held batch that may hold an event at or after `from_ns`,
    /// decompressed, oldest first.
    pub(crate) fn replay(
        &self,
        from_ns: u64,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut d = zstd::bulk::Decompressor::new().context("starting zstd")?;
        let mut raw = Vec::new();
        for b in self.blocks.iter().filter(|b| b.end_ns >= from_ns) {
            raw.clear();
            raw.reserve(b.raw_len);
            d.decompress_to_buffer(&b.data, &mut raw)
                .context("decompressing a ring batch")?;
            each(&raw)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::push_record;
    use format::raw::RAW_HEADER_SIZE;

    fn record(ts: u64) -> Vec<u8> {
        // ts_enter_ns is the header's first field, little-endian.
        let mut r = vec![0; RAW_HEADER_SIZE];
        r[..8].copy_from_slice(&ts.to_le_bytes());
        r
    }

    /// A record of a call that returned `ret` on a TCP socket connected to `remote_port`, or
    /// on an fd that was not a socket.
    fn call_record(ts: u64, remote_port: Option<u16>, ret: i32) -> Vec<u8> {
        use format::raw::{RawSocket, SOCK_NONE, SOCK_PRESENT};
        let socket = match remote_port {
            Some(p) => RawSocket {
                family: 2,
                sock_type: 1,
                protocol: 6,
                remote_port_be: p.to_be(),
                status: SOCK_PRESENT,
                state: 1,
                ..Default::default()
            },
            None => RawSocket {
                status: SOCK_NONE,
                ..Default::default()
            },
        };
        let h = RawEventHeader {
            ts_enter_ns: ts,
            ret,
            socket,
            ..Default::default()
        };
        // SAFETY: RawEventHeader is repr(C) plain data without implicit padding.
        let bytes: [u8; RAW_HEADER_SIZE] = unsafe { std::mem::transmute(h) };
        bytes.to_vec()
    }

    #[test]
    fn a_trigger_judges_the_drained_records_socket() {
        let t = Trigger::parse("remote_port == 5432 && errno == ECONNREFUSED").unwrap();
        let mut b = Vec::new();
        for r in [
            call_record(1, Some(5432), 0),
            call_record(2, Some(443), -libc::ECONNREFUSED),
            call_record(3, Some(5432), -libc::ECONNREFUSED),
            call_record(4, Some(5432), -libc::ECONNREFUSED),
        ] {
            push_record(&mut b, &r);
        }
        let f = t.first_match(&b, 0).expect("the third call matches");
        assert_eq!(f.at_ns, 3);
        // A call without a socket passes no socket test, whatever its operator.
        let (mut b, ne) = (Vec::new(), Trigger::parse("remote_port != 5432").unwrap());
        push_record(&mut b, &call_record(5, None, -libc::ECONNREFUSED));
        assert!(ne.first_match(&b, 0).is_none());
    }

    fn ring(window_s: u64, size: u64) -> Ring {
        Ring::try_new(&RingOptions {
            window: Duration::from_secs(window_s),
            size,
            after: Duration::ZERO,
            trigger: None,
            max_triggers: None,
        })
        .unwrap()
    }

    fn batch(ts: &[u64]) -> Vec<u8> {
        let mut b = Vec::new();
        for &t in ts {
            push_record(&mut b, &record(t));
        }
        b
    }

    #[test]
    fn batches_older_than_the_window_and_its_slack_go() {
        let s = 1_000_000_000;
        let mut r = ring(10, 1 << 30);
        r.push(&batch(&[s, 2 * s]), 3 * s).unwrap();
        r.push(&batch(&[12 * s]), 13 * s).unwrap();
        assert_eq!(r.blocks.len(), 2);
        // 2 s + 10 s + the slack is still held at 14 s; not at 15 s.
        r.push(&batch(&[]), 14 * s).unwrap();
        assert_eq!(r.blocks.len(), 2);
        r.push(&batch(&[]), 14 * s + 1).unwrap();
        assert_eq!(r.blocks.len(), 1);
        let mut seen = Vec::new();
        r.replay(0, |b| {
            seen.push(b.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [batch(&[12 * s])]);
        assert_eq!(r.complete_from_ns(), 0);
    }

    #[test]
    fn the_size_bound_evicts_the_oldest_and_says_from_when_the_ring_is_complete() {
        let mut r = ring(3600, 1);
        r.push(&batch(&[5, 7]), 10).unwrap();
        assert_eq!((r.blocks.len(), r.bytes()), (0, 0));
        assert_eq!(r.complete_from_ns(), 8);
    }
}
