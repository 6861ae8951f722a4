//! `--max-rate` in user space: switching the kernel's aggregate generations at every flush,
//! turning the one the programs left a flush ago into a period of aggregate records
//! (FORMAT.md 5.3), and adapting the sampling probability to the rate of calls.
//!
//! Generations: the programs count into `Config::agg_gen`. At a switch, user space first
//! reads and clears the other generation, which the programs left at the previous switch, a
//! whole flush interval ago (a program runs for microseconds, with preemption off), then
//! points the programs at it. So no count is lost between a read and its clear, and none is
//! read twice. A period's records reach the file one flush after the period ends.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use format::{AggregateEntry, AggregatePeriod, OVERFLOW_TGID, SAMPLE_ALL};
use recorder_ebpf::{
    AggCounters, AggKey, AggValue, Config, MAP_AGG, MAP_AGG_COUNTERS, MAP_AGG_OVERFLOW,
    MAP_AGG_SAMPLED,
};

use crate::bpf::Probes;
use crate::sys;

/// The sampling probability aims at this share of the budget, so that the cap, which makes
/// the sample the period's first calls instead of a uniform one, is only reached when the
/// rate rises within a period.
const TARGET_SHARE: f64 = 0.8;

/// The maps of `recorder-ebpf/src/agg.rs`.
pub struct AggMaps {
    map: PerCpuHashMap<MapData, AggKey, AggValue>,
    overflow: PerCpuArray<MapData, AggValue>,
    counters: PerCpuArray<MapData, AggCounters>,
    sampled: Array<MapData, u64>,
}

impl AggMaps {
    pub(crate) fn take(ebpf: &mut aya::Ebpf) -> Result<AggMaps> {
        Ok(AggMaps {
            map: crate::bpf::take_map(ebpf, MAP_AGG)?,
            overflow: crate::bpf::take_map(ebpf, MAP_AGG_OVERFLOW)?,
            counters: crate::bpf::take_map(ebpf, MAP_AGG_COUNTERS)?,
            sampled: crate::bpf::take_map(ebpf, MAP_AGG_SAMPLED)?,
        })
    }

    /// Generation `g`'s entries (the overflow entry last, if it counted calls) and sample
    /// counters summed over the CPUs; with `clear`, also empties the generation.
    fn read(&mut self, g: u32, clear: bool) -> Result<(Vec<AggregateEntry>, AggCounters)> {
        let keys: Vec<AggKey> = self
            .map
            .keys()
            .filter(|k| k.as_ref().map_or(true, |k| k.generation == g))
            .collect::<Result<_, _>>()
            .context("listing the aggregate map's keys")?;
        let mut entries = Vec::with_capacity(keys.len() + 1);
        for k in &keys {
            let values = self.map.get(k, 0).context("reading the aggregate map")?;
            entries.extend(entry(k.tgid, k.level, k.optname, k.ret, &values));
            if clear {
                self.map.remove(k).context("clearing the aggregate map")?;
            }
        }
        let overflow = self
            .overflow
            .get(&g, 0)
            .context("reading the overflow entry")?;
        entries.extend(entry(OVERFLOW_TGID, 0, 0, 0, &overflow));
        let counters = self.counters(g)?;
        if clear {
            self.overflow.set(g, zeros()?, 0)?;
            self.counters.set(g, zeros()?, 0)?;
            self.sampled.set(g, 0, 0)?;
        }
        Ok((entries, counters))
    }
}

impl AggMaps {
    /// Generation `g`'s counters summed over the CPUs (a few words: cheap at every flush,
    /// unlike the entries, which are a value per key and CPU).
    fn counters(&self, g: u32) -> Result<AggCounters> {
        let per_cpu = self
            .counters
            .get(&g, 0)
            .context("reading the sample counters")?;
        Ok(per_cpu
            .iter()
            .fold(AggCounters::default(), |a, c| AggCounters {
                calls: a.calls + c.calls,
                sampled: a.sampled + c.sampled,
                capped: a.capped + c.capped,
                dropped: a.dropped + c.dropped,
            }))
    }
}

fn zeros<T: aya::Pod + Default>() -> Result<PerCpuValues<T>> {
    let n = sys::possible_cpus() as usize;
    PerCpuValues::try_from(vec![T::default(); n]).context("per-CPU zeros")
}

/// A key's values summed over the CPUs; `None` when no CPU counted a call.
fn entry(
    tgid: u32,
    level: i32,
    optname: i32,
    ret: i32,
    per_cpu: &PerCpuValues<AggValue>,
) -> Option<AggregateEntry> {
    let mut counts = [0u64; format::raw::AGG_BUCKETS];
    let mut e = AggregateEntry {
        tgid,
        level,
        optname,
        ret,
        ..AggregateEntry::default()
    };
    for v in per_cpu.iter() {
        for (c, &n) in counts.iter_mut().zip(&v.buckets) {
            *c += u64::from(n);
        }
        e.duration_sum_ns += v.duration_sum_ns;
        e.duration_max_ns = e.duration_max_ns.max(v.duration_max_ns);
    }
    e.buckets = (0u32..).zip(counts).filter(|&(_, n)| n > 0).collect();
    (!e.buckets.is_empty()).then_some(e)
}

