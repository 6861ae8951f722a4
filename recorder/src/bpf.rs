//! Loading the embedded eBPF object, choosing and attaching an attach mode, and the maps user
//! space talks to (config, ring buffer, loss counters).

use std::fmt;
use std::os::fd::{AsRawFd, RawFd};

use crate::perfbuf::PerfBuffers;
use crate::support::{KernelFacts, Unsupported};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::{FEntry, FExit, KProbe, Program, TracePoint};
use aya::{Ebpf, EbpfLoader};
use recorder_ebpf::{
    CAS_KERNEL, Config, FENTRY_INT_POINTER_ARGS_KERNEL, GLOBAL_FENTRY_READ_ARGS,
    GLOBAL_PERF_BUFFER, GLOBAL_SOCK_OFFSETS, LossSlot, MAP_CONFIG, MAP_EVENTS, MAP_EVENTS_PERF,
    MAP_LOSSES, PLAIN_SUFFIX, PROG_FENTRY_ENTER, PROG_FEXIT_EXIT, PROG_FLOOR_FENTRY,
    PROG_FLOOR_FEXIT, PROG_FLOOR_KPROBE, PROG_FLOOR_KRETPROBE, PROG_FLOOR_TP, PROG_KPROBE_ENTER,
    PROG_KPROBE_ENTER_WRAPPED, PROG_KRETPROBE_EXIT, PROG_TP_ENTER, PROG_TP_EXIT, RDONLY_CAST_MARK,
    SockOffsets,
};

/// The BPF object `build.rs` compiled from `recorder-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/recorder"));

/// Where the recorder hooks getsockopt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// fentry/fexit on `__sys_getsockopt` (BPF trampolines; needs BTF).
    Fentry,
    /// kprobe/kretprobe on `__sys_getsockopt` (or the `__x64_sys_getsockopt` wrapper).
    Kprobe,
    /// The `syscalls/sys_{enter,exit}_getsockopt` tracepoints.
    Tracepoint,
}

impl AttachMode {
    /// The order `--attach auto` tries: cheapest first.
    ///
    /// fentry/fexit call the program straight from a BPF trampoline patched into the function.
    /// kprobes go through ftrace (entry) and the rethook return trampoline (exit), which costs
    /// more per call but only on getsockopt. Syscall tracepoints come last: enabling any of them
    /// switches every task onto the slow syscall entry/exit path (SYSCALL_WORK_SYSCALL_TRACEPOINT),
    /// so they tax every syscall on the machine, not just getsockopt.
    pub const AUTO_ORDER: [AttachMode; 3] = [
        AttachMode::Fentry,
        AttachMode::Kprobe,
        AttachMode::Tracepoint,
    ];

    /// The name stored in the file header's `attach_mode`.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Fentry => "fentry",
            AttachMode::Kprobe => "kprobe",
            AttachMode::Tracepoint => "tracepoint",
        }
    }
}

/// `--buffer`: how records reach user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BufferKind {
    /// The ring buffer if the kernel has one (5.8+), else per-CPU perf buffers.
    Auto,
    /// The BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8+).
    Ring,
    /// Per-CPU perf buffers (BPF_MAP_TYPE_PERF_EVENT_ARRAY), for kernels before 5.8.
    Perf,
    /// Tests: perf buffers with the object rewritten as for a kernel before 5.5 (see
    /// [`LEGACY_HELPERS`] and [`without_ring_buffer`]), so this kernel's verifier proves the
    /// programs need nothing newer.
    #[value(hide = true)]
    PerfLegacy,
}

/// Helpers of the programs a kernel before the version lacks, each with the older helper of
/// the same signature the loader puts in its place there: (since, helper id, older id, what).
/// Without the boot clock the timestamps are CLOCK_MONOTONIC, which differs from it only by
/// the time the machine spent suspended.
pub const LEGACY_HELPERS: [((u32, u32), u32, u32, &str); 3] = [
    ((5, 8), 125, 5, "bpf_ktime_get_ns for bpf_ktime_get_boot_ns"),
    ((5, 5), 112, 4, "bpf_probe_read for bpf_probe_read_user"),
    ((5, 5), 113, 4, "bpf_probe_read for bpf_probe_read_kernel"),
];

