//! Per-CPU perf buffers, for kernels without the BPF ring buffer (before 5.8) or `--buffer
//! perf`: one `PERF_COUNT_SW_BPF_OUTPUT` event per CPU, its fd in the programs' perf event
//! array, and its mmapped ring read here.
//!
//! Not aya's `PerfEventArray::open`: aya 0.14 opens each event with `wakeup_events = 1`, a
//! wakeup (an irq_work and a reader woken) for every record. Here the event wakes its reader
//! only at a watermark, as the ring buffer's programs wake it only when it fills up; the
//! drain otherwise reads on its timer.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, Result, bail};
use aya_obj::generated::{
    PERF_FLAG_FD_CLOEXEC, perf_event_attr, perf_event_header, perf_event_mmap_page,
    perf_event_sample_format::PERF_SAMPLE_RAW,
    perf_event_type::{PERF_RECORD_LOST, PERF_RECORD_SAMPLE},
    perf_sw_ids::PERF_COUNT_SW_BPF_OUTPUT,
    perf_type_id::PERF_TYPE_SOFTWARE,
};
use format::raw::RawEventHeader;

/// One CPU's perf event and its mmapped ring (a control page, then `size` bytes of data).
struct CpuBuffer {
    cpu: u32,
    fd: OwnedFd,
    base: *mut u8,
    size: usize,
    page: usize,
    /// PERF_RECORD_LOST counts read so far.
    lost: u64,
}

// SAFETY: the mapping is owned by this value alone (unmapped in its Drop) and only read and
// advanced through `&mut self`.
unsafe impl Send for CpuBuffer {}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, with its length; nothing borrows it any more.
        unsafe { libc::munmap(self.base.cast(), self.size + self.page) };
    }
}

/// The perf buffers of every online CPU.
pub struct PerfBuffers {
    /// The perf event array the programs write through, kept open with the buffers.
    _map: aya::maps::MapData,
    cpus: Vec<CpuBuffer>,
    /// A record that wraps around a ring's end, made contiguous.
    scratch: Vec<u8>,
}

impl PerfBuffers {
    /// Opens one buffer of `bytes` (a power of two of at least a page) per online CPU, each
    /// waking its reader once `bytes / 2` are waiting, and puts them into the perf event array
    /// `map`.
    pub fn open(map: aya::maps::MapData, bytes: usize) -> Result<PerfBuffers> {
        use std::os::fd::AsFd as _;
        let map_fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !bytes.is_power_of_two() || bytes < page {
            bail!("a perf buffer must be a power of two of at least a page: {bytes}");
        }
        let online = aya::util::online_cpus()
            .map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))
            .context("listing the online CPUs")?;
        let cpus = online
            .into_iter()
            .map(|cpu| CpuBuffer::open(map_fd, cpu, bytes, page))
            .collect::<Result<_>>()?;
        Ok(PerfBuffers {
            _map: map,
            cpus,
            scratch: Vec::new(),
        })
    }

    /// The events' descriptors, which poll readable at their watermark.
    pub fn fds(&self) -> Vec<RawFd> {
        self.cpus.iter().map(|c| c.fd.as_raw_fd()).collect()
    }

    /// Hands every waiting sample to `take` (its bytes, up to 7 of the kernel's zero padding
    /// after the record) until it returns false, and returns the PERF_RECORD_LOST counts per
    /// CPU read so far, as (cpu, total).
    ///
    /// The CPUs' samples are merged by entry time: each buffer holds one CPU's records in the
    /// order they were made, and a thread that moves between CPUs would otherwise have its
    /// calls handed over out of order (one whole buffer after the other), which the ring
    /// buffer, one queue for all CPUs, never does (a rotated file would start before the
    /// previous one ends).
    pub fn drain(&mut self, mut take: impl FnMut(&[u8]) -> bool) -> Vec<(u32, u64)> {
        let mut cursors: Vec<Cursor> = self.cpus.iter().map(CpuBuffer::cursor).collect();
        let mut lost = vec![0; cursors.len()];
        merge(&mut cursors, &mut lost, &mut self.scratch, &mut take);
        for ((c, cursor), lost) in self.cpus.iter_mut().zip(&cursors).zip(lost) {
            c.lost += lost;
            // Release: the kernel may overwrite what was read only after this.
            c.head_tail().1.store(cursor.tail, Ordering::Release);
        }
        self.cpus.iter().map(|c| (c.cpu, c.lost)).collect()
    }
}

