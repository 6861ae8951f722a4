//! Layouts shared by the recorder's eBPF programs (`src/main.rs`, built for `bpfel-unknown-none`)
//! and its user space loader (`recorder/src/bpf.rs`). The event record itself lives in
//! `format::raw`; this crate holds what only the recorder needs: the in-kernel configuration,
//! the per-call state kept between syscall entry and exit, and the loss counters.
//!
//! Every struct is `#[repr(C)]` with explicit padding so both sides agree on every byte.
#![no_std]

/// Names of the maps user space opens (the statics in `src/main.rs`); a recorder test checks
/// each is in the built object, so the loader and the programs cannot drift apart.
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_CONFIG: &str = "CONFIG";
pub const MAP_LOSSES: &str = "LOSSES";
/// `--max-rate`'s maps (`src/agg.rs`): the counts by key, the overflow entry and the sample's
/// counters, one of each per generation; and the sample's cap counter.
pub const MAP_AGG: &str = "AGG";
pub const MAP_AGG_OVERFLOW: &str = "AGG_OVERFLOW";
pub const MAP_AGG_COUNTERS: &str = "AGG_COUNTERS";
pub const MAP_AGG_SAMPLED: &str = "AGG_SAMPLED";
/// The per-CPU perf buffers (`--buffer perf`).
pub const MAP_EVENTS_PERF: &str = "EVENTS_PERF";
/// Read-only globals the loader sets (see their statics in `src/main.rs`): records go to the
/// perf buffers (1) or the ring buffer (0); fentry reads `optlen` by a helper call (1).
pub const GLOBAL_PERF_BUFFER: &str = "PERF_BUFFER";
pub const GLOBAL_FENTRY_READ_ARGS: &str = "FENTRY_READ_ARGS";
/// The first kernel with the BPF ring buffer (BPF_MAP_TYPE_RINGBUF).
pub const RINGBUF_KERNEL: (u32, u32) = (5, 8);
/// The first kernel whose verifier lets a tracing program load a pointer-to-int argument
/// from its context ("bpf: Allow access to int pointer arguments in tracing programs");
/// before it fentry reads `optlen` with `bpf_probe_read_kernel` (see `GLOBAL_FENTRY_READ_ARGS`).
pub const FENTRY_INT_POINTER_ARGS_KERNEL: (u32, u32) = (5, 16);
/// The first kernel with BPF_CMPXCHG, which exact in-flight claims need. Before it the loader
/// takes each entry and exit program's variant named with [`PLAIN_SUFFIX`].
pub const CAS_KERNEL: (u32, u32) = (5, 12);
/// Suffix of the entry and exit programs that claim in-flight slots by plain stores.
pub const PLAIN_SUFFIX: &str = "_plain";

/// Program names (the Rust function names in `src/main.rs`).
pub const PROG_TP_ENTER: &str = "gsot_tp_enter";
pub const PROG_TP_EXIT: &str = "gsot_tp_exit";
pub const PROG_KPROBE_ENTER: &str = "gsot_kprobe_enter";
/// Entry probe for the `__x64_sys_getsockopt(const struct pt_regs *)` wrapper, used when
/// `__sys_getsockopt` cannot be probed (inlined or renamed): arguments come from the inner regs.
pub const PROG_KPROBE_ENTER_WRAPPED: &str = "gsot_kprobe_enter_wrapped";
pub const PROG_KRETPROBE_EXIT: &str = "gsot_kretprobe_exit";
pub const PROG_FENTRY_ENTER: &str = "gsot_fentry_enter";
pub const PROG_FEXIT_EXIT: &str = "gsot_fexit_exit";
/// Empty programs on the same hooks, for measuring what a hook costs by itself.
pub const PROG_FLOOR_TP: &str = "gsot_floor_tp";
pub const PROG_FLOOR_KPROBE: &str = "gsot_floor_kprobe";
pub const PROG_FLOOR_KRETPROBE: &str = "gsot_floor_kretprobe";
pub const PROG_FLOOR_FENTRY: &str = "gsot_floor_fentry";
pub const PROG_FLOOR_FEXIT: &str = "gsot_floor_fexit";