impl BufferKind {
    /// The buffer to use and why (for the header and the start-up line); `ring_buffer`: whether
    /// the kernel can create a ring buffer (`None`: the probe failed).
    pub fn choose(self, ring_buffer: Option<bool>) -> (BufferKind, String) {
        match (self, ring_buffer) {
            (BufferKind::Auto, Some(true)) => (
                BufferKind::Ring,
                "auto: the kernel has BPF_MAP_TYPE_RINGBUF".into(),
            ),
            (BufferKind::Auto, Some(false)) => (
                BufferKind::Perf,
                "auto: the kernel cannot create a BPF_MAP_TYPE_RINGBUF (Linux 5.8+)".into(),
            ),
            // The probe itself failed (a permission, say): the load will tell more.
            (BufferKind::Auto, None) => (
                BufferKind::Ring,
                "auto: probing for BPF_MAP_TYPE_RINGBUF failed; trying it".into(),
            ),
            (kind, _) => (kind, "--buffer".into()),
        }
    }

    /// The name stored in the header's `buffer` pair.
    pub fn name(self) -> &'static str {
        match self {
            BufferKind::Auto => "auto",
            BufferKind::Ring => "ring",
            BufferKind::Perf | BufferKind::PerfLegacy => "perf",
        }
    }
}

