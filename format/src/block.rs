//! Event blocks: the column layout inside a block's zstd frame, its encoder and its decoder.
//!
//! A block's payload is a bincode struct encoded with fixed-int encoding (see `FORMAT.md`,
//! "Block payload"): a table of the distinct threads in the block, a table of the distinct
//! *call sites* (thread, CPU, fd, level, option, lengths, result: everything about a call but
//! its time, its duration, its pointers and its value bytes), then five little-endian columns
//! (time delta, duration, site index, two pointer deltas) and the value bytes.
//!
//! Programs ask the same questions over and over, so a block has few sites: the per-event
//! columns are 36 bytes instead of 68, zstd has fewer bytes and far fewer distinct runs to
//! code, and a query grouping by process or option can count site indexes instead of decoding
//! fields. Timestamps and pointers are deltas from the previous event, which turns their slowly
//! moving parts into zero bytes. Every integer keeps its fixed width, so the decoder reads the
//! columns in place: decoding costs little next to decompression.

use crate::raw::COMM_LEN;
use crate::wire::Le;
use crate::{Error, Event};

/// Bytes of one thread table entry on disk.
pub const THREAD_ENTRY_LEN: usize = 52;
/// Most events one block may hold.
pub const MAX_BLOCK_EVENTS: u32 = 1 << 20;
/// Most payload bytes (decompressed) one block may hold.
pub const MAX_BLOCK_RAW: u32 = 64 << 20;
/// Bytes of the fixed fields before a block's zstd frame.
pub const BLOCK_HEADER_LEN: usize = 24;

/// The per-thread identity fields, stored once per block and referenced by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ThreadEntry {
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
    pub cgroup_id: u64,
    pub pid_ns: u32,
    pub mnt_ns: u32,
}

impl ThreadEntry {
    /// The task name without its NUL padding (lossy UTF-8).
    pub fn comm_str(&self) -> std::borrow::Cow<'_, str> {
        crate::comm_to_str(&self.comm)
    }

    fn of(e: &Event<'_>) -> ThreadEntry {
        ThreadEntry {
            tgid: e.tgid,
            tid: e.tid,
            ppid: e.ppid,
            uid: e.uid,
            gid: e.gid,
            comm: e.comm,
            cgroup_id: e.cgroup_id,
            pid_ns: e.pid_ns,
            mnt_ns: e.mnt_ns,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.tgid, self.tid, self.ppid, self.uid, self.gid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.comm);
        out.extend_from_slice(&self.cgroup_id.to_le_bytes());
        out.extend_from_slice(&self.pid_ns.to_le_bytes());
        out.extend_from_slice(&self.mnt_ns.to_le_bytes());
    }

    fn decode(b: &[u8; THREAD_ENTRY_LEN]) -> ThreadEntry {
        let mut l = Le(b);
        ThreadEntry {
            tgid: l.u32(),
            tid: l.u32(),
            ppid: l.u32(),
            uid: l.u32(),
            gid: l.u32(),
            comm: l.array(),
            cgroup_id: l.u64(),
            pid_ns: l.u32(),
            mnt_ns: l.u32(),
        }
    }
}

/// Bytes of one call site entry on disk.
pub const SITE_ENTRY_LEN: usize = 36;
/// Bytes each event adds to the per-event columns (value bytes aside).
pub const COLUMN_BYTES_PER_EVENT: usize = 36;

/// Everything about a call but its time, duration, pointers and value bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Site {
    /// Index into the block's thread table.
    pub thread: u32,
    pub cpu: u32,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    pub optlen_in: i32,
    pub optlen_out: i32,
    pub ret: i32,
    pub flags: u16,
    pub value_len: u16,
}

impl Site {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.thread, self.cpu] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.fd,
            self.level,
            self.optname,
            self.optlen_in,
            self.optlen_out,
            self.ret,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.value_len.to_le_bytes());
    }

    fn decode(b: &[u8; SITE_ENTRY_LEN]) -> Site {
        let mut l = Le(b);
        Site {
            thread: l.u32(),
            cpu: l.u32(),
            fd: l.i32(),
            level: l.i32(),
            optname: l.i32(),
            optlen_in: l.i32(),
            optlen_out: l.i32(),
            ret: l.i32(),
            flags: l.u16(),
            value_len: l.u16(),
        }
    }
}

