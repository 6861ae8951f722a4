//! The VM kernel matrix: what the guest driver prints on the serial console, how the host reads
//! it back, and the checks that decide whether each attach mode worked on each kernel.
//!
//! The guest driver (`vmtest-guest`) prints everything as self-contained lines starting with
//! [`TAG`], so kernel messages interleaved on the same console are simply skipped, and a line
//! lost or garbled shows up as a missing call or a missing file chunk, never as a silent pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use format::{OwnedSocketRef, Socket};

/// The workload thread's name: the recorder's `--comm` filter in the guest, and so the comm
/// every event must carry.
pub const WORKLOAD_COMM: &str = "gsot-vm-wl";

/// The explicit modes, in the order the guest tries them, then `auto`, each with the ring
/// buffer and then with perf buffers: what runs on the host.
pub const MODES: [&str; 8] = [
    "kprobe",
    "fentry",
    "tracepoint",
    "auto",
    "kprobe-perf",
    "fentry-perf",
    "tracepoint-perf",
    "auto-perf",
];

/// The scenario name suffix of a run with `--buffer perf`.
const PERF_SUFFIX: &str = "-perf";

/// One recorder run of the matrix: an attach mode, with parts of the kernel's interface hidden
/// (a tmpfs mounted over them) to stand for kernels that lack them.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// The row's name in the table and the protocol.
    pub name: &'static str,
    /// `--attach` value.
    pub attach: &'static str,
    /// `--buffer` value: `auto` (the ring buffer on every kernel of the matrix) or `perf`.
    pub buffer: &'static str,
    /// Directories hidden during the run.
    pub hide: &'static [&'static str],
}

const SYS_KERNEL: &str = "/sys/kernel";
const BTF_DIR: &str = "/sys/kernel/btf";
const KPROBE_PMU_DIR: &str = "/sys/bus/event_source/devices/kprobe";

/// What runs in each guest: the four modes, then `auto` on a kernel without BTF (no fentry,
/// and the recorder falls back to no task offsets) and without BTF or kprobes, which is the
/// only way to see auto choose kprobe or tracepoint on kernels that support everything; last
/// `auto` with all of /sys/kernel (BTF, tracefs, debugfs) and the kprobe PMU hidden, where
/// nothing can record and the recorder must say so (see [`NOTHING`]); then the four modes again
/// with `--buffer perf`, matched field by field as the ring buffer's runs are.
/// Hiding is only done inside guests: on the host it would disturb everything else running.
pub const SCENARIOS: [Scenario; 11] = [
    Scenario {
        name: "kprobe",
        attach: "kprobe",
        buffer: "auto",
        hide: &[],
    },
    Scenario {
        name: "fentry",
        attach: "fentry",
        buffer: "auto",
        hide: &[],
    },
    Scenario {
        name: "tracepoint",
        attach: "tracepoint",
        buffer: "auto",
        hide: &[],
    },
    Scenario {
        name: "auto",
        attach: "auto",
        buffer: "auto",
        hide: &[],
    },
    Scenario {
        name: "auto-nobtf",
        attach: "auto",
        buffer: "auto",
        hide: &[BTF_DIR],
    },
    Scenario {
        name: "auto-nobtf-nokprobe",
        attach: "auto",
        buffer: "auto",
        hide: &[BTF_DIR, KPROBE_PMU_DIR],
    },
    Scenario {
        name: NOTHING,
        attach: "auto",
        buffer: "auto",
        hide: &[SYS_KERNEL, KPROBE_PMU_DIR],
    },
    Scenario {
        name: "kprobe-perf",
        attach: "kprobe",
        buffer: "perf",
        hide: &[],
    },
    Scenario {
        name: "fentry-perf",
        attach: "fentry",
        buffer: "perf",
        hide: &[],
    },
    Scenario {
        name: "tracepoint-perf",
        attach: "tracepoint",
        buffer: "perf",
        hide: &[],
    },
    Scenario {
        name: "auto-perf",
        attach: "auto",
        buffer: "perf",
        hide: &[],
    },
];

/// The scenario where no mode can work: the recorder must fail with the exit status and
/// the one error of a kernel that cannot record (`recorder::support`).
pub const NOTHING: &str = "auto-nothing";

impl Scenario {
    /// The buffer kind the trace header must name (`buffer` pair): every kernel of the matrix
    /// has the ring buffer, so `auto` takes it.
    pub fn expected_buffer(&self) -> &'static str {
        if self.buffer == "perf" {
            "perf"
        } else {
            "ring"
        }
    }

    /// The scenario of explicit mode `mode` with this scenario's buffer kind.
    pub fn explicit(&self, mode: &str) -> String {
        if self.buffer == "perf" {
            format!("{mode}{PERF_SUFFIX}")
        } else {
            mode.to_string()
        }
    }

    pub fn hides_btf(&self) -> bool {
        self.hide.contains(&BTF_DIR) || self.hides_tracefs()
    }

    fn hides_tracefs(&self) -> bool {
        self.hide.contains(&SYS_KERNEL)
    }

    /// Modes this scenario makes impossible: fentry needs BTF, kprobe its PMU, tracepoint
    /// tracefs.
    pub fn excluded(&self) -> Vec<&'static str> {
        let mut x = Vec::new();
        if self.hides_btf() {
            x.push("fentry");
        }
        if self.hide.contains(&KPROBE_PMU_DIR) {
            x.push("kprobe");
        }
        if self.hides_tracefs() {
            x.push("tracepoint");
        }
        x
    }
}

pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Snaplen the guest records with: large enough for every value the workload asks for
/// (TCP_INFO with a 512-byte buffer), so no value is truncated and `flags` must be 0.
pub const SNAPLEN: u32 = 512;

/// Every protocol line starts with this word.
pub const TAG: &str = "GSOT";

/// The order `--attach auto` tries modes in, as the recorder itself defines it.
pub fn auto_order() -> Vec<&'static str> {
    recorder::bpf::AttachMode::AUTO_ORDER
        .iter()
        .map(|m| m.name())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Encoding of one line.

/// `GSOT kind k=v k=v ...`; values are escaped so they never hold a space or a newline.
pub fn line(kind: &str, fields: &[(&str, String)]) -> String {
    let mut s = format!("{TAG} {kind}");
    for (k, v) in fields {
        let _ = write!(s, " {k}={}", escape(v));
    }
    s
}

/// Percent-escapes `%`, space, tab, CR, LF and `=` (and leaves the rest as is).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | ' ' | '\t' | '\r' | '\n' | '=' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        // An empty value would be indistinguishable from a garbled one.
        out.push_str("%00");
    }
    out
}

pub fn unescape(s: &str) -> Option<String> {
    if s == "%00" {
        return Some(String::new());
    }
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One protocol line read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl Record {
    fn get(&self, k: &str) -> Result<&str, String> {
        self.fields
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("{} line without {k}", self.kind))
    }

    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<T, String> {
        let v = self.get(k)?;
        v.parse()
            .map_err(|_| format!("{} line: {k}={v:?} is not a number", self.kind))
    }
}

