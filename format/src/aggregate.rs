//! Aggregate records (FORMAT.md 5.3, since 1.4): exact call counts and a coarse latency
//! histogram per (process, level, option, result) for one period of a capture that handed
//! over only a sample of its calls as events (`recorder record --max-rate`).

use bincode::Encode;

use crate::Error;
use crate::raw::{AGG_BUCKETS, agg_bucket_range};
use crate::wire::Cursor;

/// `sample_p` of a period in which every call was handed over: 2^32.
pub const SAMPLE_ALL: u64 = 1 << 32;

/// The `tgid` of the one entry that counts the calls the kernel's map had no room for
/// (their process, option and result are not known). No Linux process has this id.
pub const OVERFLOW_TGID: u32 = u32::MAX;

/// One period of aggregate records: every call that completed from `start_ns` to `end_ns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub struct AggregatePeriod {
    /// Boot-time ns the period starts (inclusive) and ends (exclusive), by calls' exit times.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Probability, in units of 2^-32, with which each call of the period was picked for the
    /// sample of events ([`SAMPLE_ALL`]: every call).
    pub sample_p: u64,
    /// Calls the kernel picked for the sample in this period.
    pub sampled: u64,
    /// Of those, calls the sample cap turned away (the cap bounds a burst while `sample_p`
    /// catches up; such calls are counted here, not sampled).
    pub capped: u64,
    /// Of the rest, calls the kernel's buffer had no room for (in the entries, not in `LOSS`).
    pub dropped: u64,
    pub entries: Vec<AggregateEntry>,
}

/// The calls of one (tgid, level, optname, ret) in one period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub struct AggregateEntry {
    /// The process; [`OVERFLOW_TGID`] for the map's overflow entry (then the other key fields
    /// are 0).
    pub tgid: u32,
    pub level: i32,
    pub optname: i32,
    /// The return value, `0` or `-errno`, as an event's `ret`.
    pub ret: i32,
    /// Sum and maximum of the calls' durations, exact.
    pub duration_sum_ns: u64,
    pub duration_max_ns: u64,
    /// (bucket index, calls) in increasing bucket order, no count 0 ([`crate::raw::agg_bucket`]).
    pub buckets: Vec<(u32, u64)>,
}

impl AggregateEntry {
    /// Every call of the entry: the sum of its bucket counts.
    pub fn calls(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// Whether this is the overflow entry (calls whose key the kernel's map had no room for).
    pub fn is_overflow(&self) -> bool {
        self.tgid == OVERFLOW_TGID
    }

    /// The durations of bucket `i` as their range and the value they are reported as (the
    /// midpoint, within 1/16 of every duration in the bucket; the entry's maximum where the
    /// bucket's upper part lies above it).
    pub fn bucket_value(&self, i: u32) -> u64 {
        let (low, high) = agg_bucket_range(i);
        (low + (high - low) / 2).min(self.duration_max_ns).max(low)
    }
}

pub(crate) fn decode_aggregates(
    c: &mut Cursor<'_>,
    out: &mut Vec<AggregatePeriod>,
) -> Result<(), Error> {
    // Six varints and an empty list: at least 7 bytes a period.
    let n = c.seq_len(7, "the aggregate period list")?;
    for _ in 0..n {
        let at = c.offset();
        let mut p = AggregatePeriod {
            start_ns: c.varint_u64("a period start")?,
            end_ns: c.varint_u64("a period end")?,
            sample_p: c.varint_u64("a sampling probability")?,
            sampled: c.varint_u64("a sampled call count")?,
            capped: c.varint_u64("a capped call count")?,
            dropped: c.varint_u64("a dropped call count")?,
            entries: Vec::new(),
        };
        if p.start_ns > p.end_ns
            || p.sample_p > SAMPLE_ALL
            || p.capped
                .checked_add(p.dropped)
                .is_none_or(|n| n > p.sampled)
        {
            return Err(Error::malformed(
                at,
                "an aggregate period with start <= end, sample_p <= 2^32 and capped + dropped <= sampled",
            ));
        }
        // Four key varints, sum, max and an empty list: at least 7 bytes an entry.
        let m = c.seq_len(7, "an aggregate entry list")?;
        p.entries.reserve(m);
        for _ in 0..m {
            p.entries.push(decode_entry(c)?);
        }
        out.push(p);
    }
    Ok(())
}

fn decode_entry(c: &mut Cursor<'_>) -> Result<AggregateEntry, Error> {
    let mut e = AggregateEntry {
        tgid: c.varint_u32("an aggregate's process id")?,
        level: c.varint_i32("an aggregate's level")?,
        optname: c.varint_i32("an aggregate's option")?,
        ret: c.varint_i32("an aggregate's return value")?,
        duration_sum_ns: c.varint_u64("an aggregate's duration sum")?,
        duration_max_ns: c.varint_u64("an aggregate's longest duration")?,
        buckets: Vec::new(),
    };
    let n = c.seq_len(2, "an aggregate's bucket list")?;
    e.buckets.reserve(n);
    let mut next = 0u32;
    for _ in 0..n {
        let at = c.offset();
        let i = c.varint_u32("a bucket index")?;
        let calls = c.varint_u64("a bucket's call count")?;
        if i < next || i as usize >= AGG_BUCKETS || calls == 0 {
            return Err(Error::malformed(
                at,
                format!(
                    "a bucket index from {next} to {} with calls > 0, found {i} with {calls}",
                    AGG_BUCKETS - 1
                ),
            ));
        }
        next = i + 1;
        e.buckets.push((i, calls));
    }
    Ok(e)
}