/// A key of a per-block table: hashed from its fields by one cheap function, since the
/// tables are probed once or twice per event.
trait Key: Copy + Eq {
    fn table_hash(&self, seed: &Seed) -> u64;
}

/// Random keys for the table hash, drawn once per encoder: the fields come from traced
/// programs, and a fixed hash would let one of them make every call collide. Which slot an
/// entry takes never shows in the output: table order is insertion order.
struct Seed([u64; 4]);

impl Seed {
    fn random() -> Seed {
        use std::hash::{BuildHasher, RandomState};
        let s = RandomState::new();
        Seed(std::array::from_fn(|i| s.hash_one(i) | 1))
    }
}

/// The high and low halves of a 64 × 64-bit product folded together: mixes every bit of
/// both operands in one multiplication.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

impl Key for ThreadEntry {
    #[inline]
    fn table_hash(&self, k: &Seed) -> u64 {
        let w = |a: u32, b: u32| a as u64 | (b as u64) << 32;
        let comm = u128::from_le_bytes(self.comm);
        fold(
            w(self.tgid, self.tid) ^ k.0[0],
            w(self.ppid, self.uid) ^ k.0[1],
        ) ^ fold(w(self.gid, self.pid_ns) ^ k.0[2], self.cgroup_id ^ k.0[3])
            ^ fold(
                (comm as u64) ^ k.0[1],
                ((comm >> 64) as u64 ^ self.mnt_ns as u64) ^ k.0[0],
            )
    }
}

impl Key for Site {
    #[inline]
    fn table_hash(&self, k: &Seed) -> u64 {
        let w = |a: i32, b: i32| a as u32 as u64 | (b as u32 as u64) << 32;
        let h = fold(
            (self.thread as u64 | (self.cpu as u64) << 32) ^ k.0[0],
            w(self.fd, self.level) ^ k.0[1],
        ) ^ fold(
            w(self.optname, self.optlen_in) ^ k.0[2],
            w(self.optlen_out, self.ret) ^ k.0[3],
        );
        fold(
            h ^ k.0[1],
            (self.flags as u64 | (self.value_len as u64) << 16) ^ k.0[2],
        )
    }
}

/// A per-block table: keys in the order they were first seen (their index is what the block
/// stores), each with a value `V` the encoder keeps per entry. The lookup index is an
/// open-addressing table (linear probing, at most half full) whose slots hold the key, its
/// index and its value in one cache line, so finding an entry costs one memory access. A slot
/// belongs to the current block only if it carries the current generation: clearing the
/// table between blocks touches nothing. Its memory is kept from block to block.
struct Table<K, V> {
    keys: Vec<K>,
    slots: Vec<Slot<K, V>>,
    generation: u32,
    seed: Seed,
}

/// A slot of a table's index, aligned so that it takes one cache line (keys are at most 52
/// bytes).
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Slot<K, V> {
    key: K,
    id: u32,
    generation: u32,
    value: V,
}

impl<K: Key + Default, V: Copy + Default> Table<K, V> {
    fn new() -> Table<K, V> {
        Table {
            keys: Vec::new(),
            slots: vec![Slot::default(); 64],
            generation: 1,
            seed: Seed::random(),
        }
    }

    fn hash(&self, key: &K) -> u64 {
        key.table_hash(&self.seed)
    }

    /// Starts loading the slot where a lookup of a key with hash `h` begins, so that the
    /// lookup, a few events later, need not wait for memory.
    #[inline]
    fn prefetch(&self, h: u64) {
        let slot = &self.slots[h as usize & (self.slots.len() - 1)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint: it reads nothing the program sees and cannot
        // fault; the address is that of a live slot anyway. SSE is part of x86_64.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>((slot as *const Slot<K, V>).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// The index of `key`, added with `value` if new, and its value.
    #[inline]
    fn find_or_insert(&mut self, key: K, value: V) -> (u32, &mut V) {
        let h = self.hash(&key);
        self.find_or_insert_hashed(key, h, value)
    }

    /// [`Table::find_or_insert`] for a key whose hash is known.
    #[inline]
    fn find_or_insert_hashed(&mut self, key: K, h: u64, value: V) -> (u32, &mut V) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.generation != self.generation {
                break;
            }
            if slot.key == key {
                let slot = &mut self.slots[i];
                return (slot.id, &mut slot.value);
            }
            i = (i + 1) & mask;
        }
        let id = self.keys.len() as u32;
        self.keys.push(key);
        self.slots[i] = Slot {
            key,
            id,
            generation: self.generation,
            value,
        };
        if self.keys.len() * 2 > self.slots.len() {
            self.grow();
            return self.find_or_insert_hashed(key, h, value);
        }
        (id, &mut self.slots[i].value)
    }