impl CpuBuffer {
    fn open(map_fd: RawFd, cpu: u32, bytes: usize, page: usize) -> Result<CpuBuffer> {
        // SAFETY: a plain C struct; all zeros is its "nothing set" value.
        let mut attr: perf_event_attr = unsafe { std::mem::zeroed() };
        attr.type_ = PERF_TYPE_SOFTWARE as u32;
        attr.size = std::mem::size_of::<perf_event_attr>() as u32;
        attr.config = PERF_COUNT_SW_BPF_OUTPUT as u64;
        attr.sample_type = PERF_SAMPLE_RAW as u64;
        attr.__bindgen_anon_1.sample_period = 1;
        attr.set_watermark(1);
        attr.__bindgen_anon_2.wakeup_watermark = (bytes / 2) as u32;
        // SAFETY: a valid attr; all processes on one CPU, no group.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const perf_event_attr,
                -1,
                cpu as libc::c_int,
                -1,
                PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("perf_event_open of the BPF output event on CPU {cpu}"));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: maps the event's control page and data pages, shared with the kernel.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes + page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping the perf buffer of CPU {cpu} ({bytes} bytes)"));
        }
        let buf = CpuBuffer {
            cpu,
            fd,
            base: base.cast(),
            size: bytes,
            page,
            lost: 0,
        };
        map_update(map_fd, cpu, buf.fd.as_raw_fd())
            .with_context(|| format!("putting CPU {cpu}'s perf event into the perf event array"))?;
        Ok(buf)
    }

    fn head_tail(&self) -> (&AtomicU64, &AtomicU64) {
        let meta = self.base.cast::<perf_event_mmap_page>();
        // SAFETY: the control page is mapped for as long as `self`; the kernel writes
        // `data_head` and reads `data_tail` concurrently, so both are used as atomics (8-byte
        // aligned fields of a page-aligned struct).
        unsafe {
            (
                AtomicU64::from_ptr(&raw mut (*meta).data_head),
                AtomicU64::from_ptr(&raw mut (*meta).data_tail),
            )
        }
    }

    /// A reader of what the kernel wrote so far.
    fn cursor(&self) -> Cursor {
        let (head_a, tail_a) = self.head_tail();
        Cursor {
            ring: Ring {
                // SAFETY: the data pages follow the control page in the mapping.
                data: unsafe { self.base.add(self.page) },
                size: self.size,
            },
            // Acquire: the records before `data_head` are written once it is seen.
            head: head_a.load(Ordering::Acquire),
            tail: tail_a.load(Ordering::Relaxed),
        }
    }
}

/// The data pages of one perf buffer: `size` bytes (a power of two) the kernel writes records
/// into at ever-growing positions, modulo `size`.
#[derive(Clone, Copy)]
struct Ring {
    data: *const u8,
    size: usize,
}

/// Where a read of one ring is: from `tail` to `head`.
struct Cursor {
    ring: Ring,
    tail: u64,
    head: u64,
}

/// Hands the samples of every cursor to `take`, earliest entry time first, until it returns
/// false or all are read; adds each cursor's PERF_RECORD_LOST counts to its `lost`.
fn merge(
    cursors: &mut [Cursor],
    lost: &mut [u64],
    scratch: &mut Vec<u8>,
    take: &mut impl FnMut(&[u8]) -> bool,
) {
    use std::cmp::Reverse;
    let mut fronts = std::collections::BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some(ts) = c.skip_to_sample(&mut lost[i]) {
            fronts.push(Reverse((ts, i)));
        }
    }
    while let Some(Reverse((_, i))) = fronts.pop() {
        if !cursors[i].take_sample(scratch, take) {
            return;
        }
        if let Some(ts) = cursors[i].skip_to_sample(&mut lost[i]) {
            fronts.push(Reverse((ts, i)));
        }
    }
}

/// Bytes of a record's header, and of a sample's raw size before its bytes.
const HEADER: usize = std::mem::size_of::<perf_event_header>();
const RAW_SIZE: usize = 4;