/// Slots of the in-flight array: a thread uses slot `tid & Config::inflight_mask`, so two
/// threads collide only if their tids differ by a multiple of the slot count and both are
/// inside getsockopt at once (the later call is then counted as lost, never silently gone).
pub const INFLIGHT_MAX_ENTRIES: u32 = 16384;
const _: () = assert!(INFLIGHT_MAX_ENTRIES.is_power_of_two());

/// `Config::filters` bits: which filters are active.
pub const FILTER_PID: u32 = 1 << 0;
pub const FILTER_COMM: u32 = 1 << 1;
pub const FILTER_UID: u32 = 1 << 2;
pub const FILTER_CGROUP: u32 = 1 << 3;
pub const FILTER_LEVEL: u32 = 1 << 4;
pub const FILTER_OPTNAME: u32 = 1 << 5;
pub const FILTER_ERRORS_ONLY: u32 = 1 << 6;
/// Socket filters (`--port`, `--remote-addr`, `--family`): they need the socket identity of
/// every call, also the rejected ones.
pub const FILTER_PORT: u32 = 1 << 7;
pub const FILTER_REMOTE_ADDR: u32 = 1 << 8;
pub const FILTER_FAMILY: u32 = 1 << 9;

/// Most ports `--port` takes.
pub const MAX_FILTER_PORTS: usize = 8;