    #[cold]
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); n]);
        let generation = std::mem::replace(&mut self.generation, 1);
        for slot in old.into_iter().filter(|s| s.generation == generation) {
            let mut i = slot.key.table_hash(&self.seed) as usize & (n - 1);
            while self.slots[i].generation == 1 {
                i = (i + 1) & (n - 1);
            }
            self.slots[i] = Slot {
                generation: 1,
                ..slot
            };
        }
    }

    fn keys(&self) -> impl ExactSizeIterator<Item = &K> {
        self.keys.iter()
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Once in 2^32 blocks: forget the old generations for real.
            self.slots.fill(Slot::default());
            self.generation = 1;
        }
    }
}

/// How many events' site lookups wait for their prefetch (see `BlockEncoder::pending`).
const PIPELINE: usize = 8;

/// An event's site, waiting for its lookup.
#[derive(Clone, Copy, Default)]
struct PendingSite {
    site: Site,
    hash: u64,
    optval_ptr: u64,
    optlen_ptr: u64,
}

/// Accumulates events into the tables and columns of one block.
pub(crate) struct BlockEncoder {
    threads: Table<ThreadEntry, ()>,
    /// Each site with the last (optval, optlen) pointers of its events: pointer deltas are
    /// taken per site, where a buffer on the caller's stack makes them zero.
    sites: Table<Site, (u64, u64)>,
    /// The thread of the previous event and its index: calls come in bursts per thread.
    last_thread: Option<(ThreadEntry, u32)>,
    /// The last events' sites, hashes and pointers, waiting for their site lookup: the site
    /// table is larger than the CPU's caches, so `push` prefetches a site's slot and looks it
    /// up only `PIPELINE` events later, when the slot has arrived.
    pending: [PendingSite; PIPELINE],
    /// Where in `pending` the oldest waiting site is, and how many wait.
    pending_head: usize,
    pending_len: usize,
    ts_delta: Vec<u8>,
    duration: Vec<u8>,
    site: Vec<u8>,
    optval_delta: Vec<u8>,
    optlen_delta: Vec<u8>,
    values: Vec<u8>,
    len: u32,
    ts_min: u64,
    ts_max: u64,
    prev_ts: u64,
}