/// Where the programs' records arrive.
pub enum EventBuffer {
    Ring(RingBuf<MapData>),
    Perf(PerfBuffers),
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The loaded and attached programs plus the maps the drain loop uses.
pub struct Probes {
    /// Keeps the programs (and so their links) alive.
    _ebpf: Ebpf,
    pub mode: AttachMode,
    /// In-flight slots are claimed by compare-and-swap (kernel 5.12+), so every call is
    /// recorded or counted; before that, a collision race can lose a call uncounted.
    pub exact_claims: bool,
    /// One line per mode `auto` tried and gave up on, with the reason.
    pub fallbacks: Vec<String>,
    /// What was attached where, for the start-up message.
    pub attached_to: String,
    /// Helpers replaced by older ones ([`LEGACY_HELPERS`]), for the header.
    pub replaced_helpers: Vec<&'static str>,
    pub events: EventBuffer,
    /// `--max-rate`'s maps.
    pub(crate) agg: crate::aggregate::AggMaps,
    config_map: Array<MapData, Config>,
    losses: PerCpuArray<MapData, LossSlot>,
    config: Config,
}

/// Loads the object with `ringbuf_size` bytes of buffer (one ring buffer, or that much split
/// over the CPUs' perf buffers) and the socket walk's offsets, and attaches `modes` in order,
/// keeping the first that works. Fails with every mode's reason if none does. `rdonly_cast`:
/// the kfunc's BTF id, if the kernel has it. `buffer` is Ring or Perf (see [`BufferKind::choose`]).
pub fn load_and_attach(
    config: Config,
    sock: SockOffsets,
    rdonly_cast: Option<u32>,
    (ringbuf_size, buffer): (u32, BufferKind),
    modes: &[AttachMode],
) -> Result<Probes> {
    let release = crate::sys::uname_field(|u| &u.release);
    let exact_claims = kernel_at_least(&release, CAS_KERNEL);
    let legacy = buffer == BufferKind::PerfLegacy;
    let perf = buffer == BufferKind::Perf || legacy;
    let fentry_read_args = u32::from(!kernel_at_least(&release, FENTRY_INT_POINTER_ARGS_KERNEL));
    let mut object = patch_rdonly_cast(EBPF_OBJECT, rdonly_cast);
    if legacy || (perf && KernelFacts::probe().ring_buffer == Some(false)) {
        object = without_ring_buffer(&object, MAP_EVENTS)?;
    }
    let mut replaced_helpers = Vec::new();
    for (since, id, older, what) in LEGACY_HELPERS {
        if legacy || !kernel_at_least(&release, since) {
            // Only in the programs' code: a real helper id may also occur in BTF or data.
            for range in code_ranges(&object)? {
                patch_calls(&mut object[range], id, |insn| {
                    insn[4..].copy_from_slice(&older.to_le_bytes());
                });
            }
            replaced_helpers.push(what);
        }
    }
    let mut ebpf = match EbpfLoader::new()
        // Unused with perf buffers: the smallest ring buffer there is.
        .map_max_entries(MAP_EVENTS, if perf { 4096 } else { ringbuf_size })
        .override_global(GLOBAL_SOCK_OFFSETS, &sock, true)
        .override_global(GLOBAL_PERF_BUFFER, &u32::from(perf), true)
        .override_global(GLOBAL_FENTRY_READ_ARGS, &fentry_read_args, true)
        .load(&object)
    {
        Ok(ebpf) => ebpf,
        Err(e) => {
            let e = anyhow!(e).context("loading the eBPF object (maps)");
            let facts = KernelFacts::probe();
            let why = (!perf)
                .then(|| Unsupported::after_load(&facts, modes, &format!("{e:#}")))
                .flatten();
            return Err(why.map_or(e, Into::into));
        }
    };
    // Before the ring buffer is mapped: start-up's freed memory and the ring's pages are then
    // never resident at once.
    crate::sys::release_freed_memory();
    let mut config_map: Array<MapData, Config> = take_map(&mut ebpf, MAP_CONFIG)?;
    config_map
        .set(0, config, 0)
        .context("writing the config map")?;
    let events = if perf {
        let Some(aya::maps::Map::PerfEventArray(map)) = ebpf.take_map(MAP_EVENTS_PERF) else {
            bail!("map {MAP_EVENTS_PERF} missing from the object, or not a perf event array");
        };
        // What the ring buffer would get in all, shared by the CPUs, at least a page each.
        let share = ringbuf_size / crate::sys::possible_cpus().max(1);
        let per_cpu = if share <= 4096 {
            4096
        } else {
            1 << share.ilog2()
        };
        EventBuffer::Perf(PerfBuffers::open(map, per_cpu)?)
    } else {
        EventBuffer::Ring(take_map(&mut ebpf, MAP_EVENTS)?)
    };
    let losses: PerCpuArray<MapData, LossSlot> = take_map(&mut ebpf, MAP_LOSSES)?;
    let agg = crate::aggregate::AggMaps::take(&mut ebpf)?;

    let mut fallbacks = Vec::new();
    let mut failed = Vec::new();
    let mut refused = false;
    for &mode in modes {
        match attach(&mut ebpf, mode, exact_claims) {
            Ok(attached_to) => {
                return Ok(Probes {
                    _ebpf: ebpf,
                    mode,
                    exact_claims,
                    fallbacks,
                    attached_to,
                    replaced_helpers,
                    events,
                    agg,
                    config_map,
                    losses,
                    config,
                });
            }
            Err(e) => {
                unload_mode(&mut ebpf, mode);
                refused |= e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<aya::programs::ProgramError>(),
                        Some(aya::programs::ProgramError::LoadError { .. })
                    )
                });
                fallbacks.push(format!("{mode}: {e:#}"));
                failed.push((mode, format!("{e:#}")));
            }
        }
    }
    if let Some(u) = Unsupported::after_attach(&KernelFacts::probe(), &failed) {
        return Err(u.into());
    }
    let msg = format!("no attach mode works here:\n  {}", fallbacks.join("\n  "));
    Err(if refused {
        anyhow::Error::new(ProgramsRefused(msg))
    } else {
        anyhow!(msg)
    })
}

/// A [`load_and_attach`] failure in which the kernel refused to load a program (its verifier
/// said no), as opposed to a hook that is missing or not permitted. Says what the plain
/// failure says.
#[derive(Debug)]
pub struct ProgramsRefused(String);

impl fmt::Display for ProgramsRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProgramsRefused {}

/// The object with every `call RDONLY_CAST_MARK` made the `bpf_rdonly_cast` kfunc call (BPF
/// has no CO-RE extern resolution in aya 0.14, so the loader does what libbpf would), or,
/// without the kfunc, `r0 = r1`, which only code `SockOffsets::fast == 0` never runs holds.
fn patch_rdonly_cast(object: &[u8], rdonly_cast: Option<u32>) -> Vec<u8> {
    const BPF_MOV64_REG: u8 = 0xbf;
    const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
    let mut out = object.to_vec();
    patch_calls(&mut out, RDONLY_CAST_MARK, |insn| {
        match rdonly_cast {
            // src_reg (high nibble of byte 1) = BPF_PSEUDO_KFUNC_CALL, imm = the kfunc's id.
            Some(id) => {
                insn[1] = BPF_PSEUDO_KFUNC_CALL << 4;
                insn[4..].copy_from_slice(&id.to_le_bytes());
            }
            // dst r0, src r1, no offset or immediate.
            None => insn.copy_from_slice(&[BPF_MOV64_REG, 1 << 4, 0, 0, 0, 0, 0, 0]),
        }
    });
    out
}