/// Byte offsets of the kernel structure fields the programs read with `bpf_probe_read_kernel`.
///
/// aya-ebpf 0.2.1 has no CO-RE relocations, so instead of compiling in offsets for one kernel
/// build the loader computes these from the running kernel's BTF (`/sys/kernel/btf/vmlinux`)
/// and hands them over in [`Config`]. A zero `task_real_parent` means "unknown": the programs
/// then leave ppid and the namespace ids at 0 rather than read garbage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.real_parent` (pointer).
    pub task_real_parent: u32,
    /// `task_struct.tgid` (`pid_t`).
    pub task_tgid: u32,
    /// `task_struct.nsproxy` (pointer).
    pub task_nsproxy: u32,
    /// `task_struct.thread_pid` (`struct pid *`).
    pub task_thread_pid: u32,
    /// `nsproxy.mnt_ns` (pointer).
    pub nsproxy_mnt_ns: u32,
    /// `mnt_namespace.ns` + `ns_common.inum`.
    pub mnt_ns_inum: u32,
    /// `pid.level` (unsigned int).
    pub pid_level: u32,
    /// `pid.numbers` (array of `struct upid`).
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`.
    pub upid_size: u32,
    /// `upid.ns` (`struct pid_namespace *`).
    pub upid_ns: u32,
    /// `pid_namespace.ns` + `ns_common.inum`.
    pub pid_ns_inum: u32,
    pub _pad: u32,
}

/// Where the socket walk (`src/sock.rs`) finds what it reads, from the running kernel's BTF;
/// a read-only global ([`GLOBAL_SOCK_OFFSETS`]), not part of [`Config`].
///
/// Without `fast`, the walk reads a few spans of kernel memory with one `bpf_probe_read_kernel` each (a helper
/// call costs far more than the bytes it copies); a `*_rel` field is the offset of a member
/// from the start of its span, which the loader computed and checked to be under
/// [`SOCK_SPAN`] bytes. `enabled == 0`: no socket identity (no BTF, or `--no-sockets`); see
/// also [`SOCK_WALK_UNCACHED`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOffsets {
    pub enabled: u32,
    /// `task_struct.files`.
    pub task_files: u32,
    /// `files_struct.fdt`.
    pub files_fdt: u32,
    /// `fdtable.max_fds` and `fdtable.fd`, from `fdtable` (one span of `fdt_span` bytes).
    pub fdt_span: u32,
    pub fdt_max_fds_rel: u32,
    pub fdt_fd_rel: u32,
    /// The span of `struct file` holding `private_data` and `f_inode`.
    pub file_span_start: u32,
    pub file_span_len: u32,
    pub file_private_data_rel: u32,
    pub file_f_inode_rel: u32,
    /// `struct socket_alloc` from its start through `vfs_inode.i_ino`: the socket's type, its
    /// file back-pointer, its `sk`, and the inode's mode and number.
    pub sa_span_len: u32,
    pub sa_vfs_inode: u32,
    pub socket_file_rel: u32,
    pub socket_sk_rel: u32,
    pub inode_i_mode_rel: u32,
    pub inode_i_ino_rel: u32,
    /// `struct sock_common` (at offset 0 of `struct sock`) through `skc_v6_rcv_saddr`: what
    /// changes while a socket lives (state, addresses, ports), read at every call.
    pub skc_span_len: u32,
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_family: u32,
    pub skc_state: u32,
    pub skc_bound_dev_if: u32,
    pub skc_net: u32,
    /// 0 when the kernel has no IPv6 (the v6 addresses are then not read).
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    /// `sock.sk_protocol` and `sock.sk_type` (u16 each).
    pub sk_protocol: u32,
    pub sk_type: u32,
    /// `net.ns.inum`.
    pub net_ns_inum: u32,
    /// `unix_sock.addr` and `unix_sock.peer`, from a span starting at `unix_span_start`.
    pub unix_span_start: u32,
    pub unix_span_len: u32,
    pub unix_addr_rel: u32,
    pub unix_peer_rel: u32,
    /// `unix_address.len` and `unix_address.name` (a `sockaddr_un`: `sun_path` follows the
    /// 2-byte family).
    pub unix_address_len: u32,
    pub unix_address_name: u32,
    /// `netlink_sock.portid`; 0 when the kernel has no netlink_sock in BTF.
    pub netlink_portid: u32,
    /// 1: the walk loads through BTF pointers (`bpf_get_current_task_btf` and the
    /// `bpf_rdonly_cast` kfunc the loader patched in, see [`RDONLY_CAST_MARK`]) instead of
    /// `bpf_probe_read_kernel` calls; the `btf_*` type ids are what it casts to.
    pub fast: u32,
    /// A struct whose first member is a `struct file *` (an fd table slot is cast to it).
    pub btf_file_holder: u32,
    pub btf_socket_alloc: u32,
    pub btf_unix_sock: u32,
    pub btf_netlink_sock: u32,
    /// `packet_sock.num`: an AF_PACKET socket's ethertype (network order; `sk_protocol` stays
    /// 0 for packet sockets); 0 when the kernel has no packet_sock in its BTF (AF_PACKET
    /// built as a module), and then no ethertype is read.
    pub packet_num: u32,
    /// For the BTF-pointer walk: `packet_sock`'s type id (0 with `packet_num` 0).
    pub btf_packet_sock: u32,
}

/// The rodata global holding the [`SockOffsets`] (the loader writes it before loading; the
/// verifier then knows every offset as a constant, which loads through BTF pointers need).
pub const GLOBAL_SOCK_OFFSETS: &str = "SOCK_OFFSETS";

/// The programs call `bpf_rdonly_cast` as the helper with this made-up id; the loader patches
/// each such call into the kfunc call (`BPF_PSEUDO_KFUNC_CALL` with the kfunc's BTF id), or,
/// on a kernel without the kfunc (before 6.2), into `r0 = r1`, where `SockOffsets::fast == 0`
/// keeps the verifier from ever reaching it.
pub const RDONLY_CAST_MARK: u32 = 0x7ffe_6b66;

/// `SockOffsets::enabled` value for a walk that never uses its cache (what `recorder bench`
/// reports as the uncached cost); 1 is the normal walk.
pub const SOCK_WALK_UNCACHED: u32 = 2;

/// Size of the per-CPU buffer a span is read into; every span's length is at most this.
pub const SOCK_SPAN: u32 = 256;

/// The in-kernel socket filters' arguments (see `FILTER_PORT`, ...).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFilter {
    /// Host-order ports, the first `n_ports` used; a call passes if its local or remote port is
    /// one of them.
    pub ports: [u16; MAX_FILTER_PORTS],
    pub n_ports: u32,
    /// AF_* the call's socket must have.
    pub family: u32,
    /// `--remote-addr`: the network as an IPv6 address (IPv4 ones v4-mapped, so a v4 network
    /// also matches v4-mapped peers of IPv6 sockets) and its mask, as four network-order words.
    pub remote_net: [u32; 4],
    pub remote_mask: [u32; 4],
}

/// The recorder's settings, in a one-element array map the programs read on every call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The recorder's own tgid: its calls are never recorded.
    pub self_tgid: u32,
    /// Most value bytes copied per call, at most `format::raw::MAX_SNAPLEN`.
    pub snaplen: u32,
    /// `FILTER_*` bits.
    pub filters: u32,
    pub pid: u32,
    pub uid: u32,
    pub level: i32,
    pub optname: i32,
    /// Ring buffer fill level in bytes at which a record is submitted with a forced wakeup
    /// instead of none, so a burst is drained before the buffer overflows.
    pub wakeup_threshold: u32,
    pub cgroup_id: u64,
    /// Boot-time ns of user space's last loss collection; see [`LossSlot`].
    pub loss_window_ns: u64,
    /// NUL-padded comm to match exactly (as the kernel truncates it: 15 bytes + NUL).
    pub comm: [u8; 16],
    pub offsets: TaskOffsets,
    /// In-flight slot of a thread: `tid & inflight_mask`. `INFLIGHT_MAX_ENTRIES - 1` in use;
    /// tests set fewer bits to force collisions between threads.
    pub inflight_mask: u32,
    pub _pad: u32,
    pub sock_filter: SockFilter,
    /// `--max-rate`: 1 when every call is counted in the aggregate map (`src/agg.rs`) and only
    /// a sample is handed over as events.
    pub agg_on: u32,
    /// The generation (0 or 1) calls are counted in now; user space reads and clears the
    /// other one.
    pub agg_gen: u32,
    /// A call is sampled when `bpf_get_prandom_u32() < sample_p` (2^32: every call).
    pub sample_p: u64,
    /// Most calls sampled per generation, whatever `sample_p` says (bounds a burst).
    pub sample_cap: u64,
}

/// Slots of the aggregate map, shared by both generations (each holds at most what the other
/// leaves). Every value is [`AGG_VALUE_SIZE`] bytes per possible CPU, preallocated.
pub const AGG_MAX_ENTRIES: u32 = 2048;

/// Key of the aggregate map: a generation and what the file's aggregate entries are keyed by.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AggKey {
    pub generation: u32,
    pub tgid: u32,
    pub level: i32,
    pub optname: i32,
    /// 0 or -errno.
    pub ret: i32,
}

/// One CPU's calls of one key in one generation. `u32` buckets: a generation lasts one flush
/// interval, and no CPU makes 2^32 calls in one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggValue {
    pub duration_sum_ns: u64,
    pub duration_max_ns: u64,
    /// Calls per `format::raw::agg_bucket` of their duration.
    pub buckets: [u32; format::raw::AGG_BUCKETS],
}

impl Default for AggValue {
    fn default() -> AggValue {
        AggValue {
            duration_sum_ns: 0,
            duration_max_ns: 0,
            buckets: [0; format::raw::AGG_BUCKETS],
        }
    }
}

pub const AGG_VALUE_SIZE: usize = core::mem::size_of::<AggValue>();
// A per-CPU map value is at most 32 KiB.
const _: () =
    assert!(AGG_VALUE_SIZE == 16 + 4 * format::raw::AGG_BUCKETS && AGG_VALUE_SIZE <= 32 << 10);

/// One CPU's sample counters of one generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggCounters {
    /// Calls counted (in `AGG` or the overflow entry): what user space estimates the rate
    /// from without reading every key.
    pub calls: u64,
    /// Calls the random draw picked.
    pub sampled: u64,
    /// Of those, calls turned away by `Config::sample_cap`.
    pub capped: u64,
    /// Of the rest, calls the ring buffer had no room for.
    pub dropped: u64,
}

/// What the entry program saves for the exit program, in the thread's in-flight slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Who holds the slot: [`claim_word`] of the thread and its entry time, 0 when free. Only
    /// changed by compare-and-swap; see `INFLIGHT` in `src/main.rs` for the protocol.
    pub owner: u64,
    pub ts_enter_ns: u64,
    /// The thread whose call this is: a slot is shared by every tid with the same low bits.
    pub pid_tgid: u64,
    pub optval_ptr: u64,
    pub optlen_ptr: u64,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    pub optlen_in: i32,
    /// `format::raw::FLAG_*` bits known at entry.
    pub flags: u32,
    pub _pad: u32,
}

/// The owner word of a claim: the tid in the high half (never 0 for a task that makes
/// syscalls), the entry time in units of 2^20 ns (about 1 ms) in the low half, so a claim's
/// age is known from the one word that is compared and swapped.
pub const fn claim_word(tid: u32, now_ns: u64) -> u64 {
    ((tid as u64) << 32) | ((now_ns >> CLAIM_TIME_SHIFT) as u32 as u64)
}

/// The tid of a claim word.
pub const fn claim_tid(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Whether a claim made at `word` is older than [`CLAIM_STALE_NS`] at `now_ns`: its exit was
/// missed (a kretprobe out of instances) or the call is blocked so long that displacing it,
/// counted as a loss, is better than losing every colliding call meanwhile.
pub const fn claim_is_stale(word: u64, now_ns: u64) -> bool {
    let age = ((now_ns >> CLAIM_TIME_SHIFT) as u32).wrapping_sub(word as u32);
    age as u64 > (CLAIM_STALE_NS >> CLAIM_TIME_SHIFT)
}

const CLAIM_TIME_SHIFT: u32 = 20;
/// See [`claim_is_stale`]: far above any getsockopt that does not sleep, and far below the
/// time a reused slot could otherwise stay blocked.
pub const CLAIM_STALE_NS: u64 = 1_000_000_000;

/// Per-CPU count of records the kernel could not hand over (ring buffer full, or too many
/// calls in flight), with the interval in which they were dropped.
///
/// `count` only grows, so user space computes exact deltas without resetting it (a reset would
/// race with the programs). `first_ns` restarts whenever a loss happens after user space's last
/// collection (`Config::loss_window_ns`), so each delta comes with the interval it covers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossSlot {
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Per-CPU bookkeeping of the exit program, to skip work that costs more than it tells.
///
/// Each BPF helper call costs 80-100 ns on the machine measured (an AMD host whose kernel
/// returns through the SRSO "safe RET" thunk), and ppid and the namespace ids take eight
/// kernel reads. A task's identity changes rarely, so it is kept for the task that last ran
/// the program on this CPU for at most [`TASK_IDS_TTL_NS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// `struct task_struct *` the ids below belong to.
    pub task: u64,
    /// And its pid_tgid: a task_struct freed by an exiting thread is soon reused for a new one,
    /// which gets another pid.
    pub pid_tgid: u64,
    /// When they were read (boot ns).
    pub ids_read_ns: u64,
    /// `bpf_get_current_uid_gid()`: gid in the high half, uid in the low.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub comm: [u8; 16],
    pub ppid: u32,
    pub pid_ns: u32,
    pub mnt_ns: u32,
    /// Records submitted on this CPU since the ring buffer fill level was last checked.
    pub since_fill_check: u32,
}