impl BlockEncoder {
    pub fn new() -> BlockEncoder {
        BlockEncoder {
            threads: Table::new(),
            sites: Table::new(),
            last_thread: None,
            pending: [PendingSite::default(); PIPELINE],
            pending_head: 0,
            pending_len: 0,
            ts_delta: Vec::new(),
            duration: Vec::new(),
            site: Vec::new(),
            optval_delta: Vec::new(),
            optlen_delta: Vec::new(),
            values: Vec::new(),
            len: 0,
            ts_min: u64::MAX,
            ts_max: 0,
            prev_ts: 0,
        }
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn ts_range(&self) -> (u64, u64) {
        (self.ts_min, self.ts_max)
    }

    /// The site and duration columns: one little-endian `u32` site index and one `u64` per
    /// event (every pending site lookup is resolved first).
    pub fn site_and_duration_columns(&mut self) -> (&[u8], &[u8]) {
        self.resolve_all();
        (&self.site, &self.duration)
    }

    /// Sites in the block's table (every pending site lookup is resolved first).
    pub fn site_count(&mut self) -> usize {
        self.resolve_all();
        self.sites.len()
    }

    /// Payload bytes the block would take if closed now.
    pub fn raw_len(&mut self) -> usize {
        self.resolve_all();
        8 * 8
            + self.threads.len() * THREAD_ENTRY_LEN
            + self.sites.len() * SITE_ENTRY_LEN
            + self.len as usize * COLUMN_BYTES_PER_EVENT
            + self.values.len()
    }

    pub fn push(&mut self, e: &Event<'_>) -> Result<(), Error> {
        let value_len = u16::try_from(e.value.len()).map_err(|_| {
            Error::InvalidInput(format!(
                "an option value of {} bytes is longer than the format's 65535",
                e.value.len()
            ))
        })?;
        let te = ThreadEntry::of(e);
        let thread = match self.last_thread {
            Some((t, id)) if t == te => id,
            _ => {
                let id = self.threads.find_or_insert(te, ()).0;
                self.last_thread = Some((te, id));
                id
            }
        };
        let site = Site {
            thread,
            cpu: e.cpu,
            fd: e.fd,
            level: e.level,
            optname: e.optname,
            optlen_in: e.optlen_in,
            optlen_out: e.optlen_out,
            ret: e.ret,
            flags: e.flags,
            value_len,
        };
        let hash = self.sites.hash(&site);
        self.sites.prefetch(hash);
        let next = PendingSite {
            site,
            hash,
            optval_ptr: e.optval_ptr,
            optlen_ptr: e.optlen_ptr,
        };
        if self.pending_len == PIPELINE {
            // Steady state: the oldest site's slot has had time to arrive.
            let oldest = std::mem::replace(&mut self.pending[self.pending_head], next);
            self.pending_head = (self.pending_head + 1) % PIPELINE;
            self.resolve(oldest);
        } else {
            self.pending[(self.pending_head + self.pending_len) % PIPELINE] = next;
            self.pending_len += 1;
        }
        self.ts_delta
            .extend_from_slice(&e.ts_ns.wrapping_sub(self.prev_ts).to_le_bytes());
        self.duration
            .extend_from_slice(&e.duration_ns.to_le_bytes());
        self.values.extend_from_slice(e.value);

        self.prev_ts = e.ts_ns;
        self.ts_min = self.ts_min.min(e.ts_ns);
        self.ts_max = self.ts_max.max(e.ts_ns);
        self.len += 1;
        Ok(())
    }

    /// Looks up a pending site and appends its event's site index and pointer deltas.
    #[inline]
    fn resolve(&mut self, p: PendingSite) {
        // A new site's pointers start at 0, so its first event stores them whole.
        let (site, (prev_optval, prev_optlen)) =
            self.sites.find_or_insert_hashed(p.site, p.hash, (0, 0));
        self.optval_delta
            .extend_from_slice(&p.optval_ptr.wrapping_sub(*prev_optval).to_le_bytes());
        self.optlen_delta
            .extend_from_slice(&p.optlen_ptr.wrapping_sub(*prev_optlen).to_le_bytes());
        (*prev_optval, *prev_optlen) = (p.optval_ptr, p.optlen_ptr);
        self.site.extend_from_slice(&site.to_le_bytes());
    }

    /// Looks up every pending site, so the tables and columns hold all events pushed.
    fn resolve_all(&mut self) {
        while self.pending_len > 0 {
            let p = self.pending[self.pending_head];
            self.pending_head = (self.pending_head + 1) % PIPELINE;
            self.pending_len -= 1;
            self.resolve(p);
        }
    }

    /// Writes the payload (the bytes that get compressed) into `out`.
    pub fn encode_payload(&mut self, out: &mut Vec<u8>) {
        self.resolve_all();
        out.clear();
        out.reserve(self.raw_len());
        out.extend_from_slice(&(self.threads.len() as u64).to_le_bytes());
        for t in self.threads.keys() {
            t.encode(out);
        }
        out.extend_from_slice(&(self.sites.len() as u64).to_le_bytes());
        for s in self.sites.keys() {
            s.encode(out);
        }
        for col in [
            &self.ts_delta,
            &self.duration,
            &self.site,
            &self.optval_delta,
            &self.optlen_delta,
        ] {
            out.extend_from_slice(&(self.len as u64).to_le_bytes());
            out.extend_from_slice(col);
        }
        out.extend_from_slice(&(self.values.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.values);
    }

    pub fn clear(&mut self) {
        self.threads.clear();
        self.sites.clear();
        self.last_thread = None;
        self.pending_len = 0;
        for c in [
            &mut self.ts_delta,
            &mut self.duration,
            &mut self.site,
            &mut self.optval_delta,
            &mut self.optlen_delta,
            &mut self.values,
        ] {
            c.clear();
        }
        self.len = 0;
        self.ts_min = u64::MAX;
        self.ts_max = 0;
        self.prev_ts = 0;
    }
}

/// One block, decompressed and validated, ready to iterate. Reuse one per thread: decoding
/// into it again keeps its buffers, so a scan allocates nothing per block once warmed up.
#[derive(Default)]
pub struct DecodedBlock {
    /// Kept between blocks: creating a zstd context costs more than a small block's decoding.
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    raw: Vec<u8>,
    len: usize,
    threads: Vec<ThreadEntry>,
    sites: Vec<Site>,
    /// Start within `raw` of the ts, duration, site, optval and optlen columns.
    col_start: [usize; 5],
    values_start: usize,
    values_len: usize,
    /// File offset of the block section, for error messages.
    offset: u64,
}

impl std::fmt::Debug for DecodedBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedBlock")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// Widths of the five per-event columns, in payload order.
const COLUMN_WIDTHS: [(&str, usize); 5] = [
    ("time delta", 8),
    ("duration", 8),
    ("site index", 4),
    ("optval delta", 8),
    ("optlen delta", 8),
];

impl DecodedBlock {
    pub fn new() -> DecodedBlock {
        DecodedBlock::default()
    }

    /// Number of events in the block.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The decompressed payload (for benchmarks that separate decompression from decoding).
    pub fn payload(&self) -> &[u8] {
        &self.raw
    }

    /// File offset of the block section this was decoded from.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The block's thread table.
    pub fn threads(&self) -> &[ThreadEntry] {
        &self.threads
    }

    /// The block's call site table.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// Each event's index into [`DecodedBlock::sites`], without decoding anything else: what
    /// a query that groups by site fields needs.
    pub fn site_indexes(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.raw[self.col_start[2]..][..self.len * 4]
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| u32::from_le_bytes(*b))
    }

    /// Decompresses a block section body (block header + zstd frame) found at `section_offset`
    /// and validates the payload, so iteration afterwards cannot fail.
    pub(crate) fn decode(
        &mut self,
        body: &[u8],
        section_offset: u64,
        body_offset: u64,
    ) -> Result<(), Error> {
        let h = self.decompress(body, section_offset, body_offset)?;
        self.parse(
            h.event_count as usize,
            body_offset + BLOCK_HEADER_LEN as u64,
        )
    }

    /// Only the decompression half of [`DecodedBlock::decode`]: fills [`DecodedBlock::payload`]
    /// and leaves the block empty of events.
    pub(crate) fn decompress(
        &mut self,
        body: &[u8],
        section_offset: u64,
        body_offset: u64,
    ) -> Result<BlockHeader, Error> {
        self.offset = section_offset;
        self.len = 0;
        let h = BlockHeader::decode(body, body_offset)?;
        let frame = &body[BLOCK_HEADER_LEN..];
        let frame_offset = body_offset + BLOCK_HEADER_LEN as u64;
        if self.dctx.is_none() {
            self.dctx = Some(zstd::bulk::Decompressor::new()?);
        }
        let dctx = self.dctx.as_mut().expect("set above");
        decompress_into(dctx, frame, h.raw_len, frame_offset, &mut self.raw)?;
        Ok(h)
    }

    fn parse(&mut self, n: usize, frame_offset: u64) -> Result<(), Error> {
        // The payload is compressed, so a problem in it is located by the file offset of its
        // frame and the position within the decompressed payload.
        let raw = &self.raw;
        let err = |at: usize, what: String| payload_error(frame_offset, at, what);
        let mut pos = 0usize;
        // A table or column: its u64 length, checked against what is left, then its bytes.
        let mut seq =
            |what: &str, width: usize, exact: Option<usize>| -> Result<(usize, usize), Error> {
                let len_at = pos;
                let b = raw
                    .get(pos..pos + 8)
                    .ok_or_else(|| err(pos, format!("the length of the {what}")))?;
                let len = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                pos += 8;
                let room = ((raw.len() - pos) / width) as u64;
                if exact.is_some_and(|n| n as u64 != len) || len > room {
                    let expected = match exact {
                        Some(n) => format!("the {what} to hold {n} elements"),
                        None => format!("a {what} length of at most {room}"),
                    };
                    return Err(err(len_at, format!("{expected}, found {len}")));
                }
                let start = pos;
                pos += len as usize * width;
                Ok((start, len as usize))
            };
        let (threads_at, n_threads) = seq("thread table", THREAD_ENTRY_LEN, None)?;
        let (sites_at, n_sites) = seq("site table", SITE_ENTRY_LEN, None)?;
        let mut col_start = [0usize; 5];
        for (i, (what, width)) in COLUMN_WIDTHS.iter().enumerate() {
            col_start[i] = seq(&format!("{what} column"), *width, Some(n))?.0;
        }
        let (values_start, values_len) = seq("value bytes", 1, None)?;
        // Anything after the values belongs to a later minor version: skipped.

        decode_tables(
            raw,
            (threads_at, n_threads),
            (sites_at, n_sites),
            &mut self.threads,
            &mut self.sites,
            frame_offset,
        )?;
        let site_col = raw[col_start[2]..][..n * 4].as_chunks::<4>().0;
        let mut value_total = 0usize;
        for (i, b) in site_col.iter().enumerate() {
            match self.sites.get(u32::from_le_bytes(*b) as usize) {
                Some(s) => value_total += s.value_len as usize,
                None => {
                    return Err(err(
                        col_start[2] + 4 * i,
                        format!(
                            "a site index below {n_sites}, found {}",
                            u32::from_le_bytes(*b)
                        ),
                    ));
                }
            }
        }
        if value_total != values_len {
            return Err(err(
                values_start - 8,
                format!(
                    "value lengths adding up to the {values_len} value bytes, found {value_total}"
                ),
            ));
        }
        self.col_start = col_start;
        self.values_start = values_start;
        self.values_len = values_len;
        self.len = n;
        Ok(())
    }

    /// The events of the block in stored order.
    pub fn events(&self) -> BlockEvents<'_> {
        let n = self.len;
        let col = |i: usize| &self.raw[self.col_start[i]..][..n * COLUMN_WIDTHS[i].1];
        BlockEvents {
            i: 0,
            n,
            threads: &self.threads,
            sites: &self.sites,
            ts: &col(0).as_chunks::<8>().0[..n],
            duration: &col(1).as_chunks::<8>().0[..n],
            site: &col(2).as_chunks::<4>().0[..n],
            optval: &col(3).as_chunks::<8>().0[..n],
            optlen: &col(4).as_chunks::<8>().0[..n],
            values: &self.raw[self.values_start..][..self.values_len],
            prev_ts: 0,
            site_ptrs: vec![(0, 0); self.sites.len()],
        }
    }
}