/// Rewrites with `f` every call of helper `id` in `object`. Instructions are 8-byte aligned
/// in the object (as every ELF section of them is), so an aligned 8-byte match is a call
/// instruction: opcode 0x85, no registers, offset 0, the id.
fn patch_calls(object: &mut [u8], id: u32, f: impl Fn(&mut [u8])) {
    const BPF_CALL: u8 = 0x85;
    let mut call = [BPF_CALL, 0, 0, 0, 0, 0, 0, 0];
    call[4..].copy_from_slice(&id.to_le_bytes());
    for insn in object.chunks_exact_mut(8).filter(|i| **i == call) {
        f(insn);
    }
}

/// The byte ranges of the object's code sections.
fn code_ranges(object: &[u8]) -> Result<Vec<std::ops::Range<usize>>> {
    use object::{Object as _, ObjectSection as _, SectionKind};
    let file = object::File::parse(object).context("parsing the eBPF object")?;
    Ok(file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .filter_map(|s| s.file_range())
        .map(|(start, len)| start as usize..(start + len) as usize)
        .collect())
}

/// The object with the ring buffer map `name` turned into a one-entry array, for a kernel
/// that cannot create a ring buffer (before 5.8). With `PERF_BUFFER` set the programs never
/// reach a `bpf_ringbuf_*` call, so the map only has to exist for their map references.
///
/// The map is a legacy definition in the `maps` section (aya-ebpf 0.2): `type`, `key_size`,
/// `value_size`, `max_entries` as the first four u32s at the symbol's offset.
pub fn without_ring_buffer(object: &[u8], name: &str) -> Result<Vec<u8>> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let file = object::File::parse(object).context("parsing the eBPF object")?;
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(name))
        .ok_or_else(|| anyhow!("no symbol {name} in the eBPF object"))?;
    let section = sym
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or_else(|| anyhow!("{name} is in no section of the eBPF object"))?;
    let (start, _) = section
        .file_range()
        .ok_or_else(|| anyhow!("{name}'s section has no bytes in the object"))?;
    let at = (start + sym.address()) as usize;
    let mut out = object.to_vec();
    let def = out
        .get_mut(at..at + 16)
        .ok_or_else(|| anyhow!("{name}'s definition lies outside the object"))?;
    for (i, v) in [BPF_MAP_TYPE_ARRAY, 4, 4, 1].into_iter().enumerate() {
        def[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// The name of a program's exact variant (`name`) or its plain one.
fn variant(name: &str, exact: bool) -> String {
    if exact {
        name.to_string()
    } else {
        format!("{name}{PLAIN_SUFFIX}")
    }
}

/// Whether a kernel release string (`6.1.0-57-cloud-amd64`) is at least `major.minor`; an
/// unparsable one is taken as too old.
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Attaches empty programs to the hooks of `mode` and keeps them attached while the returned
/// object lives: what the hook alone costs a getsockopt call, for `recorder bench`.
pub fn attach_floor(mode: AttachMode) -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;
    match mode {
        AttachMode::Tracepoint => {
            let p: &mut TracePoint = program(&mut ebpf, PROG_FLOOR_TP)?;
            p.load().context("loading the empty tracepoint program")?;
            for tp in ["sys_enter_getsockopt", "sys_exit_getsockopt"] {
                p.attach("syscalls", tp)
                    .with_context(|| format!("attaching to syscalls/{tp}"))?;
            }
        }
        AttachMode::Kprobe => {
            let (func, _) = kprobe_target()?;
            for prog in [PROG_FLOOR_KPROBE, PROG_FLOOR_KRETPROBE] {
                let p: &mut KProbe = program(&mut ebpf, prog)?;
                p.load().with_context(|| format!("loading {prog}"))?;
                p.attach(func, 0)
                    .with_context(|| format!("{prog} on {func}"))?;
            }
        }
        AttachMode::Fentry => {
            let btf = aya::Btf::from_sys_fs().context("kernel BTF (/sys/kernel/btf/vmlinux)")?;
            let func = "__sys_getsockopt";
            let p: &mut FEntry = program(&mut ebpf, PROG_FLOOR_FENTRY)?;
            p.load(func, &btf)
                .context("loading the empty fentry program")?;
            p.attach().context("attaching the empty fentry program")?;
            let p: &mut FExit = program(&mut ebpf, PROG_FLOOR_FEXIT)?;
            p.load(func, &btf)
                .context("loading the empty fexit program")?;
            p.attach().context("attaching the empty fexit program")?;
        }
    }
    Ok(ebpf)
}

pub(crate) fn take_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing from the object"))?;
    M::try_from(map).with_context(|| format!("map {name}"))
}

fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?;
    <&mut P>::try_from(p).with_context(|| format!("program {name}"))
}

/// The kernel function the kprobe mode hooks: `__sys_getsockopt`, where the syscall's own
/// arguments are plain function arguments, else the arch wrapper (arguments in inner pt_regs).
fn kprobe_target() -> Result<(&'static str, &'static str)> {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
    let has = |sym: &str| {
        kallsyms
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some(sym))
    };
    if has("__sys_getsockopt") {
        Ok(("__sys_getsockopt", PROG_KPROBE_ENTER))
    } else if cfg!(target_arch = "x86_64") && has("__x64_sys_getsockopt") {
        Ok(("__x64_sys_getsockopt", PROG_KPROBE_ENTER_WRAPPED))
    } else {
        bail!("neither __sys_getsockopt nor an arch syscall wrapper is in /proc/kallsyms")
    }
}

/// Attaches `mode`'s entry and exit programs, in their exact variant or (`exact` false, a
/// kernel without BPF compare-and-swap) their plain one.
fn attach(ebpf: &mut Ebpf, mode: AttachMode, exact: bool) -> Result<String> {
    match mode {
        AttachMode::Tracepoint => {
            let dir = "/sys/kernel/tracing/events/syscalls";
            match std::fs::metadata(dir) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
                    "{dir} is not readable by this user (tracefs is root-only): tracepoint \
                     mode needs root"
                ),
                Err(_) => bail!(
                    "{dir} missing (tracefs not mounted, or a kernel without \
                     CONFIG_FTRACE_SYSCALLS)"
                ),
            }
            // Exit first, in every mode: a claim made by the entry program is then always
            // released by an exit program (see INFLIGHT in recorder-ebpf).
            for (prog, tp) in [
                (PROG_TP_EXIT, "sys_exit_getsockopt"),
                (PROG_TP_ENTER, "sys_enter_getsockopt"),
            ] {
                let p: &mut TracePoint = program(ebpf, &variant(prog, exact))?;
                p.load().with_context(|| format!("loading {prog}"))?;
                p.attach("syscalls", tp)
                    .with_context(|| format!("attaching to syscalls/{tp}"))?;
            }
            Ok("syscalls/sys_{enter,exit}_getsockopt".into())
        }
        AttachMode::Kprobe => {
            if !std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
                bail!(
                    "this kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe missing: CONFIG_KPROBES off?)"
                );
            }
            let (func, enter) = kprobe_target()?;
            let p: &mut KProbe = program(ebpf, &variant(PROG_KRETPROBE_EXIT, exact))?;
            p.load()
                .with_context(|| format!("loading {PROG_KRETPROBE_EXIT}"))?;
            p.attach(func, 0)
                .with_context(|| format!("kretprobe on {func}"))?;
            let p: &mut KProbe = program(ebpf, &variant(enter, exact))?;
            p.load().with_context(|| format!("loading {enter}"))?;
            p.attach(func, 0)
                .with_context(|| format!("kprobe on {func}"))?;
            Ok(format!("kprobe+kretprobe on {func}"))
        }
        AttachMode::Fentry => {
            let btf = aya::Btf::from_sys_fs().context("kernel BTF (/sys/kernel/btf/vmlinux)")?;
            let func = "__sys_getsockopt";
            let p: &mut FExit = program(ebpf, &variant(PROG_FEXIT_EXIT, exact))?;
            p.load(func, &btf)
                .with_context(|| format!("loading fexit on {func}"))?;
            p.attach()
                .with_context(|| format!("attaching fexit on {func}"))?;
            let p: &mut FEntry = program(ebpf, &variant(PROG_FENTRY_ENTER, exact))?;
            p.load(func, &btf)
                .with_context(|| format!("loading fentry on {func}"))?;
            p.attach()
                .with_context(|| format!("attaching fentry on {func}"))?;
            Ok(format!("fentry+fexit on {func}"))
        }
    }
}

