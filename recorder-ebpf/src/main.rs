//! The recorder's eBPF programs: one entry and one exit program per attach mode (syscall
//! tracepoints, kprobe/kretprobe, fentry/fexit), all funnelled into [`on_enter`] and
//! [`on_exit`] so every mode records exactly the same event.
//!
//! Entry claims the thread's in-flight slot (see `INFLIGHT`) and saves the arguments, the
//! entry time and `*optlen` there; exit releases it, reads `*optlen` again and the option
//! value from user memory, and hands the record to the ring buffer without a wakeup (user
//! space drains on a timer), unless the buffer is filling up; or, with `PERF_BUFFER`, to this
//! CPU's perf buffer (which wakes user space at its watermark). A small value next to its
//! `optlen` (an int option) is read straight into a record reserved in the ring buffer; any
//! other goes through a per-CPU scratch `RawEvent` and is copied out as
//! `RAW_HEADER_SIZE + value_len` bytes.
#![no_std]
#![no_main]
// For the one BPF_CMPXCHG instruction (see `cas`): BPF inline assembly is unstable.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod agg;
mod sock;

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_F_CURRENT_CPU, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    cty::c_void,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_smp_processor_id,
            bpf_ktime_get_boot_ns, bpf_perf_event_output, bpf_probe_read_user,
        },
    },
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::{Array, PerCpuArray, PerfEventByteArray, RingBuf},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use format::raw::{
    FLAG_OPTLEN_IN_UNREADABLE, FLAG_OPTLEN_OUT_UNREADABLE, FLAG_VALUE_TRUNCATED,
    FLAG_VALUE_UNREADABLE, MAX_SNAPLEN, NAMES_ROOM, RAW_HEADER_SIZE, RawEvent, RawEventHeader,
};
use recorder_ebpf::{
    Config, CpuState, FILL_CHECK_EVERY, FILTER_CGROUP, FILTER_COMM, FILTER_ERRORS_ONLY,
    FILTER_LEVEL, FILTER_OPTNAME, FILTER_PID, FILTER_UID, INFLIGHT_MAX_ENTRIES, LossSlot, Pending,
    TASK_IDS_TTL_NS, TaskOffsets, claim_is_stale, claim_tid, claim_word,
};

/// Resized by the loader (`--ringbuf-size`); this is only the size in the object file.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// The per-CPU perf buffers (`--buffer perf`, kernels before 5.8): one entry per CPU, which
/// user space fills with its perf events.
#[map]
static EVENTS_PERF: PerfEventByteArray = PerfEventByteArray::new(0);

/// Set by the loader: 1 sends every record to [`EVENTS_PERF`], 0 to [`EVENTS`]. A read-only
/// global, frozen before the programs load, so the verifier knows it as a constant and never
/// visits the other branch: on a kernel without the ring buffer no `bpf_ringbuf_*` call is
/// left for it to refuse (unvisited code is removed before helper calls are resolved).
#[unsafe(no_mangle)]
static PERF_BUFFER: u32 = 0;

/// Set by the loader on kernels before 5.16: fentry reads its `int __user *optlen` argument
/// with `bpf_probe_read_kernel` instead of a context load, which those verifiers refuse
/// (`arg4 type INT is not a struct`: only pointers to structs and `char *` may be read).
#[unsafe(no_mangle)]
static FENTRY_READ_ARGS: u32 = 0;

#[inline(always)]
fn perf_buffer() -> bool {
    // SAFETY: a plain read of an immutable static; volatile so that LLVM does not fold it to
    // the 0 in the object.
    unsafe { core::ptr::read_volatile(&raw const PERF_BUFFER) != 0 }
}

/// Hands a record to the buffer in use; false if it had no room (the caller counts the loss).
/// `ctx` is the program's own context, which `bpf_perf_event_output` requires.
#[inline(always)]
fn emit(ctx: *mut c_void, bytes: &[u8], wake: u64) -> bool {
    if !perf_buffer() {
        return EVENTS.output::<[u8]>(bytes, wake).is_ok();
    }
    // SAFETY: `bytes` is readable for its length; the map is the perf event array above
    // (`PerfEventByteArray` is a transparent map definition); the helper copies the bytes.
    unsafe {
        bpf_perf_event_output(
            ctx,
            (&raw const EVENTS_PERF).cast_mut().cast(),
            BPF_F_CURRENT_CPU,
            bytes.as_ptr().cast_mut().cast(),
            bytes.len() as u64,
        ) == 0
    }
}

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// The call each thread has in flight, in slot `tid & Config::inflight_mask`. An array, not a
/// hash map: the verifier inlines an array lookup (no helper call, no hashing, no bucket
/// lock), and entries need no insert or delete.
///
/// Threads whose tids share the low bits share a slot, so it is claimed: the entry program
/// compare-and-swaps `Pending::owner` from free (0) to its own claim word and only then writes
/// the other fields; the exit program copies the fields and releases the slot by swapping its
/// claim word back to 0, and records the call only if that swap succeeds. A call that finds
/// the slot held by another thread's call is counted as lost at once; a claim older than
/// `CLAIM_STALE_NS` (an exit that never came) is taken over and counted as lost by the taker,
/// which is why the exit must swap rather than store. So every call made while both programs
/// are attached is either recorded or counted exactly once (the loader attaches the exit
/// program first, so no claim is left without an exit program to release it).
#[map]
static INFLIGHT: Array<Pending> = Array::with_max_entries(INFLIGHT_MAX_ENTRIES, 0);