/// Iterator over the events of a [`DecodedBlock`]. Every column slice has exactly `n`
/// fixed-size elements, so reading one is a single bounds check.
pub struct BlockEvents<'a> {
    i: usize,
    n: usize,
    threads: &'a [ThreadEntry],
    sites: &'a [Site],
    ts: &'a [[u8; 8]],
    duration: &'a [[u8; 8]],
    site: &'a [[u8; 4]],
    optval: &'a [[u8; 8]],
    optlen: &'a [[u8; 8]],
    values: &'a [u8],
    prev_ts: u64,
    /// The last (optval, optlen) pointers of each site, which the deltas apply to.
    site_ptrs: Vec<(u64, u64)>,
}

impl<'a> Iterator for BlockEvents<'a> {
    type Item = Event<'a>;

    #[inline]
    fn next(&mut self) -> Option<Event<'a>> {
        let i = self.i;
        if i >= self.n {
            return None;
        }
        self.i += 1;
        self.prev_ts = self.prev_ts.wrapping_add(u64::from_le_bytes(self.ts[i]));
        // parse() checked every site and thread index and that the value lengths add up.
        let site = u32::from_le_bytes(self.site[i]) as usize;
        let s = &self.sites[site];
        let ptrs = &mut self.site_ptrs[site];
        ptrs.0 = ptrs.0.wrapping_add(u64::from_le_bytes(self.optval[i]));
        ptrs.1 = ptrs.1.wrapping_add(u64::from_le_bytes(self.optlen[i]));
        let (optval_ptr, optlen_ptr) = *ptrs;
        let t = &self.threads[s.thread as usize];
        let (value, rest) = self.values.split_at(s.value_len as usize);
        self.values = rest;
        Some(Event {
            ts_ns: self.prev_ts,
            duration_ns: u64::from_le_bytes(self.duration[i]),
            cpu: s.cpu,
            tgid: t.tgid,
            tid: t.tid,
            ppid: t.ppid,
            uid: t.uid,
            gid: t.gid,
            comm: t.comm,
            cgroup_id: t.cgroup_id,
            pid_ns: t.pid_ns,
            mnt_ns: t.mnt_ns,
            fd: s.fd,
            level: s.level,
            optname: s.optname,
            optval_ptr,
            optlen_ptr,
            optlen_in: s.optlen_in,
            optlen_out: s.optlen_out,
            ret: s.ret,
            flags: s.flags,
            value,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.n - self.i, Some(self.n - self.i))
    }
}