impl Cursor {
    /// Moves past the records before the next sample, adding PERF_RECORD_LOST counts to
    /// `lost`; returns the sample's entry time, or None at the head.
    fn skip_to_sample(&mut self, lost: &mut u64) -> Option<u64> {
        while self.tail < self.head {
            let Some((kind, len)) = self.ring.header(self.tail, self.head) else {
                // A header that does not fit what the kernel wrote: never seen, but do not
                // loop on it; skip to the head.
                self.tail = self.head;
                return None;
            };
            if kind == PERF_RECORD_SAMPLE as u32 {
                let mut ts = [0u8; 8];
                let at = HEADER + RAW_SIZE + std::mem::offset_of!(RawEventHeader, ts_enter_ns);
                if len >= at + 8 {
                    self.ring.copy_out(self.tail + at as u64, &mut ts);
                }
                return Some(u64::from_le_bytes(ts));
            }
            if kind == PERF_RECORD_LOST as u32 && len >= HEADER + 16 {
                // u64 id, then u64 lost.
                let mut n = [0u8; 8];
                self.ring.copy_out(self.tail + (HEADER + 8) as u64, &mut n);
                *lost += u64::from_le_bytes(n);
            }
            self.tail += len as u64;
        }
        None
    }

    /// Hands the sample at the tail (after `skip_to_sample`) to `take` and moves past it;
    /// returns what `take` did.
    fn take_sample(&mut self, scratch: &mut Vec<u8>, take: &mut impl FnMut(&[u8]) -> bool) -> bool {
        let Some(body) = self.ring.body(self.tail, self.head, scratch) else {
            self.tail = self.head;
            return true;
        };
        self.tail += (HEADER + body.len()) as u64;
        // u32 size, then the raw bytes.
        match body.split_first_chunk::<RAW_SIZE>() {
            Some((n, raw)) => take(&raw[..(u32::from_le_bytes(*n) as usize).min(raw.len())]),
            None => true,
        }
    }
}

impl Ring {
    /// Reads the records from `tail` to `head`, handing samples to `take` until it returns
    /// false; returns the new tail, the PERF_RECORD_LOST counts read and whether to go on.
    #[cfg(test)]
    fn read(
        self,
        tail: u64,
        head: u64,
        scratch: &mut Vec<u8>,
        take: &mut impl FnMut(&[u8]) -> bool,
    ) -> (u64, u64, bool) {
        let mut c = Cursor {
            ring: self,
            tail,
            head,
        };
        let mut lost = 0;
        while c.skip_to_sample(&mut lost).is_some() {
            if !c.take_sample(scratch, take) {
                return (c.tail, lost, false);
            }
        }
        (c.tail, lost, true)
    }

    /// The type and length of the record at `tail`; None if its size is impossible.
    fn header(&self, tail: u64, head: u64) -> Option<(u32, usize)> {
        let mut h = [0u8; HEADER];
        self.copy_out(tail, &mut h);
        let kind = u32::from_le_bytes(h[..4].try_into().expect("4 bytes"));
        let size = u16::from_le_bytes(h[6..8].try_into().expect("2 bytes")) as usize;
        (size >= HEADER && tail + size as u64 <= head).then_some((kind, size))
    }

    /// The bytes after the header of the record at `tail`, copied into `scratch` if they wrap
    /// around the ring's end; None if its size is impossible.
    fn body<'a>(&'a self, tail: u64, head: u64, scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        let (_, size) = self.header(tail, head)?;
        let start = (tail as usize + HEADER) % self.size;
        let n = size - HEADER;
        if start + n <= self.size {
            // SAFETY: inside the data pages, written by the kernel before `head`.
            return Some(unsafe { std::slice::from_raw_parts(self.data.add(start), n) });
        }
        scratch.resize(n, 0);
        self.copy_out(tail + HEADER as u64, scratch);
        Some(&scratch[..])
    }

    /// Copies `out.len()` bytes from ring position `at`, wrapping at the ring's end.
    fn copy_out(&self, at: u64, out: &mut [u8]) {
        let start = at as usize % self.size;
        let first = out.len().min(self.size - start);
        // SAFETY: both ranges lie inside the data pages; `out` is ours.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }
}