/// Detaches and unloads whatever `attach` got done for `mode` before it failed, so a half
/// attached mode (entry without exit) never stays behind while the next one is tried.
fn unload_mode(ebpf: &mut Ebpf, mode: AttachMode) {
    let names: &[&str] = match mode {
        AttachMode::Tracepoint => &[PROG_TP_ENTER, PROG_TP_EXIT],
        AttachMode::Kprobe => &[
            PROG_KPROBE_ENTER,
            PROG_KPROBE_ENTER_WRAPPED,
            PROG_KRETPROBE_EXIT,
        ],
        AttachMode::Fentry => &[PROG_FENTRY_ENTER, PROG_FEXIT_EXIT],
    };
    for name in names
        .iter()
        .flat_map(|&n| [variant(n, true), variant(n, false)])
    {
        // Unloading a program that never loaded fails harmlessly.
        let _ = match ebpf.program_mut(&name) {
            Some(Program::TracePoint(p)) => p.unload(),
            Some(Program::KProbe(p)) => p.unload(),
            Some(Program::FEntry(p)) => p.unload(),
            Some(Program::FExit(p)) => p.unload(),
            _ => Ok(()),
        };
    }
}

impl Probes {
    /// What polls readable when the drain should run early.
    pub fn wakeup_fds(&self) -> Vec<RawFd> {
        match &self.events {
            EventBuffer::Ring(r) => vec![r.as_raw_fd()],
            EventBuffer::Perf(p) => p.fds(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the in-kernel config (e.g. to add a pid filter once a child is started).
    pub fn set_config(&mut self, config: Config) -> Result<()> {
        self.config_map
            .set(0, config, 0)
            .context("writing the config map")?;
        self.config = config;
        Ok(())
    }

    /// Per-CPU loss counters as they are now (index = CPU).
    pub fn losses(&self) -> Result<Vec<LossSlot>> {
        Ok(self
            .losses
            .get(&0, 0)
            .context("reading the loss counters")?
            .iter()
            .copied()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aligned_mark_calls_are_patched() {
        let mark = {
            let mut m = [0x85u8, 0, 0, 0, 0, 0, 0, 0];
            m[4..].copy_from_slice(&RDONLY_CAST_MARK.to_le_bytes());
            m
        };
        let helper_call = [0x85u8, 0, 0, 0, 158, 0, 0, 0];
        // An aligned mark, another helper call, and a mark at an odd offset (data, not code).
        let mut obj = [mark, helper_call].concat();
        obj.extend_from_slice(&[0; 3]);
        obj.extend_from_slice(&mark);
        obj.extend_from_slice(&[0; 5]);
        let kfunc = patch_rdonly_cast(&obj, Some(65425));
        assert_eq!(kfunc[..8], [0x85, 0x20, 0, 0, 0x91, 0xff, 0, 0]);
        assert_eq!(kfunc[8..], obj[8..]);
        let mov = patch_rdonly_cast(&obj, None);
        assert_eq!(mov[..8], [0xbf, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(mov[8..], obj[8..]);
    }

    #[test]
    fn the_object_calls_the_rdonly_cast_mark() {
        // The fast walk's casts are in the entry programs: if LLVM ever emitted them otherwise,
        // the loader would patch nothing and the verifier refuse an unknown helper.
        let mut mark = [0x85u8, 0, 0, 0, 0, 0, 0, 0];
        mark[4..].copy_from_slice(&RDONLY_CAST_MARK.to_le_bytes());
        let n = EBPF_OBJECT.chunks_exact(8).filter(|i| *i == mark).count();
        assert!(n >= 2, "{n} rdonly_cast calls in the object");
    }

    /// Every `MAP_*` and `PROG_*` name `recorder-ebpf` declares for user space, read from its
    /// source so a constant added later is checked too.
    fn declared_names(prefix: &str) -> Vec<(String, String)> {
        include_str!("../../recorder-ebpf/src/lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| {
                let (name, rest) = l.split_once(": &str = \"")?;
                Some((name.to_string(), rest.strip_suffix("\";")?.to_string()))
            })
            .collect()
    }

    #[test]
    fn auto_takes_perf_buffers_only_where_no_ring_buffer_can_be_created() {
        use BufferKind::*;
        let perf_why = "auto: the kernel cannot create a BPF_MAP_TYPE_RINGBUF (Linux 5.8+)";
        assert_eq!(Auto.choose(Some(false)), (Perf, perf_why.to_string()));
        let ring = Auto.choose(Some(true));
        assert_eq!(
            ring,
            (Ring, "auto: the kernel has BPF_MAP_TYPE_RINGBUF".into())
        );
        // A probe that failed says nothing about the kernel: try the ring buffer, and say so.
        assert_eq!(Auto.choose(None).0, Ring);
        for kind in [Ring, Perf, PerfLegacy] {
            assert_eq!(kind.choose(Some(false)), (kind, "--buffer".into()));
        }
        assert_eq!(
            PerfLegacy.name(),
            "perf",
            "the header names the buffer, not the test"
        );
    }

    #[test]
    fn without_a_ring_buffer_the_events_map_is_a_one_entry_array() {
        use aya_obj::maps::Map;
        let patched = without_ring_buffer(EBPF_OBJECT, MAP_EVENTS).unwrap();
        let def = |object: &[u8]| {
            let obj = aya_obj::Object::parse(object).expect("the object parses");
            let m = &obj.maps[MAP_EVENTS];
            let Map::Legacy(l) = m else {
                panic!("{MAP_EVENTS} is a legacy map definition");
            };
            (
                l.def.map_type,
                l.def.key_size,
                l.def.value_size,
                l.def.max_entries,
            )
        };
        assert_eq!(def(EBPF_OBJECT).0, 27, "BPF_MAP_TYPE_RINGBUF in the object");
        assert_eq!(def(&patched), (2, 4, 4, 1));
        // Nothing else moved.
        let differ = EBPF_OBJECT
            .iter()
            .zip(&patched)
            .filter(|(a, b)| a != b)
            .count();
        assert!(differ <= 16, "{differ} bytes changed");
    }

    #[test]
    fn kernel_versions_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.1.0-57-cloud-amd64", (5, 12)));
        assert!(kernel_at_least("5.12.0", (5, 12)));
        assert!(!kernel_at_least("5.10.0-46-cloud-amd64", (5, 12)));
        assert!(!kernel_at_least("4.19.0", (5, 12)));
        assert!(!kernel_at_least("garbage", (5, 12)));
    }

    #[test]
    fn every_map_and_program_name_user_space_uses_is_in_the_object() {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the embedded object parses");
        let maps = declared_names("MAP_");
        let progs = declared_names("PROG_");
        assert_eq!((maps.len(), progs.len()), (8, 12), "{maps:?} {progs:?}");
        for (constant, name) in &maps {
            assert!(
                obj.maps.contains_key(name.as_str()),
                "{constant} = {name:?} is no map of the object; it has {:?}",
                obj.maps.keys().collect::<Vec<_>>()
            );
        }
        // Every entry and exit program also comes in its plain variant (kernels before 5.12).
        let plain: Vec<(String, String)> = progs
            .iter()
            .filter(|(c, _)| !c.starts_with("PROG_FLOOR_"))
            .map(|(c, n)| (format!("{c} (plain)"), variant(n, false)))
            .collect();
        assert_eq!(plain.len(), 7);
        for (constant, name) in progs.iter().chain(&plain) {
            assert!(
                obj.programs.contains_key(name.as_str()),
                "{constant} = {name:?} is no program of the object; it has {:?}",
                obj.programs.keys().collect::<Vec<_>>()
            );
        }
        // The constants the loader imports are the ones checked above.
        for used in [
            MAP_CONFIG,
            MAP_EVENTS,
            MAP_LOSSES,
            recorder_ebpf::MAP_AGG,
            recorder_ebpf::MAP_AGG_OVERFLOW,
            recorder_ebpf::MAP_AGG_COUNTERS,
            recorder_ebpf::MAP_AGG_SAMPLED,
            MAP_EVENTS_PERF,
            PROG_TP_ENTER,
            PROG_FLOOR_FEXIT,
        ] {
            assert!(maps.iter().chain(&progs).any(|(_, n)| n == used), "{used}");
        }
    }
}