impl ExactSizeIterator for BlockEvents<'_> {}

/// The fixed fields at the start of a block section body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub event_count: u32,
    pub raw_len: u32,
    pub ts_min: u64,
    pub ts_max: u64,
}

impl BlockHeader {
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut b = [0u8; BLOCK_HEADER_LEN];
        b[0..4].copy_from_slice(&self.event_count.to_le_bytes());
        b[4..8].copy_from_slice(&self.raw_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.ts_min.to_le_bytes());
        b[16..24].copy_from_slice(&self.ts_max.to_le_bytes());
        b
    }

    pub fn decode(body: &[u8], body_offset: u64) -> Result<BlockHeader, Error> {
        let b = body
            .get(..BLOCK_HEADER_LEN)
            .ok_or_else(|| Error::truncated(body_offset, "a 24-byte block header"))?;
        let h = BlockHeader {
            event_count: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            raw_len: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            ts_min: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            ts_max: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
        };
        if h.event_count > MAX_BLOCK_EVENTS {
            return Err(Error::malformed(
                body_offset,
                format!(
                    "a block event count of at most {MAX_BLOCK_EVENTS}, found {}",
                    h.event_count
                ),
            ));
        }
        if h.raw_len > MAX_BLOCK_RAW {
            return Err(Error::malformed(
                body_offset + 4,
                format!(
                    "a block payload size of at most {MAX_BLOCK_RAW}, found {}",
                    h.raw_len
                ),
            ));
        }
        // Eight u64 lengths, then the five per-event columns.
        let least = 64 + h.event_count as u64 * COLUMN_BYTES_PER_EVENT as u64;
        if (h.raw_len as u64) < least {
            return Err(Error::malformed(
                body_offset + 4,
                format!(
                    "a payload size of at least {least} for {} events, found {}",
                    h.event_count, h.raw_len
                ),
            ));
        }
        if h.event_count > 0 && h.ts_min > h.ts_max {
            return Err(Error::malformed(
                body_offset + 8,
                format!(
                    "a time range with start <= end, found {}..{}",
                    h.ts_min, h.ts_max
                ),
            ));
        }
        Ok(h)
    }
}