/// Parses one console line; `None` for anything that is not an intact protocol line.
pub fn parse_line(raw: &str) -> Option<Record> {
    let raw = raw.trim_end_matches(['\r', '\n']);
    // A kernel message may precede our text on the same line; the tag starts our part.
    let start = raw.find(&format!("{TAG} "))?;
    let mut words = raw[start + TAG.len() + 1..].split(' ');
    let kind = words.next()?.to_string();
    if kind.is_empty() {
        return None;
    }
    let mut fields = BTreeMap::new();
    for w in words {
        let (k, v) = w.split_once('=')?;
        fields.insert(k.to_string(), unescape(v)?);
    }
    Some(Record { kind, fields })
}

// ---------------------------------------------------------------------------------------------
// What one guest run said.

/// One getsockopt call as the workload in the guest saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestCall {
    pub label: String,
    pub tid: u32,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    pub optval_ptr: u64,
    pub optlen_ptr: u64,
    pub optlen_in: i32,
    pub optlen_out: i32,
    pub ret: i32,
    pub value: Vec<u8>,
    /// The socket the workload knows the call was made on (the socket workload's calls);
    /// `None`: not known to the workload (the demo workload's), so not compared.
    pub socket: Option<OwnedSocketRef>,
}

impl GuestCall {
    pub fn to_line(&self, mode: &str, index: usize) -> String {
        line(
            "call",
            &[
                ("mode", mode.to_string()),
                ("i", index.to_string()),
                ("tid", self.tid.to_string()),
                ("fd", self.fd.to_string()),
                ("level", self.level.to_string()),
                ("optname", self.optname.to_string()),
                ("optval_ptr", self.optval_ptr.to_string()),
                ("optlen_ptr", self.optlen_ptr.to_string()),
                ("optlen_in", self.optlen_in.to_string()),
                ("optlen_out", self.optlen_out.to_string()),
                ("ret", self.ret.to_string()),
                ("value", hex(&self.value)),
                ("label", self.label.clone()),
            ]
            .into_iter()
            .chain(self.socket.as_ref().map(|s| ("socket", socket_text(s))))
            .collect::<Vec<_>>(),
        )
    }

    fn from_record(r: &Record) -> Result<GuestCall, String> {
        Ok(GuestCall {
            label: r.get("label")?.to_string(),
            tid: r.num("tid")?,
            fd: r.num("fd")?,
            level: r.num("level")?,
            optname: r.num("optname")?,
            optval_ptr: r.num("optval_ptr")?,
            optlen_ptr: r.num("optlen_ptr")?,
            optlen_in: r.num("optlen_in")?,
            optlen_out: r.num("optlen_out")?,
            ret: r.num("ret")?,
            value: unhex(r.get("value")?).ok_or("call line: value is not hex")?,
            socket: r
                .fields
                .get("socket")
                .map(|s| parse_socket(s).ok_or(format!("call line: socket {s:?}")))
                .transpose()?,
        })
    }
}

/// A socket identity in a call line: `none` (not a socket), `unrecorded`, or its fields
/// comma-separated in `format::Socket`'s order, addresses and Unix names in hex.
fn socket_text(s: &OwnedSocketRef) -> String {
    let k = match s {
        OwnedSocketRef::NotRecorded => return "unrecorded".into(),
        OwnedSocketRef::NoSocket => return "none".into(),
        OwnedSocketRef::Socket(k) => k,
    };
    [
        k.family.to_string(),
        k.sock_type.to_string(),
        k.protocol.to_string(),
        k.tcp_state.to_string(),
        hex(&k.local_addr),
        k.local_port.to_string(),
        hex(&k.remote_addr),
        k.remote_port.to_string(),
        k.scope_id.to_string(),
        k.ino.to_string(),
        k.netns.to_string(),
        k.netlink_portid.to_string(),
        hex(&k.unix_path),
        hex(&k.unix_peer),
    ]
    .join(",")
}

fn parse_socket(s: &str) -> Option<OwnedSocketRef> {
    match s {
        "unrecorded" => return Some(OwnedSocketRef::NotRecorded),
        "none" => return Some(OwnedSocketRef::NoSocket),
        _ => {}
    }
    let f: Vec<&str> = s.split(',').collect();
    let [
        fam,
        ty,
        proto,
        state,
        la,
        lp,
        ra,
        rp,
        scope,
        ino,
        netns,
        nl,
        up,
        upeer,
    ] = f[..]
    else {
        return None;
    };
    let addr = |h: &str| unhex(h)?.try_into().ok();
    Some(OwnedSocketRef::Socket(Socket {
        family: fam.parse().ok()?,
        sock_type: ty.parse().ok()?,
        protocol: proto.parse().ok()?,
        tcp_state: state.parse().ok()?,
        local_addr: addr(la)?,
        local_port: lp.parse().ok()?,
        remote_addr: addr(ra)?,
        remote_port: rp.parse().ok()?,
        scope_id: scope.parse().ok()?,
        ino: ino.parse().ok()?,
        netns: netns.parse().ok()?,
        netlink_portid: nl.parse().ok()?,
        unix_path: unhex(up)?,
        unix_peer: unhex(upeer)?,
    }))
}

/// Facts about the workload process every event must repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub cgroup_id: u64,
    pub comm: String,
    /// CLOCK_BOOTTIME just before the workload started and just after it ended.
    pub boot_before: u64,
    pub boot_after: u64,
}

impl Context {
    pub fn to_line(&self, mode: &str) -> String {
        line(
            "ctx",
            &[
                ("mode", mode.to_string()),
                ("pid", self.pid.to_string()),
                ("ppid", self.ppid.to_string()),
                ("uid", self.uid.to_string()),
                ("gid", self.gid.to_string()),
                ("pid_ns", self.pid_ns.to_string()),
                ("mnt_ns", self.mnt_ns.to_string()),
                ("cgroup_id", self.cgroup_id.to_string()),
                ("comm", self.comm.clone()),
                ("boot_before", self.boot_before.to_string()),
                ("boot_after", self.boot_after.to_string()),
            ],
        )
    }

    fn from_record(r: &Record) -> Result<Context, String> {
        Ok(Context {
            pid: r.num("pid")?,
            ppid: r.num("ppid")?,
            uid: r.num("uid")?,
            gid: r.num("gid")?,
            pid_ns: r.num("pid_ns")?,
            mnt_ns: r.num("mnt_ns")?,
            cgroup_id: r.num("cgroup_id")?,
            comm: r.get("comm")?.to_string(),
            boot_before: r.num("boot_before")?,
            boot_after: r.num("boot_after")?,
        })
    }
}