#[inline(always)]
fn inflight_slot(cfg: &Config, pid_tgid: u64) -> Option<*mut Pending> {
    INFLIGHT.get_ptr_mut(pid_tgid as u32 & cfg.inflight_mask & (INFLIGHT_MAX_ENTRIES - 1))
}

/// Compare-and-swap of `*word` from `old` to `new`; returns what `*word` held.
///
/// BPF_CMPXCHG (kernel 5.12+) as one instruction of inline assembly: rustc builds for the
/// generic BPF CPU, without atomics (the target has `atomic_cas` off and passes
/// `--cpu generic` to bpf-linker, which refuses a second `--cpu`), and the assembler takes
/// the instruction whatever the CPU. Raising the whole object to CPU v3 would also change
/// the code of every other program for the sake of this one instruction.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn cas(word: *mut u64, old: u64, new: u64) -> u64 {
    let prev: u64;
    // SAFETY: `word` points into a map value, 8-byte aligned (checked by the verifier); the
    // instruction reads and writes only those 8 bytes and r0.
    unsafe {
        core::arch::asm!(
            "r0 = cmpxchg_64(r1 + 0, r0, r2)",
            in("r1") word,
            inout("r0") old => prev,
            in("r2") new,
            options(nostack),
        );
    }
    prev
}

/// The host build (clippy) has no BPF atomics; the same operation through core's.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
fn cas(word: *mut u64, old: u64, new: u64) -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
    // SAFETY: as above; never run, only type-checked.
    let word = unsafe { AtomicU64::from_ptr(word) };
    word.compare_exchange(old, new, SeqCst, SeqCst)
        .unwrap_or_else(|v| v)
}

/// Claims `slot` for thread `tid` entering at `now`; false if the call cannot be recorded
/// (another thread's call holds the slot, or won it first). Counts a stale claim it displaces.
///
/// Without `EXACT` (kernels before 5.12, no BPF_CMPXCHG) the slot is claimed by plain stores,
/// as before the swap existed: the later entry displaces, and counts, an earlier call, and an
/// exit releasing its slot just as another thread claims it can lose that call uncounted.
#[inline(always)]
fn claim<const EXACT: bool>(cfg: &Config, slot: *mut Pending, tid: u32, now: u64) -> bool {
    // SAFETY: an in-bounds array slot; `owner` is only changed by compare-and-swap.
    let owner = unsafe { &raw mut (*slot).owner };
    // SAFETY: as above; a plain read, checked by the swap below.
    let seen = unsafe { owner.read_volatile() };
    if !EXACT {
        if seen != 0 {
            count_loss(cfg, now);
        }
        // SAFETY: as above (the protocol for kernels without compare-and-swap).
        unsafe { owner.write_volatile(claim_word(tid, now)) };
        return true;
    }
    // A claim of this same tid is one whose exit never came: a thread has one call at a time.
    if seen != 0 && claim_tid(seen) != tid && !claim_is_stale(seen, now) {
        return false;
    }
    if cas(owner, seen, claim_word(tid, now)) != seen {
        return false;
    }
    if seen != 0 {
        count_loss(cfg, now);
    }
    true
}

/// A `RawEvent` is 2 KiB, far over the 512-byte BPF stack: build it in a per-CPU slot instead.
#[map]
static SCRATCH: PerCpuArray<RawEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
static CPU_STATE: PerCpuArray<CpuState> = PerCpuArray::with_max_entries(1, 0);

#[map]
static LOSSES: PerCpuArray<LossSlot> = PerCpuArray::with_max_entries(1, 0);

// ---- attach modes -------------------------------------------------------------------------

// Offsets in the `syscalls/sys_enter_getsockopt` record (see its `format` file in tracefs):
// after the 8-byte common header and the 8-byte syscall number, one 8-byte slot per argument.
const TP_FD: usize = 16;
const TP_LEVEL: usize = 24;
const TP_OPTNAME: usize = 32;
const TP_OPTVAL: usize = 40;
const TP_OPTLEN: usize = 48;
// `sys_exit_getsockopt`: the return value follows the syscall number.
const TP_RET: usize = 16;

#[inline(always)]
fn tp_field(ctx: &TracePointContext, offset: usize) -> u64 {
    // SAFETY: tracepoint programs may load from their context directly; every offset used is
    // an 8-byte-aligned field inside the syscall tracepoint record (checked by the verifier).
    unsafe { *(ctx.as_ptr().cast::<u8>().add(offset).cast::<u64>()) }
}