/// The `--max-rate` state of a capture.
pub struct Aggregator {
    max_rate: u64,
    period: Duration,
    /// The generation the programs count into, since when, and with what sampling.
    active: u32,
    active_since_ns: u64,
    active_p: u64,
    switched: Instant,
    /// The generation left at the last switch, waiting to be read: (start, end, sample_p).
    left: Option<(u64, u64, u64)>,
}

impl Aggregator {
    /// `max_rate` events a second over the whole machine, periods of `period`.
    pub fn try_new(max_rate: u64, period: Duration) -> Result<Aggregator> {
        if max_rate == 0 {
            bail!("--max-rate must be at least 1 (events per second)");
        }
        Ok(Aggregator {
            max_rate,
            period,
            active: 0,
            active_since_ns: sys::boot_ns(),
            active_p: SAMPLE_ALL,
            switched: Instant::now(),
            left: None,
        })
    }

    /// Sets the config the programs start with.
    pub fn apply(&self, cfg: &mut Config) {
        cfg.agg_on = 1;
        cfg.agg_gen = self.active;
        cfg.sample_p = self.active_p;
        cfg.sample_cap = self.cap();
    }

    /// Header `extra` pairs (FORMAT.md 3.2).
    pub fn labels(&self) -> Vec<(String, String)> {
        vec![
            ("max_rate".into(), self.max_rate.to_string()),
            ("sampling".into(), "uniform-per-period".into()),
            ("sample_cap".into(), self.cap().to_string()),
            (
                "aggregate_period_ns".into(),
                self.period.as_nanos().to_string(),
            ),
        ]
    }

    /// Most calls sampled in one period: the budget of one period.
    fn cap(&self) -> u64 {
        (self.max_rate as f64 * self.period.as_secs_f64())
            .ceil()
            .max(1.0) as u64
    }

    /// Whether a flush interval has passed since the last switch.
    pub fn due(&self) -> bool {
        self.switched.elapsed() >= self.period
    }

    /// Reads the generation left at the last switch (its period, if any), then switches the
    /// programs over to it with the sampling probability the active one's rate asks for.
    pub fn switch(&mut self, probes: &mut Probes) -> Result<Option<AggregatePeriod>> {
        let other = 1 - self.active;
        let left = self.read_left(probes, other)?;
        let calls = probes.agg.counters(self.active)?.calls;
        let now = sys::boot_ns();
        let secs = (now.saturating_sub(self.active_since_ns) as f64 / 1e9).max(1e-3);
        let p = sample_p(self.max_rate as f64 * TARGET_SHARE, calls as f64 / secs);
        let mut cfg = *probes.config();
        cfg.agg_gen = other;
        cfg.sample_p = p;
        probes.set_config(cfg)?;
        self.left = Some((self.active_since_ns, now, self.active_p));
        (self.active, self.active_since_ns, self.active_p) = (other, now, p);
        self.switched = Instant::now();
        Ok(left)
    }

    /// At the end, after the last drain: the generation left at the last switch and the
    /// active one, up to now.
    pub fn finish(&mut self, probes: &mut Probes) -> Result<Vec<AggregatePeriod>> {
        let other = 1 - self.active;
        let mut periods: Vec<AggregatePeriod> =
            self.read_left(probes, other)?.into_iter().collect();
        let (entries, c) = probes.agg.read(self.active, false)?;
        periods.push(period(
            (self.active_since_ns, sys::boot_ns(), self.active_p),
            entries,
            c,
        ));
        Ok(periods)
    }

    fn read_left(&mut self, probes: &mut Probes, g: u32) -> Result<Option<AggregatePeriod>> {
        let Some(left) = self.left.take() else {
            return Ok(None);
        };
        let (entries, c) = probes.agg.read(g, true)?;
        Ok(Some(period(left, entries, c)))
    }
}

fn period(
    (start_ns, end_ns, sample_p): (u64, u64, u64),
    entries: Vec<AggregateEntry>,
    c: AggCounters,
) -> AggregatePeriod {
    AggregatePeriod {
        start_ns,
        end_ns,
        sample_p,
        sampled: c.sampled,
        capped: c.capped,
        dropped: c.dropped,
        entries,
    }
}

/// The probability (in 2^-32) that samples `target` calls a second out of `rate`.
fn sample_p(target: f64, rate: f64) -> u64 {
    if rate <= target {
        return SAMPLE_ALL;
    }
    ((target / rate) * SAMPLE_ALL as f64).clamp(1.0, SAMPLE_ALL as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probability_samples_the_target_share() {
        assert_eq!(sample_p(800.0, 100.0), SAMPLE_ALL);
        assert_eq!(sample_p(800.0, 1600.0), SAMPLE_ALL / 2);
        assert_eq!(sample_p(1.0, 1e30), 1);
    }

    #[test]
    fn zero_is_refused() {
        let e = Aggregator::try_new(0, Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "--max-rate must be at least 1 (events per second)"
        );
    }
}