/// A problem in a block's payload: the payload is compressed, so it is located by the file
/// offset of its frame and the position within the decompressed payload.
pub(crate) fn payload_error(frame_offset: u64, at: usize, what: String) -> Error {
    Error::malformed(
        frame_offset,
        format!("{what} at byte {at} of the block payload decompressed from here"),
    )
}

/// Decodes a block's thread table (`count` entries at byte `at` of `raw`) and site table, and
/// checks every site's thread index.
pub(crate) fn decode_tables(
    raw: &[u8],
    (threads_at, n_threads): (usize, usize),
    (sites_at, n_sites): (usize, usize),
    threads: &mut Vec<ThreadEntry>,
    sites: &mut Vec<Site>,
    frame_offset: u64,
) -> Result<(), Error> {
    threads.clear();
    threads.extend(
        raw[threads_at..][..n_threads * THREAD_ENTRY_LEN]
            .as_chunks::<THREAD_ENTRY_LEN>()
            .0
            .iter()
            .map(ThreadEntry::decode),
    );
    sites.clear();
    for (i, b) in raw[sites_at..][..n_sites * SITE_ENTRY_LEN]
        .as_chunks::<SITE_ENTRY_LEN>()
        .0
        .iter()
        .enumerate()
    {
        let site = Site::decode(b);
        if site.thread as usize >= n_threads {
            sites.clear();
            return Err(payload_error(
                frame_offset,
                sites_at + i * SITE_ENTRY_LEN,
                format!("a thread index below {n_threads}, found {}", site.thread),
            ));
        }
        sites.push(site);
    }
    Ok(())
}