/// The overhead measurement of one mode (`recorder bench`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bench {
    pub ok: bool,
    pub calls: u64,
    pub untraced_ns: f64,
    pub traced_ns: f64,
    /// The same loop with empty programs on the same hooks (0 if the bench did not say).
    pub floor_ns: f64,
    /// The untraced loop timed before and after the traced one (their mean is `untraced_ns`).
    pub untraced_before_ns: f64,
    pub untraced_after_ns: f64,
    /// Why it failed, when it did.
    pub error: String,
}

impl Bench {
    pub fn ratio(&self) -> Option<f64> {
        (self.ok && self.untraced_ns > 0.0).then(|| self.traced_ns / self.untraced_ns)
    }

    pub fn floor_ratio(&self) -> Option<f64> {
        (self.ok && self.untraced_ns > 0.0 && self.floor_ns > 0.0)
            .then(|| self.floor_ns / self.untraced_ns)
    }

    /// How far apart the two untraced timings are, relative to their mean: the noise of the
    /// machine during the measurement, which an emulated guest on a shared host has plenty of.
    pub fn noise(&self) -> Option<f64> {
        (self.ok && self.untraced_ns > 0.0 && self.untraced_before_ns > 0.0)
            .then(|| (self.untraced_before_ns - self.untraced_after_ns).abs() / self.untraced_ns)
    }
}

/// Everything the guest said about one mode.
#[derive(Clone, Debug)]
pub struct ModeRun {
    pub mode: String,
    /// The recorder said it was recording (it attached).
    pub loaded: bool,
    /// The recorder's exit status as the guest saw it.
    pub status: String,
    /// The recorder's stderr, line by line.
    pub log: Vec<String>,
    pub ctx: Option<Context>,
    pub calls: Vec<GuestCall>,
    /// The trace file, reassembled from its chunks, or why it could not be.
    pub file: Result<Vec<u8>, String>,
    pub bench: Option<Bench>,
    /// Protocol problems seen while reading this mode's lines.
    pub problems: Vec<String>,
}

impl Default for ModeRun {
    fn default() -> Self {
        ModeRun {
            mode: String::new(),
            loaded: false,
            status: String::new(),
            log: Vec::new(),
            ctx: None,
            calls: Vec::new(),
            file: Err("no trace file came out".into()),
            bench: None,
            problems: Vec::new(),
        }
    }
}

/// Everything one guest (or the host) run printed.
#[derive(Clone, Debug, Default)]
pub struct GuestRun {
    pub kernel_release: String,
    pub cpus: u32,
    /// The driver reached its end (`GSOT done`).
    pub done: bool,
    pub modes: Vec<ModeRun>,
    pub problems: Vec<String>,
}

impl GuestRun {
    pub fn mode(&self, mode: &str) -> Option<&ModeRun> {
        self.modes.iter().find(|m| m.mode == mode)
    }
}

/// Reads a whole console transcript.
pub fn parse_console(text: &str) -> GuestRun {
    let mut run = GuestRun::default();
    // Chunks of each mode's file: index -> bytes.
    let mut chunks: BTreeMap<String, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    let mut file_ends: BTreeMap<String, (u64, u32)> = BTreeMap::new();
    for raw in text.lines() {
        let Some(r) = parse_line(raw) else {
            if raw.contains(&format!("{TAG} ")) {
                run.problems
                    .push(format!("garbled protocol line: {:?}", raw.trim_end()));
            }
            continue;
        };
        if let Err(e) = apply(&mut run, &mut chunks, &mut file_ends, &r) {
            run.problems.push(format!("{e}: {:?}", raw.trim_end()));
        }
    }
    for m in &mut run.modes {
        m.file = assemble(chunks.remove(&m.mode), file_ends.get(&m.mode).copied());
    }
    run
}

fn mode_mut<'a>(run: &'a mut GuestRun, r: &Record) -> Result<&'a mut ModeRun, String> {
    let mode = r.get("mode")?;
    run.modes
        .iter_mut()
        .find(|m| m.mode == mode)
        .ok_or_else(|| format!("{} line for mode {mode} before its begin line", r.kind))
}

fn apply(
    run: &mut GuestRun,
    chunks: &mut BTreeMap<String, BTreeMap<u32, Vec<u8>>>,
    file_ends: &mut BTreeMap<String, (u64, u32)>,
    r: &Record,
) -> Result<(), String> {
    match r.kind.as_str() {
        "start" => {
            run.kernel_release = r.get("kernel")?.to_string();
            run.cpus = r.num("cpus")?;
        }
        "begin" => run.modes.push(ModeRun {
            mode: r.get("mode")?.to_string(),
            file: Err("no trace file came out".into()),
            ..ModeRun::default()
        }),
        "log" => {
            let text = r.get("text")?.to_string();
            mode_mut(run, r)?.log.push(text);
        }
        "attached" => mode_mut(run, r)?.loaded = true,
        "exit" => {
            let status = r.get("status")?.to_string();
            mode_mut(run, r)?.status = status;
        }
        "ctx" => {
            let ctx = Context::from_record(r)?;
            mode_mut(run, r)?.ctx = Some(ctx);
        }
        "call" => {
            let i: usize = r.num("i")?;
            let call = GuestCall::from_record(r)?;
            let m = mode_mut(run, r)?;
            if i != m.calls.len() {
                m.problems
                    .push(format!("call line {i} arrived as number {}", m.calls.len()));
            }
            m.calls.push(call);
        }
        "chunk" => {
            let mode = r.get("mode")?.to_string();
            let i: u32 = r.num("i")?;
            let data = unhex(r.get("hex")?).ok_or("chunk is not hex")?;
            if chunks.entry(mode).or_default().insert(i, data).is_some() {
                return Err(format!("chunk {i} twice"));
            }
        }
        "file" => {
            let mode = r.get("mode")?.to_string();
            file_ends.insert(mode, (r.num("len")?, r.num("chunks")?));
        }
        "bench" => {
            let ok = r.get("ok")? == "1";
            let bench = Bench {
                ok,
                calls: r.num("calls")?,
                untraced_ns: if ok { r.num("untraced_ns")? } else { 0.0 },
                traced_ns: if ok { r.num("traced_ns")? } else { 0.0 },
                floor_ns: r.num("floor_ns").unwrap_or(0.0),
                untraced_before_ns: r.num("untraced_before_ns").unwrap_or(0.0),
                untraced_after_ns: r.num("untraced_after_ns").unwrap_or(0.0),
                error: r.fields.get("error").cloned().unwrap_or_default(),
            };
            mode_mut(run, r)?.bench = Some(bench);
        }
        "done" => run.done = true,
        other => return Err(format!("unknown protocol line kind {other:?}")),
    }
    Ok(())
}