// Every program comes twice: `gsot_*` claims in-flight slots by compare-and-swap (exact) and
// `gsot_*_plain` by plain stores, for kernels before 5.12, whose verifier refuses any
// BPF_CMPXCHG in a program's instructions, reachable or not (see `claim`). The loader picks.
macro_rules! exact_and_plain {
    ($(#[$attr:meta])* $exact:ident, $plain:ident, $ctx:ty, $body:ident) => {
        $(#[$attr])*
        pub fn $exact(ctx: $ctx) -> u32 {
            $body::<true>(&ctx)
        }
        $(#[$attr])*
        pub fn $plain(ctx: $ctx) -> u32 {
            $body::<false>(&ctx)
        }
    };
}

exact_and_plain!(
    #[tracepoint]
    gsot_tp_enter,
    gsot_tp_enter_plain,
    TracePointContext,
    tp_enter
);
exact_and_plain!(
    #[tracepoint]
    gsot_tp_exit,
    gsot_tp_exit_plain,
    TracePointContext,
    tp_exit
);
exact_and_plain!(
    #[kprobe]
    gsot_kprobe_enter,
    gsot_kprobe_enter_plain,
    ProbeContext,
    kprobe_enter
);
exact_and_plain!(
    #[cfg(bpf_target_arch = "x86_64")]
    #[kprobe]
    gsot_kprobe_enter_wrapped,
    gsot_kprobe_enter_wrapped_plain,
    ProbeContext,
    kprobe_enter_wrapped
);
exact_and_plain!(
    #[kretprobe]
    gsot_kretprobe_exit,
    gsot_kretprobe_exit_plain,
    RetProbeContext,
    kretprobe_exit
);
exact_and_plain!(
    #[fentry(function = "__sys_getsockopt")]
    gsot_fentry_enter,
    gsot_fentry_enter_plain,
    FEntryContext,
    fentry_enter
);
exact_and_plain!(
    #[fexit(function = "__sys_getsockopt")]
    gsot_fexit_exit,
    gsot_fexit_exit_plain,
    FExitContext,
    fexit_exit
);

#[inline(always)]
fn tp_enter<const EXACT: bool>(ctx: &TracePointContext) -> u32 {
    on_enter::<EXACT>(
        tp_field(ctx, TP_FD) as i32,
        tp_field(ctx, TP_LEVEL) as i32,
        tp_field(ctx, TP_OPTNAME) as i32,
        tp_field(ctx, TP_OPTVAL),
        tp_field(ctx, TP_OPTLEN),
    );
    0
}

#[inline(always)]
fn tp_exit<const EXACT: bool>(ctx: &TracePointContext) -> u32 {
    on_exit::<EXACT>(ctx.as_ptr(), tp_field(ctx, TP_RET) as i64);
    0
}

/// On `__sys_getsockopt(int fd, int level, int optname, char __user *optval, int __user *optlen)`.
#[inline(always)]
fn kprobe_enter<const EXACT: bool>(ctx: &ProbeContext) -> u32 {
    let arg = |n| ctx.arg::<u64>(n).unwrap_or(0);
    on_enter::<EXACT>(arg(0) as i32, arg(1) as i32, arg(2) as i32, arg(3), arg(4));
    0
}

/// On `__x64_sys_getsockopt(const struct pt_regs *regs)`: the syscall's arguments are in the
/// user-space registers the wrapper receives (rdi, rsi, rdx, r10, r8).
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn kprobe_enter_wrapped<const EXACT: bool>(ctx: &ProbeContext) -> u32 {
    use aya_ebpf::bindings::pt_regs;
    let Some(regs) = ctx.arg::<*const pt_regs>(0) else {
        return 0;
    };
    // SAFETY: bpf_probe_read_kernel copies the struct from kernel memory and fails cleanly
    // (instead of faulting) if the pointer is bad.
    let Ok(user) = (unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(regs) }) else {
        return 0;
    };
    on_enter::<EXACT>(
        user.rdi as i32,
        user.rsi as i32,
        user.rdx as i32,
        user.r10,
        user.r8,
    );
    0
}

/// Shared by both kprobe entry programs: `__sys_getsockopt` and the wrapper return the same.
#[inline(always)]
fn kretprobe_exit<const EXACT: bool>(ctx: &RetProbeContext) -> u32 {
    on_exit::<EXACT>(ctx.as_ptr(), ctx.ret::<u64>() as i32 as i64);
    0
}

#[inline(always)]
fn fentry_enter<const EXACT: bool>(ctx: &FEntryContext) -> u32 {
    // SAFETY: as in `perf_buffer`.
    let optlen = if unsafe { core::ptr::read_volatile(&raw const FENTRY_READ_ARGS) } != 0 {
        // black_box: else LLVM computes `ctx + 32` once for both branches, and the context
        // load of the other one through a modified ctx pointer is refused (6.1, 6.12).
        let base = core::hint::black_box(ctx.as_ptr().cast::<u64>());
        // SAFETY: the context is the trampoline's array of the five u64 arguments; the helper
        // copies slot 4 and fails cleanly (instead of faulting) on a bad address.
        let slot = unsafe { base.add(4) };
        // SAFETY: as above.
        unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(slot) }.unwrap_or(0)
    } else {
        ctx.arg::<u64>(4)
    };
    on_enter::<EXACT>(
        ctx.arg::<u64>(0) as i32,
        ctx.arg::<u64>(1) as i32,
        ctx.arg::<u64>(2) as i32,
        ctx.arg::<u64>(3),
        optlen,
    );
    0
}

/// fexit's context holds the five arguments followed by the return value, so reading slot 5
/// works on every kernel with fexit (`bpf_get_func_ret` needs 5.17).
#[inline(always)]
fn fexit_exit<const EXACT: bool>(ctx: &FExitContext) -> u32 {
    on_exit::<EXACT>(ctx.as_ptr(), ctx.arg::<u64>(5) as i32 as i64);
    0
}

// ---- the floor: empty programs on the same hooks ------------------------------------------
//
// `recorder bench` attaches these to measure what the hook itself costs a call (the kernel's
// tracepoint, kprobe or trampoline machinery), apart from what the recorder's programs do.

#[tracepoint]
pub fn gsot_floor_tp(_ctx: TracePointContext) -> u32 {
    0
}

#[kprobe]
pub fn gsot_floor_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[kretprobe]
pub fn gsot_floor_kretprobe(_ctx: RetProbeContext) -> u32 {
    0
}

#[fentry(function = "__sys_getsockopt")]
pub fn gsot_floor_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[fexit(function = "__sys_getsockopt")]
pub fn gsot_floor_fexit(_ctx: FExitContext) -> u32 {
    0
}

// ---- the shared code path -----------------------------------------------------------------

#[inline(always)]
fn comm_words(comm: &[u8; 16]) -> [u64; 2] {
    // SAFETY: [u8; 16] and [u64; 2] have the same size and every bit pattern is valid for both;
    // comparing as two words avoids a memcmp call, which BPF does not have.
    unsafe { core::mem::transmute::<[u8; 16], [u64; 2]>(*comm) }
}

/// Copies a comm as two 8-byte words. A plain `[u8; 16]` assignment between two maps compiles
/// to a call of a `memmove` subprogram (a BPF-to-BPF call, a return through the SRSO thunk and
/// a byte loop), which the exit program would pay on every event.
#[inline(always)]
fn copy_comm(dst: &mut [u8; 16], src: &[u8; 16]) {
    let (d, s) = (dst.as_mut_ptr().cast::<u64>(), src.as_ptr().cast::<u64>());
    // SAFETY: both arrays are 8-byte aligned (checked below for the two structs used), and
    // 16 bytes are two words.
    unsafe {
        d.write_volatile(s.read_volatile());
        d.add(1).write_volatile(s.add(1).read_volatile());
    }
}
const _: () = assert!(
    core::mem::offset_of!(format::raw::RawEventHeader, comm) % 8 == 0
        && core::mem::align_of::<format::raw::RawEventHeader>() >= 8
        && core::mem::offset_of!(CpuState, comm) % 8 == 0
        && core::mem::align_of::<CpuState>() >= 8
);

#[inline(always)]
fn passes_entry_filters(cfg: &Config, tgid: u32, level: i32, optname: i32) -> bool {
    let f = cfg.filters;
    if f & FILTER_PID != 0 && tgid != cfg.pid {
        return false;
    }
    if f & FILTER_LEVEL != 0 && level != cfg.level {
        return false;
    }
    if f & FILTER_OPTNAME != 0 && optname != cfg.optname {
        return false;
    }
    if f & FILTER_UID != 0 && bpf_get_current_uid_gid() as u32 != cfg.uid {
        return false;
    }
    // SAFETY: helper without arguments.
    if f & FILTER_CGROUP != 0 && unsafe { bpf_get_current_cgroup_id() } != cfg.cgroup_id {
        return false;
    }
    if f & FILTER_COMM != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        if comm_words(&comm) != comm_words(&cfg.comm) {
            return false;
        }
    }
    true
}