/// Checks that `bytes` are one zstd frame and nothing after it (FORMAT.md 4 and 4.2): zstd
/// itself would decompress a second frame, or skip a skippable one, after the first.
pub(crate) fn exactly_one_frame(bytes: &[u8], frame_offset: u64) -> Result<(), Error> {
    match zstd::zstd_safe::find_frame_compressed_size(bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(Error::malformed(
            frame_offset,
            format!(
                "exactly one zstd frame, found one of {n} bytes followed by {} more",
                bytes.len() - n
            ),
        )),
        Err(code) => Err(Error::Decompress {
            offset: frame_offset,
            message: zstd::zstd_safe::get_error_name(code).to_string(),
        }),
    }
}

/// Decompresses one zstd frame that must produce exactly `raw_len` bytes into `out`.
///
/// When `out` already has room (the steady state of a scan) this is one bulk call. Otherwise
/// it streams, so the buffer grows only as the frame really produces bytes: a corrupted
/// `raw_len` cannot make us allocate more than the frame itself decompresses to.
fn decompress_into(
    dctx: &mut zstd::bulk::Decompressor<'static>,
    frame: &[u8],
    raw_len: u32,
    frame_offset: u64,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let raw_len = raw_len as usize;
    out.clear();
    exactly_one_frame(frame, frame_offset)?;
    let dz = |e: std::io::Error| Error::Decompress {
        offset: frame_offset,
        message: e.to_string(),
    };
    if out.capacity() >= raw_len {
        // Writes into the spare capacity of `out` and sets its length.
        dctx.decompress_to_buffer(frame, out).map_err(dz)?;
    } else {
        use std::io::Read;
        let decoder = zstd::stream::read::Decoder::with_buffer(frame).map_err(dz)?;
        decoder
            .take(raw_len as u64 + 1)
            .read_to_end(out)
            .map_err(dz)?;
    }
    if out.len() != raw_len {
        return Err(Error::malformed(
            frame_offset,
            format!(
                "a zstd frame of {raw_len} bytes decompressed, found {} or more",
                out.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(i: u32) -> Site {
        Site {
            thread: i % 7,
            fd: i as i32,
            value_len: (i % 3) as u16,
            ..Site::default()
        }
    }

    /// Indexes are insertion order, values stick to their entry through growth, and a cleared
    /// table (a new block) forgets everything though its slots keep the old entries.
    #[test]
    fn table_keeps_insertion_order_through_growth_and_clearing() {
        let mut t: Table<Site, (u64, u64)> = Table::new();
        for round in 0..3u32 {
            let n = 1000 * (round + 1);
            let order: Vec<u32> = (0..n).map(|i| (i * 7919 + round) % n).collect();
            for (id, &i) in order.iter().enumerate() {
                let (got, v) = t.find_or_insert(site(i), (0, 0));
                assert_eq!((got, *v), (id as u32, (0, 0)));
                *v = (i as u64, round as u64);
            }
            for (id, &i) in order.iter().enumerate().rev() {
                let (got, v) = t.find_or_insert(site(i), (9, 9));
                assert_eq!((got, *v), (id as u32, (i as u64, round as u64)));
            }
            assert_eq!(t.len(), n as usize);
            assert!(t.keys().copied().eq(order.iter().map(|&i| site(i))));
            t.clear();
            assert_eq!(t.len(), 0);
        }
    }
}
