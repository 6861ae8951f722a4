//! `--max-rate`: every call is counted, only a sample is handed over as events.
//!
//! The exit program counts every call it would record (so: every call not counted as lost
//! before it got here) in `AGG`, keyed by (generation, tgid, level, optname, ret), with exact
//! duration sum and maximum and a coarse latency histogram (`format::raw::agg_bucket`). It
//! then picks the call for the sample with probability `Config::sample_p` (one
//! `bpf_get_prandom_u32` per call: a uniform sample of the generation's calls whatever their
//! key or CPU), up to `Config::sample_cap` picks per generation. User space switches the
//! generation at every flush and reads and clears the other one a flush later, when no
//! program still writes it (see `recorder/src/aggregate.rs`).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::generated::bpf_get_prandom_u32,
    macros::map,
    maps::{Array, PerCpuArray, PerCpuHashMap},
};
use format::raw::{AGG_BUCKETS, agg_bucket};
use recorder_ebpf::{AGG_MAX_ENTRIES, AggCounters, AggKey, AggValue, Config};

#[map]
static AGG: PerCpuHashMap<AggKey, AggValue> = PerCpuHashMap::with_max_entries(AGG_MAX_ENTRIES, 0);

/// Per generation: the calls whose key found no room in `AGG` (an array cannot be full).
#[map]
static AGG_OVERFLOW: PerCpuArray<AggValue> = PerCpuArray::with_max_entries(2, 0);

#[map]
static AGG_COUNTERS: PerCpuArray<AggCounters> = PerCpuArray::with_max_entries(2, 0);

/// Per generation, calls let through to the ring buffer on all CPUs: one word every CPU adds
/// to, since the cap is the whole machine's (a per-CPU cap would sample a one-CPU flood at a
/// fraction of the budget).
#[map]
static AGG_SAMPLED: Array<u64> = Array::with_max_entries(2, 0);

/// Never written: the zeroed value a new key is inserted with (a map value may be a map
/// update's source; a 1.2 KiB value cannot be on the 512-byte stack).
#[map]
static AGG_ZERO: Array<AggValue> = Array::with_max_entries(1, 0);

/// What the exit program knows of a call when it decides.
pub struct Call {
    pub tgid: u32,
    pub level: i32,
    pub optname: i32,
    pub ret: i32,
    pub duration_ns: u64,
}

/// Counts the call and says whether it is to be handed over as an event. Without
/// `--max-rate` every call is, and nothing is counted.
#[inline(always)]
pub fn keep_event(cfg: &Config, call: &Call) -> bool {
    if cfg.agg_on == 0 {
        return true;
    }
    let generation = cfg.agg_gen & 1;
    count(generation, call);
    let Some(counters) = AGG_COUNTERS.get_ptr_mut(generation) else {
        return false;
    };
    // SAFETY: a per-CPU slot, only written by this program on this CPU (it cannot nest with
    // itself on a CPU); user space clears only the other generation's.
    let counters = unsafe { &mut *counters };
    counters.calls += 1;
    // SAFETY: helper without arguments.
    if u64::from(unsafe { bpf_get_prandom_u32() }) >= cfg.sample_p {
        return false;
    }
    let Some(total) = AGG_SAMPLED.get_ptr_mut(generation) else {
        return false;
    };
    counters.sampled += 1;
    // SAFETY: an in-bounds array slot. A plain read: CPUs adding at once may each pass the
    // cap by one, so a generation samples at most `sample_cap` + CPUs - 1 calls.
    if unsafe { total.read_volatile() } >= cfg.sample_cap {
        counters.capped += 1;
        return false;
    }
    atomic_add(total, 1);
    true
}

/// A sampled call the ring buffer had no room for: counted with the sample, not as lost (its
/// call is in the aggregates, which is what `LOSS` records would otherwise say it is not).
/// Without `--max-rate`, a loss as always.
#[inline(always)]
pub fn count_output_loss(cfg: &Config, now: u64) {
    if cfg.agg_on == 0 {
        crate::count_loss(cfg, now);
        return;
    }
    if let Some(c) = AGG_COUNTERS.get_ptr_mut(cfg.agg_gen & 1) {
        // SAFETY: as in `keep_event`.
        unsafe { (*c).dropped += 1 };
    }
}

#[inline(always)]
fn count(generation: u32, call: &Call) {
    let key = AggKey {
        generation,
        tgid: call.tgid,
        level: call.level,
        optname: call.optname,
        ret: call.ret,
    };
    let Some(value) = slot(&key) else {
        return;
    };
    // SAFETY: this CPU's copy of the value, only written by this program on this CPU; user
    // space reads and clears a generation only a flush after the programs left it.
    let value = unsafe { &mut *value };
    let d = call.duration_ns;
    // Clamped in the register that addresses the bucket: for a bounds check LLVM compares one
    // zero-extended copy of the index and addresses with another, which the verifiers of
    // 5.10 and 6.1 refuse ("unbounded memory access"); black_box keeps the clamp from being
    // folded into agg_bucket's own bound. (agg_bucket never exceeds the last bucket.)
    let i = core::hint::black_box(agg_bucket(d) as usize).min(AGG_BUCKETS - 1);
    // SAFETY: i < AGG_BUCKETS, the array's length.
    unsafe { *value.buckets.as_mut_ptr().add(i) += 1 };
    value.duration_sum_ns += d;
    if d > value.duration_max_ns {
        value.duration_max_ns = d;
    }
}

/// The key's value in `AGG`, inserted if new; the generation's overflow entry when the map
/// is full.
#[inline(always)]
fn slot(key: &AggKey) -> Option<*mut AggValue> {
    if let Some(v) = AGG.get_ptr_mut(key) {
        return Some(v);
    }
    let zero = AGG_ZERO.get(0)?;
    // Fails when the map is full, or when another CPU inserted the key first (then the
    // lookup below finds it).
    let _ = AGG.insert(key, zero, u64::from(BPF_NOEXIST));
    AGG.get_ptr_mut(key)
        .or_else(|| AGG_OVERFLOW.get_ptr_mut(key.generation))
}

/// `*word += n` as one BPF_XADD instruction (every kernel has it; rustc's generic BPF CPU
/// has no atomics, see `cas` in `main.rs`).
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn atomic_add(word: *mut u64, n: u64) {
    // SAFETY: `word` points into a map value, 8-byte aligned (checked by the verifier); the
    // instruction changes only those 8 bytes.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)(r1 + 0) += r2",
            in("r1") word,
            in("r2") n,
            options(nostack),
        );
    }
}

/// The host build (clippy) has no BPF atomics; the same operation through core's.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
fn atomic_add(word: *mut u64, n: u64) {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
    // SAFETY: as above; never run, only type-checked.
    unsafe { AtomicU64::from_ptr(word) }.fetch_add(n, Relaxed);
}