#[inline(always)]
fn on_enter<const EXACT: bool>(fd: i32, level: i32, optname: i32, optval: u64, optlen: u64) {
    let Some(cfg) = CONFIG.get(0) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == cfg.self_tgid || !passes_entry_filters(cfg, tgid, level, optname) {
        return;
    }
    if !sock::capture(cfg, pid_tgid, fd) {
        return;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let Some(slot) = inflight_slot(cfg, pid_tgid) else {
        return;
    };
    if !claim::<EXACT>(cfg, slot, pid_tgid as u32, now) {
        count_loss(cfg, now);
        return;
    }
    let mut optlen_in = 0;
    let mut flags = 0;
    // SAFETY: bpf_probe_read_user fails cleanly on a bad user pointer; the destination is
    // the BPF stack.
    match unsafe { aya_ebpf::helpers::bpf_probe_read_user(optlen as *const i32) } {
        Ok(v) => optlen_in = v,
        Err(_) => flags |= u32::from(FLAG_OPTLEN_IN_UNREADABLE),
    }
    // SAFETY: this thread holds the slot's claim, so no other program writes these fields
    // until its exit releases it (a taker of a stale claim writes only after its swap, a
    // second later). `owner` is left alone: only the swaps change it.
    unsafe {
        (*slot).ts_enter_ns = now;
        (*slot).pid_tgid = pid_tgid;
        (*slot).optval_ptr = optval;
        (*slot).optlen_ptr = optlen;
        (*slot).fd = fd;
        (*slot).level = level;
        (*slot).optname = optname;
        (*slot).optlen_in = optlen_in;
        (*slot).flags = flags;
    }
}

/// `bpf_probe_read_user` of `len` bytes at user address `src` into `dst`; true if it worked
/// (on failure the helper zeroes `dst`).
#[inline(always)]
fn read_user<T>(dst: *mut T, len: u32, src: u64) -> bool {
    // SAFETY: the helper writes at most `len` bytes at `dst` (every caller passes a `dst` with
    // room for them) and fails cleanly on a bad user pointer.
    unsafe { bpf_probe_read_user(dst.cast::<c_void>(), len, src as *const c_void) == 0 }
}

#[inline(always)]
fn on_exit<const EXACT: bool>(ctx: *mut c_void, ret: i64) {
    let Some(cfg) = CONFIG.get(0) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(slot) = inflight_slot(cfg, pid_tgid) else {
        return;
    };
    // SAFETY: an in-bounds array slot; `owner` is only changed by compare-and-swap.
    let owner = unsafe { &raw mut (*slot).owner };
    // SAFETY: as above.
    let word = unsafe { owner.read_volatile() };
    if word == 0 || claim_tid(word) != pid_tgid as u32 {
        // The entry was filtered out, the call began before the capture, or it found the
        // slot taken (counted as a loss there).
        return;
    }
    // SAFETY: as above. Copied before the release: once released, the next claim rewrites it.
    let pending = unsafe { slot.read_volatile() };
    if !EXACT {
        // SAFETY: as above (the protocol for kernels without compare-and-swap).
        unsafe { owner.write_volatile(0) };
    } else if cas(owner, word, 0) != word {
        // Taken over as stale while in flight, and counted as lost by the taker.
        return;
    }
    if pending.pid_tgid != pid_tgid {
        // A claim left by an exited thread whose tid this one reuses: its exit was missed.
        count_loss(cfg, pending.ts_enter_ns);
        return;
    }
    let ret = ret as i32;
    if cfg.filters & FILTER_ERRORS_ONLY != 0 && ret >= 0 {
        return;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // --max-rate: the call is counted; only a sample goes on to be recorded.
    let call = agg::Call {
        tgid: (pid_tgid >> 32) as u32,
        level: pending.level,
        optname: pending.optname,
        ret,
        duration_ns: now.wrapping_sub(pending.ts_enter_ns),
    };
    if !agg::keep_event(cfg, &call) {
        return;
    }
    let flags = pending.flags as u16;
    let Some(state) = CPU_STATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only touched by this program on this CPU (programs do not migrate
    // CPUs and this one cannot nest with itself on a CPU).
    let state = unsafe { &mut *state };
    refresh_task_ids(cfg, state, pid_tgid, now);
    let wake = u64::from(wakeup_flag(cfg, state));
    let done = Done { pid_tgid, now, ret };
    if small_record(&pending, &done, state, cfg.snaplen, flags, wake) {
        return;
    }
    let Some(ev) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU slot is ours until this program returns (see CPU_STATE above).
    let ev = unsafe { &mut *ev };
    let mut flags = flags;
    let (optlen_out, value_len) = read_optlen_and_value(ev, &pending, ret, cfg.snaplen, &mut flags);
    // After the reads: a window read may have landed partly on the header.
    fill_header(
        &mut ev.header,
        &pending,
        &done,
        state,
        (optlen_out, value_len, flags),
    );
    let names = sock::copy_out(ev, pid_tgid, value_len);
    // The mask, after black_box so LLVM cannot drop it, gives older verifiers (6.1) a bound
    // they cannot derive from `n <= covered` (a comparison of two registers).
    let size = RAW_HEADER_SIZE
        + (core::hint::black_box(value_len as usize) & (MAX_SNAPLEN - 1))
        + (core::hint::black_box(names) & (NAMES_ROOM - 1));
    // SAFETY: `size` <= RAW_HEADER_SIZE + MAX_SNAPLEN - 1 + NAMES_ROOM - 1 < size_of::<RawEvent>(),
    // so the slice stays inside the scratch slot.
    let bytes = unsafe { core::slice::from_raw_parts((ev as *const RawEvent).cast::<u8>(), size) };
    if !emit(ctx, bytes, wake) {
        agg::count_output_loss(cfg, now);
    }
}

/// What the exit program knows of the call besides its `Pending`.
struct Done {
    pid_tgid: u64,
    now: u64,
    ret: i32,
}

/// pid_tgid alone tells tasks apart here: a global pid is not reused within the TTL. So the
/// ids (helper calls and eight kernel reads) are only read again when the task or the TTL says.
#[inline(always)]
fn refresh_task_ids(cfg: &Config, state: &mut CpuState, pid_tgid: u64, now: u64) {
    if state.pid_tgid == pid_tgid && now.wrapping_sub(state.ids_read_ns) <= TASK_IDS_TTL_NS {
        return;
    }
    // SAFETY: helper without arguments; the pointer is only probe-read.
    let task = unsafe { bpf_get_current_task() };
    let ids = task_ids(task, &cfg.offsets);
    state.task = task;
    state.pid_tgid = pid_tgid;
    state.ids_read_ns = now;
    state.uid_gid = bpf_get_current_uid_gid();
    // SAFETY: helper without arguments.
    state.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    state.comm = bpf_get_current_comm().unwrap_or_default();
    state.ppid = ids.ppid;
    state.pid_ns = ids.pid_ns;
    state.mnt_ns = ids.mnt_ns;
}

/// No wakeup (user space drains on a timer) unless the ring buffer is filling up, which is
/// only asked once per `FILL_CHECK_EVERY` records (a helper call). Perf buffers wake user
/// space by their own watermark (set when user space opens them).
#[inline(always)]
fn wakeup_flag(cfg: &Config, state: &mut CpuState) -> u32 {
    if perf_buffer() {
        return BPF_RB_NO_WAKEUP;
    }
    state.since_fill_check += 1;
    if state.since_fill_check < FILL_CHECK_EVERY {
        return BPF_RB_NO_WAKEUP;
    }
    state.since_fill_check = 0;
    if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= u64::from(cfg.wakeup_threshold) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Every header field; `out` is (`*optlen` at exit, value bytes, flags).
#[inline(always)]
fn fill_header(
    h: &mut RawEventHeader,
    pending: &Pending,
    done: &Done,
    state: &CpuState,
    out: (i32, u32, u16),
) {
    h.ts_enter_ns = pending.ts_enter_ns;
    h.duration_ns = done.now.wrapping_sub(pending.ts_enter_ns);
    h.cgroup_id = state.cgroup_id;
    h.optval_ptr = pending.optval_ptr;
    h.optlen_ptr = pending.optlen_ptr;
    h.tgid = (done.pid_tgid >> 32) as u32;
    h.tid = done.pid_tgid as u32;
    h.uid = state.uid_gid as u32;
    h.gid = (state.uid_gid >> 32) as u32;
    // SAFETY: helper without arguments (inlined by the JIT).
    h.cpu = unsafe { bpf_get_smp_processor_id() };
    h.fd = pending.fd;
    h.level = pending.level;
    h.optname = pending.optname;
    h.optlen_in = pending.optlen_in;
    h.optlen_out = out.0;
    h.ret = done.ret;
    h.value_len = out.1 as u16;
    h.flags = out.2;
    h._pad0 = 0;
    copy_comm(&mut h.comm, &state.comm);
    h.ppid = state.ppid;
    h.pid_ns = state.pid_ns;
    h.mnt_ns = state.mnt_ns;
}

/// Value bytes a small record holds, and the bytes of its one user read (from the lower of
/// `optval` and `optlen`).
const SMALL_VALUE: usize = 16;

/// A record built in place in the ring buffer, for a value of at most [`SMALL_VALUE`] bytes
/// whose `*optlen` lies within [`SMALL_VALUE`] bytes of it (the usual `int v; socklen_t len;`):
/// one user read straight into the record and a submit, instead of a read into the per-CPU
/// scratch record and a copy of it into the ring buffer. User space reads `value_len` bytes of
/// value and ignores the rest.
#[repr(C)]
struct SmallRecord {
    header: RawEventHeader,
    value: [u8; SMALL_VALUE],
}

/// Records the call as a [`SmallRecord`] if it is one; false (nothing recorded) if it is not,
/// or if the ring buffer is full (the larger path then counts the loss).
#[inline(always)]
fn small_record(
    pending: &Pending,
    done: &Done,
    state: &CpuState,
    snaplen: u32,
    flags: u16,
    wake: u64,
) -> bool {
    let (optval, optlen_ptr) = (pending.optval_ptr, pending.optlen_ptr);
    // Perf buffers have no reserve: records go through the scratch slot. AF_UNIX names go
    // after the value: no room for them here.
    if perf_buffer()
        || optval == 0
        || pending.optlen_in > SMALL_VALUE as i32
        || sock::names_len(done.pid_tgid) != 0
    {
        return false;
    }
    let lo = if optlen_ptr < optval {
        optlen_ptr
    } else {
        optval
    };
    let back = optval - lo;
    let optlen_at = optlen_ptr - lo;
    if back >= SMALL_VALUE as u64 || optlen_at > SMALL_VALUE as u64 - 4 {
        return false;
    }
    let Some(mut rec) = EVENTS.reserve::<SmallRecord>(0) else {
        return false;
    };
    let r = rec.as_mut_ptr();
    // `RAW_HEADER_SIZE - back`, as a constant plus a masked non-negative variable: the
    // verifier refuses a helper's memory argument at a variable offset that may be negative
    // (which subtracting `back` from the pointer gives), and black_box keeps LLVM from
    // folding the mask away (older verifiers, 6.1, need it after a spill).
    let up = core::hint::black_box(SMALL_VALUE - 1 - back as usize) & (SMALL_VALUE - 1);
    let start = RAW_HEADER_SIZE - (SMALL_VALUE - 1) + up;
    // SAFETY: `start` >= RAW_HEADER_SIZE - SMALL_VALUE + 1 and the read's SMALL_VALUE bytes end
    // by RAW_HEADER_SIZE + SMALL_VALUE, inside the reserved record.
    let dst = unsafe { r.cast::<u8>().add(start) };
    if !read_user(dst, SMALL_VALUE as u32, lo) {
        rec.discard(0);
        return false;
    }
    // Where `*optlen` landed, from the record's start, checked against the record's end in
    // one register: the verifier (6.1) cannot tell that one of `back` and `optlen_at` is 0.
    let at = core::hint::black_box(start + optlen_at as usize);
    if at > core::mem::size_of::<SmallRecord>() - 4 {
        rec.discard(0);
        return false;
    }
    // SAFETY: `at` + 4 <= the record's size, and inside what was just read.
    let optlen_out = unsafe { r.cast::<u8>().add(at).cast::<i32>().read_unaligned() };
    let mut flags = flags;
    let mut value_len = 0;
    if done.ret == 0 && optlen_out > 0 {
        let n = (optlen_out as u32).min(snaplen);
        if n > SMALL_VALUE as u32 - back as u32 {
            rec.discard(0);
            return false;
        }
        if optlen_out as u32 > n {
            flags |= FLAG_VALUE_TRUNCATED;
        }
        value_len = n;
    }
    // SAFETY: `r` is the reserved record, ours until submitted; after the read, which may have
    // landed partly on the header.
    fill_header(
        unsafe { &mut (*r).header },
        pending,
        done,
        state,
        (optlen_out, value_len, flags),
    );
    // SAFETY: as above.
    let socket = unsafe { &raw mut (*r).header.socket };
    if sock::copy_header(socket, done.pid_tgid) != 0 {
        // Names appeared since the check (another thread took the slot): none recorded here.
        // SAFETY: as above.
        unsafe { ((*socket).unix_path_len, (*socket).unix_peer_len) = (0, 0) };
    }
    rec.submit(wake);
    true
}

/// Bytes of user memory read at once at exit when `*optlen` and the value's start lie within
/// them: one `bpf_probe_read_user` (about 100 ns here, whatever the size up to this) instead of
/// two. A power of two, for the verifier's bounds.
const WINDOW: u32 = 64;
const _: () = assert!(WINDOW.is_power_of_two() && (WINDOW as usize) < RAW_HEADER_SIZE);

/// Reads `*optlen` and, for a call that succeeded with a value, up to `snaplen` value bytes into
/// `ev.value`. Returns `*optlen` (0 if unreadable) and the number of value bytes; sets `flags`.
///
/// When the value's start and `*optlen` are close (the usual `int v; socklen_t len;` on one
/// stack), one read of [`WINDOW`] bytes from the lower of the two addresses fetches both, into
/// the scratch record so that the value lands at `ev.value[0]` (a lower `optlen` lands in the
/// header, which is written afterwards). It reads the same bytes two reads would; if it fails
/// (it spans more memory than either), the two reads are made as before.
#[inline(always)]
fn read_optlen_and_value(
    ev: &mut RawEvent,
    pending: &Pending,
    ret: i32,
    snaplen: u32,
    flags: &mut u16,
) -> (i32, u32) {
    let (optval, optlen_ptr) = (pending.optval_ptr, pending.optlen_ptr);
    let value = ev.value.as_mut_ptr();
    let mut optlen_out: i32 = 0;
    let mut have_optlen = false;
    // Value bytes the window holds, from `ev.value[0]`.
    let mut covered: u32 = 0;
    if optval != 0 {
        let lo = if optlen_ptr < optval {
            optlen_ptr
        } else {
            optval
        };
        let back = optval - lo; // window bytes before the value: they land in the header
        let optlen_at = optlen_ptr - lo; // where *optlen is in the window
        // One of `back` and `optlen_at` is 0. A window from an `optlen` WINDOW or more below
        // the value would miss the value entirely: no gain then.
        if back < u64::from(WINDOW) && optlen_at <= u64::from(WINDOW) - 4 {
            // Offset from the record's start, not back from the value: the verifier refuses
            // a variable offset below a map value pointer.
            let start = core::hint::black_box(RAW_HEADER_SIZE - back as usize);
            // SAFETY: `back` < WINDOW < RAW_HEADER_SIZE, so the window starts inside `ev`,
            // and its WINDOW bytes end inside `ev.value`.
            let dst = unsafe { (&raw mut *ev).cast::<u8>().add(start) };
            if read_user(dst, WINDOW, lo) {
                // The mask, after black_box so LLVM cannot drop it, is for older verifiers
                // (6.1), which lose the bound checked above once the value is spilled.
                let at = core::hint::black_box(optlen_at as usize) & (WINDOW as usize - 1);
                // SAFETY: `at` + 4 <= WINDOW, inside what was just read.
                optlen_out = unsafe { dst.add(at).cast::<i32>().read_unaligned() };
                have_optlen = true;
                covered = WINDOW - back as u32;
            }
        }
    }
    if !have_optlen {
        let mut v: i32 = 0;
        if read_user(&raw mut ev.header.optlen_out, 4, optlen_ptr) {
            v = ev.header.optlen_out;
        } else {
            *flags |= FLAG_OPTLEN_OUT_UNREADABLE;
        }
        optlen_out = v;
    }

    if ret != 0 || optlen_out <= 0 || optval == 0 {
        return (optlen_out, 0);
    }
    let available = optlen_out as u32;
    let mut n = if available < snaplen {
        available
    } else {
        snaplen
    };
    if available > n {
        *flags |= FLAG_VALUE_TRUNCATED;
    }
    if n <= covered {
        return (optlen_out, n);
    }
    // The verifier needs a provable bound on the copy length: the scratch value is
    // MAX_SNAPLEN bytes, and MAX_SNAPLEN - 1 is an all-ones mask (the loader caps the
    // snaplen there too, so the mask never cuts a value short).
    n &= MAX_SNAPLEN as u32 - 1;
    if read_user(value, n, optval) {
        (optlen_out, n)
    } else {
        *flags |= FLAG_VALUE_UNREADABLE;
        (optlen_out, 0)
    }
}

struct TaskIds {
    ppid: u32,
    pid_ns: u32,
    mnt_ns: u32,
}

#[inline(always)]
fn read_kernel<T>(base: u64, offset: u64) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel fails cleanly (no fault) on an unmapped address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel((base + offset) as *const T) }.ok()
}

/// ppid and the pid/mount namespace inode numbers of the current task, by following the
/// pointers the loader located in this kernel's BTF. Zeros when the loader found no offsets.
#[inline(always)]
fn task_ids(task: u64, o: &TaskOffsets) -> TaskIds {
    let mut ids = TaskIds {
        ppid: 0,
        pid_ns: 0,
        mnt_ns: 0,
    };
    if o.task_real_parent == 0 {
        return ids;
    }
    if let Some(parent) = read_kernel::<u64>(task, o.task_real_parent.into()) {
        ids.ppid = read_kernel::<u32>(parent, o.task_tgid.into()).unwrap_or(0);
    }
    if let Some(nsproxy) = read_kernel::<u64>(task, o.task_nsproxy.into())
        && let Some(mnt) = read_kernel::<u64>(nsproxy, o.nsproxy_mnt_ns.into())
    {
        ids.mnt_ns = read_kernel::<u32>(mnt, o.mnt_ns_inum.into()).unwrap_or(0);
    }
    // The active pid namespace is the one of the task's own pid at its deepest level:
    // thread_pid->numbers[thread_pid->level].ns (what task_active_pid_ns() returns).
    if let Some(pid) = read_kernel::<u64>(task, o.task_thread_pid.into())
        && let Some(level) = read_kernel::<u32>(pid, o.pid_level.into())
    {
        let level = u64::from(level & 31);
        let slot = u64::from(o.pid_numbers) + level * u64::from(o.upid_size);
        if let Some(ns) = read_kernel::<u64>(pid, slot + u64::from(o.upid_ns)) {
            ids.pid_ns = read_kernel::<u32>(ns, o.pid_ns_inum.into()).unwrap_or(0);
        }
    }
    ids
}

#[inline(always)]
fn count_loss(cfg: &Config, now: u64) {
    let Some(slot) = LOSSES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU slot is only written by these programs on this CPU.
    let slot = unsafe { &mut *slot };
    if slot.count == 0 || slot.last_ns < cfg.loss_window_ns {
        slot.first_ns = now;
    }
    slot.last_ns = now;
    slot.count += 1;
}

// The programs contain no panicking paths the verifier would accept anyway; this only satisfies
// the no_std linker. Host builds (clippy of the workspace) get std's handler instead.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_user/kernel are GPL-only helpers, so the program must declare a
// GPL-compatible licence; "Dual MIT/GPL" is one the kernel accepts.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