/// BPF_MAP_UPDATE_ELEM of `map_fd[key] = value` (u32 key and value); aya keeps its own
/// wrapper of the syscall crate-private.
fn map_update(map_fd: RawFd, key: u32, value: RawFd) -> std::io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    let value = value as u32;
    let attr = Attr {
        map_fd: map_fd as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    // SAFETY: the attr and what it points at live across the call; the kernel reads
    // `size_of::<Attr>()` bytes of it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &attr as *const Attr,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A perf record: header (type, misc 0, size) and body, as the kernel writes it.
    fn record(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut r = kind.to_le_bytes().to_vec();
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&((8 + body.len()) as u16).to_le_bytes());
        r.extend_from_slice(body);
        r
    }

    fn sample(raw: &[u8]) -> Vec<u8> {
        // The raw size counts the kernel's padding to 8 bytes, which follows the bytes.
        let padded = (raw.len() + 4).next_multiple_of(8) - 4;
        let mut body = (padded as u32).to_le_bytes().to_vec();
        body.extend_from_slice(raw);
        body.resize(4 + padded, 0);
        record(PERF_RECORD_SAMPLE as u32, &body)
    }

    #[test]
    fn samples_and_losses_are_read_across_the_rings_end() {
        let lost = record(
            PERF_RECORD_LOST as u32,
            &[[7u8; 8], 5u64.to_le_bytes()].concat(),
        );
        let a = sample(b"first record");
        let b = sample(&[0xab; 41]);
        let stream = [lost.clone(), a.clone(), b.clone(), lost].concat();
        // A 256-byte ring, the 128 bytes from the tail wrapping around its end: at 204 in
        // the second sample's header, at 210 in the first sample's bytes.
        for at in [204, 210] {
            let mut data = vec![0u8; 256];
            let start = 1000 * 256 + at;
            for (i, byte) in stream.iter().enumerate() {
                data[(start + i) % 256] = *byte;
            }
            let ring = Ring {
                data: data.as_ptr(),
                size: 256,
            };
            let mut got: Vec<Vec<u8>> = Vec::new();
            let (mut scratch, head) = (Vec::new(), (start + stream.len()) as u64);
            let (tail, n_lost, go_on) = ring.read(start as u64, head, &mut scratch, &mut |r| {
                got.push(r.to_vec());
                true
            });
            assert_eq!((tail, n_lost, go_on), (head, 10, true), "at {at}");
            // Each with the kernel's padding after it, which the sink ignores.
            assert_eq!(got.len(), 2, "at {at}");
            assert!(got[0].starts_with(b"first record") && got[0].len() == 12);
            assert_eq!(&got[1][..41], &[0xab; 41][..], "at {at}");
            assert!(got[1][41..].iter().all(|&z| z == 0) && got[1].len() == 44);
            // Stopping early leaves the tail after the record that said stop.
            let (tail, _, go_on) = ring.read(start as u64, head, &mut scratch, &mut |_| false);
            assert_eq!((tail, go_on), ((start + LOST_LEN + a.len()) as u64, false));
            // A header claiming more than the kernel wrote ends the read at the head.
            let (tail, _, _) = ring.read(start as u64, head - 1, &mut scratch, &mut |_| true);
            assert_eq!(tail, head - 1, "at {at}");
        }
    }

    /// A PERF_RECORD_LOST: header, id, count.
    const LOST_LEN: usize = 8 + 16;

    #[test]
    fn the_cpus_samples_are_merged_by_entry_time() {
        // Two CPUs' rings, each in its own order; a sample is its entry time, then a tag.
        let ev = |ts: u64, tag: u8| sample(&[&ts.to_le_bytes()[..], &[tag]].concat());
        let lost = record(
            PERF_RECORD_LOST as u32,
            &[[1u8; 8], 3u64.to_le_bytes()].concat(),
        );
        let streams = [
            [ev(10, 1), ev(30, 3), lost, ev(60, 6)].concat(),
            [ev(20, 2), ev(40, 4), ev(50, 5)].concat(),
        ];
        // Each ring a power of two, the stream from its start.
        let rings: Vec<Vec<u8>> = streams
            .iter()
            .map(|s| {
                let mut r = s.clone();
                r.resize(s.len().next_power_of_two(), 0);
                r
            })
            .collect();
        let mut cursors: Vec<Cursor> = rings
            .iter()
            .zip(&streams)
            .map(|(r, s)| Cursor {
                ring: Ring {
                    data: r.as_ptr(),
                    size: r.len(),
                },
                tail: 0,
                head: s.len() as u64,
            })
            .collect();
        let (mut lost, mut scratch, mut tags) = (vec![0, 0], Vec::new(), Vec::new());
        merge(&mut cursors, &mut lost, &mut scratch, &mut |r| {
            tags.push(r[8]);
            true
        });
        assert_eq!(tags, [1, 2, 3, 4, 5, 6]);
        assert_eq!(lost, [3, 0]);
        assert_eq!(cursors[0].tail, streams[0].len() as u64);
    }
}