fn assemble(
    chunks: Option<BTreeMap<u32, Vec<u8>>>,
    end: Option<(u64, u32)>,
) -> Result<Vec<u8>, String> {
    let Some((len, n)) = end else {
        return Err("no trace file came out (no file line)".into());
    };
    let chunks = chunks.unwrap_or_default();
    if let Some(missing) = (0..n).find(|i| !chunks.contains_key(i)) {
        return Err(format!(
            "trace file chunk {missing} of {n} missing on the console"
        ));
    }
    if chunks.len() as u32 != n {
        return Err(format!("{} chunks for a file of {n}", chunks.len()));
    }
    let bytes: Vec<u8> = chunks.into_values().flatten().collect();
    if bytes.len() as u64 != len {
        return Err(format!(
            "trace file reassembled to {} bytes, the guest wrote {len}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// What goes into a guest.

/// The program interpreter (dynamic loader) an x86_64 ELF executable asks for, `None` for a
/// static one (static-pie included: it has dynamic relocations but no interpreter).
pub fn elf_interpreter(elf: &[u8]) -> Result<Option<String>, String> {
    const PT_INTERP: u32 = 3;
    let at = |off: usize, n: usize| {
        elf.get(off..off + n)
            .ok_or_else(|| format!("an ELF file cut short at byte {off}"))
    };
    if at(0, 5)? != b"\x7fELF\x02" || at(5, 1)? != [1] {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let u16_at = |off| at(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |off| at(off, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32::from_le_bytes(at(ph, 4)?.try_into().unwrap()) != PT_INTERP {
            continue;
        }
        let (off, len) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        let path = at(off, len)?;
        return Ok(Some(
            String::from_utf8_lossy(path.strip_suffix(b"\0").unwrap_or(path)).into_owned(),
        ));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// What a kernel should support, from its config.

/// Whether each explicit mode must load on kernel `release` built with `config` (a
/// `config-*` file), with what decides it. (fentry on kernels before 5.16, whose verifiers
/// refuse a context load of the `int *optlen` argument, reads it with a helper instead: see
/// `recorder_ebpf::FENTRY_INT_POINTER_ARGS_KERNEL`.)
pub fn expected_support(config: &str, _release: &str) -> BTreeMap<&'static str, (bool, String)> {
    let on = |opt: &str| {
        config
            .lines()
            .any(|l| l == format!("CONFIG_{opt}=y") || l == format!("CONFIG_{opt}=m"))
    };
    let need = |opts: &[&str]| {
        let missing: Vec<&str> = opts.iter().copied().filter(|o| !on(o)).collect();
        if missing.is_empty() {
            (true, format!("config has {}", opts.join(", ")))
        } else {
            (false, format!("config lacks {}", missing.join(", ")))
        }
    };
    let fentry = need(&[
        "BPF_SYSCALL",
        "BPF_JIT",
        "DEBUG_INFO_BTF",
        "DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
    ]);
    BTreeMap::from([
        (
            "kprobe",
            need(&["BPF_SYSCALL", "BPF_EVENTS", "KPROBES", "KPROBE_EVENTS"]),
        ),
        ("fentry", fentry),
        (
            "tracepoint",
            need(&["BPF_SYSCALL", "BPF_EVENTS", "FTRACE_SYSCALLS"]),
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// The verdict on one mode of one kernel: a row of the table.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub kernel: String,
    pub mode: String,
    pub loaded: bool,
    /// For `auto`: the mode it picked (from the trace header).
    pub picked: Option<String>,
    pub matched: usize,
    pub expected: usize,
    pub ratio: Option<f64>,
    /// The bench's untraced before/after spread (see [`Bench::noise`]).
    pub noise: Option<f64>,
    /// Empty programs on the same hooks, over untraced (see [`Bench::floor_ns`]).
    pub floor: Option<f64>,
    /// Why the mode did not load (the recorder's own words), or which modes auto passed over.
    pub note: String,
    /// Empty when the row passed.
    pub problems: Vec<String>,
}

/// The recorder's error line when it failed to start.
fn failure_reason(log: &[String]) -> Option<String> {
    let i = log.iter().position(|l| l.contains("recorder: error:"))?;
    // anyhow's `{:#}` puts the chain on one line, but "no attach mode works" lists one mode
    // per following line.
    Some(
        log[i..]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Checks every call the workload made against the events, field by field, as the host
/// recorder test does. Returns how many calls had an exactly matching event, and what differed.
pub fn check_events(
    calls: &[GuestCall],
    ctx: &Context,
    events: &[format::OwnedEvent],
) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut matched = 0;
    if events.len() != calls.len() {
        problems.push(format!(
            "{} events for {} workload calls (the filter admits only the workload thread)",
            events.len(),
            calls.len()
        ));
    }
    let mut used = vec![false; events.len()];
    for call in calls {
        // The same thread and the very same user-space pointers identify the call's event.
        let found = events.iter().enumerate().find(|(i, e)| {
            !used[*i]
                && e.tid == call.tid
                && e.fd == call.fd
                && e.optname == call.optname
                && e.optval_ptr == call.optval_ptr
                && e.optlen_ptr == call.optlen_ptr
        });
        let Some((i, ev)) = found else {
            problems.push(format!("{}: no event recorded", call.label));
            continue;
        };
        used[i] = true;
        let diffs = event_diffs(call, ctx, ev);
        if diffs.is_empty() {
            matched += 1;
        } else {
            problems.push(format!("{}: {}", call.label, diffs.join("; ")));
        }
    }
    (matched, problems)
}

fn event_diffs(call: &GuestCall, ctx: &Context, ev: &format::OwnedEvent) -> Vec<String> {
    let mut d = Vec::new();
    macro_rules! eq {
        ($name:literal, $got:expr, $want:expr) => {
            if $got != $want {
                d.push(format!("{} {:?} != {:?}", $name, $got, $want));
            }
        };
    }
    eq!("tgid", ev.tgid, ctx.pid);
    eq!("tid", ev.tid, call.tid);
    eq!("comm", ev.as_event().comm_str().as_ref(), ctx.comm.as_str());
    eq!("fd", ev.fd, call.fd);
    eq!("level", ev.level, call.level);
    eq!("optname", ev.optname, call.optname);
    eq!("optval_ptr", ev.optval_ptr, call.optval_ptr);
    eq!("optlen_ptr", ev.optlen_ptr, call.optlen_ptr);
    eq!("optlen_in", ev.optlen_in, call.optlen_in);
    eq!("optlen_out", ev.optlen_out, call.optlen_out);
    eq!("ret", ev.ret, call.ret);
    if ev.value != call.value {
        d.push(format!("value {} != {}", hex(&ev.value), hex(&call.value)));
    }
    eq!("flags", ev.flags, 0);
    eq!("uid", ev.uid, ctx.uid);
    eq!("gid", ev.gid, ctx.gid);
    eq!("ppid", ev.ppid, ctx.ppid);
    eq!("pid_ns", ev.pid_ns, ctx.pid_ns);
    eq!("mnt_ns", ev.mnt_ns, ctx.mnt_ns);
    eq!("cgroup_id", ev.cgroup_id, ctx.cgroup_id);
    if !(ev.ts_ns > ctx.boot_before && ev.ts_ns < ctx.boot_after) {
        d.push(format!(
            "ts_ns {} outside the workload's run {}..{}",
            ev.ts_ns, ctx.boot_before, ctx.boot_after
        ));
    }
    if !(ev.duration_ns > 0 && ev.duration_ns < 1_000_000_000) {
        d.push(format!("duration_ns {} not in (0, 1s)", ev.duration_ns));
    }
    if let Some(want) = &call.socket {
        socket_diffs(&mut d, &ev.socket, want);
    }
    d
}

/// What differs between the recorded socket and the one the workload knows, field by field.
fn socket_diffs(d: &mut Vec<String>, got: &OwnedSocketRef, want: &OwnedSocketRef) {
    let (OwnedSocketRef::Socket(g), OwnedSocketRef::Socket(w)) = (got, want) else {
        if got != want {
            d.push(format!("socket {got:?} != {want:?}"));
        }
        return;
    };
    macro_rules! each {
        ($($f:ident),*) => {$(
            if g.$f != w.$f {
                d.push(format!("socket.{} {:?} != {:?}", stringify!($f), g.$f, w.$f));
            }
        )*};
    }
    each!(
        family,
        sock_type,
        protocol,
        tcp_state,
        local_addr,
        local_port,
        remote_addr,
        remote_port,
        scope_id,
        ino,
        netns,
        netlink_portid,
        unix_path,
        unix_peer
    );
}

/// Checks one mode's run. `expect` says whether the kernel must support the mode (`None`:
/// unknown, e.g. the host, whose sandbox refuses what its config allows).
pub fn check_mode(
    run: &GuestRun,
    m: &ModeRun,
    expect: Option<&(bool, String)>,
    trace: Option<&format::TraceReader>,
) -> Outcome {
    let mut o = Outcome {
        kernel: run.kernel_release.clone(),
        mode: m.mode.clone(),
        loaded: m.loaded,
        expected: m.calls.len(),
        problems: m.problems.clone(),
        ..Outcome::default()
    };
    if m.mode == NOTHING {
        check_cannot_record(run, m, &mut o);
        return o;
    }
    if !m.loaded {
        match failure_reason(&m.log) {
            Some(reason) => o.note = reason,
            None => o.problems.push(format!(
                "did not load and gave no reason (exit {}); its output: {:?}",
                m.status, m.log
            )),
        }
        match expect {
            Some((true, why)) => o
                .problems
                .push(format!("must load on this kernel ({why}) but did not")),
            // Why the kernel cannot, before what the recorder said.
            Some((false, why)) => o.note = format!("{why}: {}", o.note),
            None => {}
        }
        return o;
    }
    if let Some((false, why)) = expect {
        o.problems.push(format!(
            "loaded although this kernel cannot support it ({why})"
        ));
    }
    let Some(sc) = scenario(&m.mode) else {
        o.problems.push(format!("unknown scenario {:?}", m.mode));
        return o;
    };
    let is_auto = sc.attach == "auto";
    if m.status != "0" {
        o.problems.push(format!(
            "the recorder exited with {}: {:?}",
            m.status, m.log
        ));
    }
    let Some(ctx) = &m.ctx else {
        o.problems.push("no workload context line".into());
        return o;
    };
    let mut ctx = ctx.clone();
    if sc.hides_btf() {
        // Without BTF the recorder cannot find task_struct's offsets: it says so and records
        // ppid and the namespace ids as 0. Every other field must still be exact.
        (ctx.ppid, ctx.pid_ns, ctx.mnt_ns) = (0, 0, 0);
        if !m.log.iter().any(|l| l.contains("no kernel BTF offsets")) {
            o.problems
                .push("BTF was hidden but the recorder did not warn about it".into());
        }
    }
    let ctx = &ctx;
    // Without BTF no socket identity either: every socket the workload knows must come out
    // as not recorded, none as zeros that look like a socket.
    let calls: Vec<GuestCall> = m
        .calls
        .iter()
        .map(|c| GuestCall {
            socket: c.socket.as_ref().map(|s| match sc.hides_btf() {
                true => OwnedSocketRef::NotRecorded,
                false => s.clone(),
            }),
            ..c.clone()
        })
        .collect();
    if m.calls.len() < 18 {
        o.problems.push(format!(
            "the workload made only {} calls (expected at least 18)",
            m.calls.len()
        ));
    }
    let Some(trace) = trace else {
        o.problems.push(match &m.file {
            Err(e) => e.clone(),
            Ok(_) => "trace file unreadable".into(),
        });
        return o;
    };
    let h = trace.header();
    if is_auto {
        o.picked = Some(h.attach_mode.clone());
    } else if h.attach_mode != sc.attach {
        o.problems.push(format!(
            "header attach_mode {:?} for --attach {}",
            h.attach_mode, sc.attach
        ));
    }
    if h.kernel_release != run.kernel_release {
        o.problems.push(format!(
            "header kernel_release {:?}, guest runs {:?}",
            h.kernel_release, run.kernel_release
        ));
    }
    if h.snaplen != SNAPLEN {
        o.problems.push(format!("header snaplen {}", h.snaplen));
    }
    let buffer = h
        .extra
        .iter()
        .find(|(k, _)| k == "buffer")
        .map(|(_, v)| v.as_str());
    if buffer != Some(sc.expected_buffer()) {
        o.problems.push(format!(
            "header buffer {buffer:?} for --buffer {} (expected {:?})",
            sc.buffer,
            sc.expected_buffer()
        ));
    }
    if !h
        .filters
        .iter()
        .any(|(k, v)| k == "comm" && v == WORKLOAD_COMM)
    {
        o.problems.push(format!(
            "header filters {:?} lack the comm filter",
            h.filters
        ));
    }
    if trace.recovery().is_some() {
        o.problems
            .push("a cleanly stopped capture needed recovery".into());
    }
    if !trace.losses().is_empty() {
        o.problems
            .push(format!("losses recorded: {:?}", trace.losses()));
    }
    match trace.read_all_events() {
        Ok(events) => {
            let (matched, problems) = check_events(&calls, ctx, &events);
            o.matched = matched;
            o.problems.extend(problems);
        }
        Err(e) => o.problems.push(format!("reading the events: {e}")),
    }
    match &m.bench {
        Some(b) if b.ok => {
            o.ratio = b.ratio();
            o.noise = b.noise();
            o.floor = b.floor_ratio();
        }
        Some(b) => o.problems.push(format!("bench failed: {}", b.error)),
        None if !is_auto => o.problems.push("no bench result".into()),
        None => {}
    }
    o
}

/// With every mode's piece hidden, the recorder must refuse to start with exit status 3 and
/// the error naming the kernel and what it lacks.
fn check_cannot_record(run: &GuestRun, m: &ModeRun, o: &mut Outcome) {
    let status = recorder::support::EXIT_UNSUPPORTED.to_string();
    if m.loaded || m.status != status {
        o.problems.push(format!(
            "with nothing to attach to the recorder {} (exit {}), not exit {status}: {:?}",
            if m.loaded { "recorded" } else { "failed" },
            m.status,
            m.log
        ));
    }
    o.note = failure_reason(&m.log).unwrap_or_default();
    let want = format!(
        "recorder: error: this kernel ({}) cannot record: no attach mode works; it lacks BTF",
        run.kernel_release
    );
    let names_each = ["kprobes (", "tracefs ("]
        .iter()
        .all(|p| o.note.contains(p));
    if !o.note.starts_with(&want) || !names_each {
        o.problems.push(format!(
            "the error does not start {want:?} and name kprobes and tracefs: {:?}",
            o.note
        ));
    }
}

/// `auto`'s pick must be the first mode of the auto order that loaded on its own on the same
/// kernel (and that the scenario did not hide), and every mode before it must be named in the
/// recorder's log with its reason.
pub fn check_auto(run: &GuestRun, auto: &mut Outcome) {
    let order = auto_order();
    let Some(sc) = scenario(&auto.mode) else {
        return;
    };
    let excluded = sc.excluded();
    let first_loaded = order
        .iter()
        .filter(|mode| !excluded.contains(mode))
        .find(|mode| run.mode(&sc.explicit(mode)).is_some_and(|m| m.loaded));
    let Some(&want) = first_loaded else {
        if auto.loaded {
            auto.problems
                .push("auto loaded although no explicit mode did".into());
        }
        return;
    };
    if !auto.loaded {
        auto.problems
            .push(format!("auto failed although {want} loaded on its own"));
        return;
    }
    if auto.picked.as_deref() != Some(want) {
        auto.problems.push(format!(
            "auto picked {:?}; the cheapest mode that loads here is {want}",
            auto.picked
        ));
    }
    let log = run
        .mode(&auto.mode)
        .map(|m| m.log.clone())
        .unwrap_or_default();
    let mut skipped = Vec::new();
    for mode in order.iter().take_while(|&&m| m != want) {
        let prefix = format!("recorder: not using {mode}: ");
        match log.iter().find(|l| l.starts_with(&prefix)) {
            Some(l) => skipped.push(format!("{mode}: {}", &l[prefix.len()..])),
            None => auto
                .problems
                .push(format!("auto passed over {mode} without saying why")),
        }
    }
    if !skipped.is_empty() {
        auto.note = format!("skipped {}", skipped.join("; "));
    }
    // Auto's overhead is its pick's.
    if let Some(b) = run.mode(&sc.explicit(want)).and_then(|m| m.bench.as_ref()) {
        auto.ratio = b.ratio();
        auto.noise = b.noise();
        auto.floor = b.floor_ratio();
    }
}

/// The results as a Markdown table.
pub fn table(rows: &[Outcome]) -> String {
    let mut s = String::from(
        "| kernel | mode | loaded | events matched | overhead (traced/untraced) | notes |\n\
         |---|---|---|---|---|---|\n",
    );
    for o in rows {
        let loaded = match (&o.picked, o.loaded) {
            (Some(p), true) => format!("yes: picked {p}"),
            (None, true) => "yes".into(),
            (_, false) => "**no**".into(),
        };
        let matched = if o.loaded {
            format!("{}/{}", o.matched, o.expected)
        } else {
            "-".into()
        };
        let mut ratio = o.ratio.map_or("-".into(), |r| format!("{r:.2}x"));
        let mut extra = Vec::new();
        if let Some(f) = o.floor {
            extra.push(format!("hook alone {f:.2}x"));
        }
        if let Some(n) = o.noise {
            extra.push(format!("untraced ±{:.0}%", n * 50.0));
        }
        if o.ratio.is_some() && !extra.is_empty() {
            ratio = format!("{ratio} ({})", extra.join(", "));
        }
        let mut note = o.note.replace('|', "\\|");
        if note.len() > 160 {
            let mut cut = 157;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push_str("...");
        }
        if !o.problems.is_empty() {
            note = format!("**FAILED** ({} problems) {note}", o.problems.len());
        }
        let _ = writeln!(
            s,
            "| {} | {} | {loaded} | {matched} | {ratio} | {note} |",
            o.kernel, o.mode
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for s in ["tcp SO_RCVBUF", "a=b%c", "", "x\ty\r\nz", "plain"] {
            let e = escape(s);
            assert!(!e.contains([' ', '=', '\n']), "{e}");
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn lines_survive_a_kernel_message_in_front_but_not_a_cut() {
        let l = line(
            "log",
            &[("mode", "kprobe".into()), ("text", "a b=c".into())],
        );
        let r = parse_line(&format!("[   3.1] random: crng init done{l}\r")).unwrap();
        assert_eq!(r.kind, "log");
        assert_eq!(r.fields["text"], "a b=c");
        // A line cut in the middle of a field is rejected, not half-read.
        assert!(parse_line("GSOT log mode=kprobe text=a%2").is_none());
        assert!(parse_line("no tag here").is_none());
    }

    fn call(label: &str) -> GuestCall {
        GuestCall {
            label: label.into(),
            tid: 7,
            fd: 3,
            level: 1,
            optname: 8,
            optval_ptr: 0x1000,
            optlen_ptr: 0x2000,
            optlen_in: 4,
            optlen_out: 4,
            ret: 0,
            value: vec![1, 2, 3, 4],
            socket: None,
        }
    }

    fn unix_socket() -> Socket {
        Socket {
            family: 1,
            sock_type: 1,
            ino: 4242,
            netns: 4026531840,
            unix_path: b"\0abstract".to_vec(),
            unix_peer: b"/run/x.sock".to_vec(),
            ..Socket::default()
        }
    }

    #[test]
    fn sockets_cross_the_console_and_every_field_is_compared() {
        let tcp = Socket {
            family: 10,
            sock_type: 1,
            protocol: 6,
            tcp_state: 1,
            local_addr: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            local_port: 40312,
            remote_addr: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            remote_port: 5432,
            scope_id: 1,
            ino: 77,
            netns: 4026532000,
            ..Socket::default()
        };
        let x = ctx();
        for want in [
            OwnedSocketRef::Socket(tcp.clone()),
            OwnedSocketRef::Socket(unix_socket()),
            OwnedSocketRef::NoSocket,
            OwnedSocketRef::NotRecorded,
        ] {
            let c = GuestCall {
                socket: Some(want.clone()),
                ..call("sock")
            };
            let r = parse_line(&c.to_line("kprobe", 0)).unwrap();
            assert_eq!(GuestCall::from_record(&r), Ok(c.clone()));
            let mut ev = event_for(&c, &x);
            ev.socket = want;
            assert_eq!(check_events(std::slice::from_ref(&c), &x, &[ev]).0, 1);
        }
        let c = GuestCall {
            socket: Some(OwnedSocketRef::Socket(tcp.clone())),
            ..call("sock")
        };
        type Break = fn(&mut Socket);
        let broken: Vec<(&str, Break)> = vec![
            ("socket.protocol", |s| s.protocol = 17),
            ("socket.remote_port", |s| s.remote_port = 1),
            ("socket.scope_id", |s| s.scope_id = 0),
            ("socket.netns", |s| s.netns = 1),
            ("socket.unix_peer", |s| s.unix_peer = b"x".to_vec()),
        ];
        for (what, f) in broken {
            let mut s = tcp.clone();
            f(&mut s);
            let mut ev = event_for(&c, &x);
            ev.socket = OwnedSocketRef::Socket(s);
            let (matched, problems) = check_events(std::slice::from_ref(&c), &x, &[ev]);
            assert_eq!(matched, 0, "{what}");
            assert!(problems[0].contains(what), "{what}: {problems:?}");
        }
        // Zeros are not "not recorded", nor is a socket "not a socket".
        let mut ev = event_for(&c, &x);
        ev.socket = OwnedSocketRef::NoSocket;
        assert_eq!(check_events(std::slice::from_ref(&c), &x, &[ev]).0, 0);
        // Without a socket known to the workload, none is compared.
        let mut ev = event_for(&call("demo"), &x);
        ev.socket = OwnedSocketRef::Socket(tcp);
        assert_eq!(check_events(&[call("demo")], &x, &[ev]).0, 1);
    }

    fn ctx() -> Context {
        Context {
            pid: 7,
            ppid: 1,
            comm: WORKLOAD_COMM.into(),
            cgroup_id: 1,
            boot_before: 100,
            boot_after: 200,
            ..Context::default()
        }
    }

    fn event_for(c: &GuestCall, x: &Context) -> format::OwnedEvent {
        let mut comm = [0u8; format::raw::COMM_LEN];
        comm[..x.comm.len()].copy_from_slice(x.comm.as_bytes());
        format::OwnedEvent {
            ts_ns: 150,
            duration_ns: 5,
            tgid: x.pid,
            tid: c.tid,
            ppid: x.ppid,
            comm,
            cgroup_id: x.cgroup_id,
            fd: c.fd,
            level: c.level,
            optname: c.optname,
            optval_ptr: c.optval_ptr,
            optlen_ptr: c.optlen_ptr,
            optlen_in: c.optlen_in,
            optlen_out: c.optlen_out,
            ret: c.ret,
            value: c.value.clone(),
            ..format::OwnedEvent::default()
        }
    }

    #[test]
    fn exact_events_match_and_any_difference_is_caught() {
        let (c, x) = (call("tcp SO_RCVBUF"), ctx());
        let good = event_for(&c, &x);
        assert_eq!(
            check_events(std::slice::from_ref(&c), &x, std::slice::from_ref(&good)),
            (1, vec![])
        );
        type Break = fn(&mut format::OwnedEvent);
        let broken: Vec<(&str, Break)> = vec![
            ("value", |e| e.value[3] ^= 1),
            ("optlen_out", |e| e.optlen_out = 3),
            ("ret", |e| e.ret = -22),
            ("tgid", |e| e.tgid = 8),
            ("comm", |e| e.comm[0] = b'X'),
            ("level", |e| e.level = 6),
            ("ts_ns", |e| e.ts_ns = 250),
            ("flags", |e| e.flags = 1),
            ("cgroup_id", |e| e.cgroup_id = 2),
        ];
        for (what, f) in broken {
            let mut e = good.clone();
            f(&mut e);
            let (matched, problems) = check_events(std::slice::from_ref(&c), &x, &[e]);
            assert_eq!(matched, 0, "{what}");
            assert!(problems[0].contains(what), "{what}: {problems:?}");
        }
        // A missing event and an extra one are both caught.
        let (m, p) = check_events(std::slice::from_ref(&c), &x, &[]);
        assert_eq!((m, p.len()), (0, 2));
        let (m, p) = check_events(std::slice::from_ref(&c), &x, &[good.clone(), good]);
        assert_eq!((m, p.len()), (1, 1));
    }

    #[test]
    fn console_transcript_is_reassembled() {
        let c = call("udp IP_TTL");
        let file = (0u8..=200).collect::<Vec<u8>>();
        let mut text = String::from("boot noise\n");
        let mut push = |s: String| {
            text.push_str(&s);
            text.push('\n');
        };
        push(line(
            "start",
            &[("kernel", "6.1.0-x".into()), ("cpus", "2".into())],
        ));
        push(line("begin", &[("mode", "kprobe".into())]));
        push(line(
            "log",
            &[
                ("mode", "kprobe".into()),
                ("text", "recorder: recording to /out/x".into()),
            ],
        ));
        push(line("attached", &[("mode", "kprobe".into())]));
        push(ctx().to_line("kprobe"));
        push(c.to_line("kprobe", 0));
        for (i, ch) in file.chunks(64).enumerate() {
            push(line(
                "chunk",
                &[
                    ("mode", "kprobe".into()),
                    ("i", i.to_string()),
                    ("hex", hex(ch)),
                ],
            ));
        }
        push(line(
            "file",
            &[
                ("mode", "kprobe".into()),
                ("len", "201".into()),
                ("chunks", "4".into()),
            ],
        ));
        push(line(
            "exit",
            &[("mode", "kprobe".into()), ("status", "0".into())],
        ));
        push(line("done", &[]));
        let run = parse_console(&text);
        assert!(run.done && run.problems.is_empty(), "{:?}", run.problems);
        assert_eq!(run.kernel_release, "6.1.0-x");
        let m = run.mode("kprobe").unwrap();
        assert!(m.loaded);
        assert_eq!(m.calls, vec![c]);
        assert_eq!(m.ctx, Some(ctx()));
        assert_eq!(m.file.as_ref().unwrap(), &file);

        // Drop one chunk line: the file must not come out.
        let cut: String = text
            .lines()
            .filter(|l| !l.contains("chunk mode=kprobe i=2 "))
            .map(|l| format!("{l}\n"))
            .collect();
        let run = parse_console(&cut);
        let err = run.mode("kprobe").unwrap().file.clone().unwrap_err();
        assert!(err.contains("chunk 2 of 4 missing"), "{err}");
    }

    #[test]
    fn a_mode_that_fails_must_say_why_and_must_not_fail_where_the_kernel_supports_it() {
        let mut run = GuestRun {
            kernel_release: "k".into(),
            ..GuestRun::default()
        };
        let m = ModeRun {
            mode: "kprobe".into(),
            status: "1".into(),
            log: vec![
                "recorder: error: no attach mode works here:".into(),
                "  kprobe: this kernel has no kprobe PMU".into(),
            ],
            file: Err("none".into()),
            ..ModeRun::default()
        };
        run.modes.push(m.clone());
        let o = check_mode(&run, &m, None, None);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert!(o.note.contains("no kprobe PMU"), "{}", o.note);
        let must = (true, "config has KPROBES".to_string());
        let o = check_mode(&run, &m, Some(&must), None);
        assert_eq!(o.problems.len(), 1, "{:?}", o.problems);
        let silent = ModeRun { log: vec![], ..m };
        let o = check_mode(&run, &silent, None, None);
        assert!(o.problems[0].contains("gave no reason"), "{:?}", o.problems);
    }

    #[test]
    fn auto_must_pick_the_cheapest_mode_that_loaded_and_name_the_ones_it_passed_over() {
        let mode = |name: &str, loaded: bool, log: &[&str]| ModeRun {
            mode: name.into(),
            loaded,
            log: log.iter().map(|s| s.to_string()).collect(),
            file: Err(String::new()),
            ..ModeRun::default()
        };
        let run = GuestRun {
            modes: vec![
                mode("kprobe", false, &[]),
                mode("fentry", false, &[]),
                mode("tracepoint", true, &[]),
                mode(
                    "auto",
                    true,
                    &[
                        "recorder: not using fentry: loading fentry: EPERM",
                        "recorder: not using kprobe: no kprobe PMU",
                    ],
                ),
            ],
            ..GuestRun::default()
        };
        let auto = |picked: &str| Outcome {
            mode: "auto".into(),
            loaded: true,
            picked: Some(picked.into()),
            ..Outcome::default()
        };
        let mut o = auto("tracepoint");
        check_auto(&run, &mut o);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert!(
            o.note.contains("fentry: loading fentry: EPERM"),
            "{}",
            o.note
        );
        let mut o = auto("kprobe");
        check_auto(&run, &mut o);
        assert!(o.problems[0].contains("cheapest"), "{:?}", o.problems);
        // Passing over a mode without a reason is a failure.
        let mut quiet = run.clone();
        quiet.modes[3].log.pop();
        let mut o = auto("tracepoint");
        check_auto(&quiet, &mut o);
        assert!(
            o.problems[0].contains("without saying why"),
            "{:?}",
            o.problems
        );
    }

    #[test]
    fn auto_without_btf_must_fall_back_past_fentry_even_where_fentry_loads() {
        let mode = |name: &str, loaded: bool, log: &[&str]| ModeRun {
            mode: name.into(),
            loaded,
            log: log.iter().map(|s| s.to_string()).collect(),
            ..ModeRun::default()
        };
        let run = GuestRun {
            modes: vec![
                mode("kprobe", true, &[]),
                mode("fentry", true, &[]),
                mode("tracepoint", true, &[]),
                mode(
                    "auto-nobtf",
                    true,
                    &["recorder: not using fentry: kernel BTF (/sys/kernel/btf/vmlinux): gone"],
                ),
            ],
            ..GuestRun::default()
        };
        assert_eq!(scenario("auto-nobtf").unwrap().excluded(), vec!["fentry"]);
        assert_eq!(
            scenario("auto-nobtf-nokprobe").unwrap().excluded(),
            vec!["fentry", "kprobe"]
        );
        assert_eq!(
            scenario(NOTHING).unwrap().excluded(),
            vec!["fentry", "kprobe", "tracepoint"]
        );
        let auto = |picked: &str| Outcome {
            mode: "auto-nobtf".into(),
            loaded: true,
            picked: Some(picked.into()),
            ..Outcome::default()
        };
        let mut o = auto("kprobe");
        check_auto(&run, &mut o);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        let mut o = auto("fentry");
        check_auto(&run, &mut o);
        assert!(!o.problems.is_empty());
    }

    #[test]
    fn with_nothing_to_attach_the_recorder_must_exit_3_naming_the_kernel_and_each_piece() {
        let run = GuestRun {
            kernel_release: "5.10.0-46-cloud-amd64".into(),
            ..GuestRun::default()
        };
        let error = "recorder: error: this kernel (5.10.0-46-cloud-amd64) cannot record: no \
                     attach mode works; it lacks BTF (x), kprobes (y), tracefs (z)";
        let m = ModeRun {
            mode: NOTHING.into(),
            status: "3".into(),
            log: vec![error.into(), "  fentry: gone".into()],
            ..ModeRun::default()
        };
        let o = check_mode(&run, &m, None, None);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert!(o.note.starts_with(error), "{}", o.note);
        for (what, broken) in [
            (
                "exit 1",
                ModeRun {
                    status: "1".into(),
                    ..m.clone()
                },
            ),
            (
                "recorded",
                ModeRun {
                    loaded: true,
                    ..m.clone()
                },
            ),
            (
                "other kernel",
                ModeRun {
                    log: vec![error.replace("5.10.0-46", "6.1.0-1")],
                    ..m.clone()
                },
            ),
            (
                "no tracefs named",
                ModeRun {
                    log: vec![error.replace("tracefs", "x")],
                    ..m.clone()
                },
            ),
        ] {
            assert!(
                !check_mode(&run, &broken, None, None).problems.is_empty(),
                "{what}"
            );
        }
    }

    #[test]
    fn a_dynamic_executable_names_its_loader_and_a_static_one_none() {
        // This test binary is built as cargo builds tests here: dynamic unless RUSTFLAGS make
        // it static, which the build says through the C runtime's feature.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = elf_interpreter(&me).unwrap();
        if cfg!(target_feature = "crt-static") {
            assert_eq!(interp, None);
        } else {
            assert!(interp.unwrap().contains("ld-linux"));
        }
        assert!(elf_interpreter(b"#!/bin/sh\n").is_err());
        assert!(elf_interpreter(&me[..100]).is_err());
        // busybox-static, which the guests run, has none.
        if let Ok(bb) = std::fs::read("/bin/busybox") {
            assert_eq!(elf_interpreter(&bb).unwrap(), None);
        }
    }

    #[test]
    fn support_follows_the_config() {
        let cfg = "CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_EVENTS=y\nCONFIG_FTRACE_SYSCALLS=y\n\
                   # CONFIG_KPROBES is not set\n";
        let s = expected_support(cfg, "6.1.0-57-cloud-amd64");
        assert!(s["tracepoint"].0);
        assert!(!s["kprobe"].0 && s["kprobe"].1.contains("KPROBES"));
        assert!(!s["fentry"].0);
        let full = "CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\nCONFIG_DEBUG_INFO_BTF=y\n\
                    CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS=y\n";
        assert!(expected_support(full, "6.1.0-57-cloud-amd64")["fentry"].0);
        assert!(expected_support(full, "5.16.0-1-amd64")["fentry"].0);
        // Before 5.16 fentry reads optlen with a helper: it must load there too.
        assert!(expected_support(full, "5.10.0-46-cloud-amd64")["fentry"].0);
    }
}