/// How long a task's cached identity (uid, gid, comm, cgroup, ppid, namespaces) is trusted: a
/// setuid(), a rename, a cgroup move, a reparenting or a setns() shows in the events at most
/// this late.
pub const TASK_IDS_TTL_NS: u64 = 10_000_000;

/// The ring buffer fill level is checked (for a forced wakeup) once per this many records per
/// CPU; at the default 8 MiB buffer that is far below the headroom above the threshold.
pub const FILL_CHECK_EVERY: u32 = 64;

#[cfg(feature = "user")]
mod pod {
    // User space reads and writes only these two maps' values. SAFETY: both are repr(C),
    // made of integers and byte arrays, with explicit padding fields, so every bit pattern is
    // a valid value and there are no uninitialized bytes.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LossSlot {}
    // SAFETY: as above (the loader writes it as a global).
    unsafe impl aya::Pod for super::SockOffsets {}
    // SAFETY: as above: integers only, no padding (sizes asserted below).
    unsafe impl aya::Pod for super::AggKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AggValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AggCounters {}
}

const _: () = assert!(core::mem::size_of::<TaskOffsets>() == 48);
const _: () = assert!(core::mem::size_of::<SockOffsets>() == 44 * 4);
const _: () = assert!(core::mem::size_of::<SockFilter>() == 16 + 8 + 32);
const _: () = assert!(core::mem::size_of::<Config>() == 32 + 16 + 16 + 48 + 8 + 56 + 24);
const _: () = assert!(core::mem::size_of::<AggKey>() == 20);
const _: () = assert!(core::mem::size_of::<AggCounters>() == 32);
const _: () = assert!(core::mem::size_of::<Pending>() == 64);
