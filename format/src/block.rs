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
use crate::socket::{SOCKET_MIN_LEN, Socket};
use crate::wire::Le;
use crate::{Error, Event, SocketRef};

/// Bytes of one thread table entry on disk.
pub const THREAD_ENTRY_LEN: usize = 52;
/// Most events one block may hold.
pub const MAX_BLOCK_EVENTS: u32 = 1 << 20;
/// Most payload bytes (decompressed) one block may hold.
pub const MAX_BLOCK_RAW: u32 = 64 << 20;
/// Longest unix socket name the writer takes: `sun_path`'s size. Readers take any length;
/// the limit keeps the socket table of a block's events as small as their values bound.
pub const MAX_UNIX_NAME: usize = 108;
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

    fn encode(&self, b: &mut [u8; THREAD_ENTRY_LEN]) {
        for (i, v) in [self.tgid, self.tid, self.ppid, self.uid, self.gid]
            .into_iter()
            .enumerate()
        {
            b[4 * i..][..4].copy_from_slice(&v.to_le_bytes());
        }
        b[20..36].copy_from_slice(&self.comm);
        b[36..44].copy_from_slice(&self.cgroup_id.to_le_bytes());
        b[44..48].copy_from_slice(&self.pid_ns.to_le_bytes());
        b[48..52].copy_from_slice(&self.mnt_ns.to_le_bytes());
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
    /// Index into the block's socket table, or [`Site::SOCKET_NOT_RECORDED`] or
    /// [`Site::SOCKET_NONE`]: a site is one socket's, so calls on two sockets are two sites.
    /// Not part of the 36 bytes on disk: stored in the block's site socket column (4.3).
    pub socket: u32,
}

impl Site {
    /// `socket` of a site whose calls carry no socket identity (a capture without it).
    pub const SOCKET_NOT_RECORDED: u32 = u32::MAX;
    /// `socket` of a site whose fd was not an open socket (EBADF, ENOTSOCK).
    pub const SOCKET_NONE: u32 = u32::MAX - 1;

    fn encode(&self, b: &mut [u8; SITE_ENTRY_LEN]) {
        let fields = [
            self.thread,
            self.cpu,
            self.fd as u32,
            self.level as u32,
            self.optname as u32,
            self.optlen_in as u32,
            self.optlen_out as u32,
            self.ret as u32,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            b[4 * i..][..4].copy_from_slice(&v.to_le_bytes());
        }
        b[32..34].copy_from_slice(&self.flags.to_le_bytes());
        b[34..36].copy_from_slice(&self.value_len.to_le_bytes());
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
            socket: Site::SOCKET_NOT_RECORDED,
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
            (self.flags as u64 | (self.value_len as u64) << 16 | (self.socket as u64) << 32)
                ^ k.0[2],
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

    /// Starts loading the slot where a lookup of a key with hash `h` begins, and the one
    /// after it, where a collision probes next (a slot is one cache line), so that the
    /// lookup, a few events later, need not wait for memory.
    #[inline]
    fn prefetch(&self, h: u64) {
        let slot = &self.slots[h as usize & (self.slots.len() - 1)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint: it reads nothing the program sees and cannot
        // fault, even past the last slot. SSE is part of x86_64.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p = (slot as *const Slot<K, V>).cast::<i8>();
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
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

/// The per-event columns in payload order: width of one element.
const COLUMNS: [usize; 5] = [8, 8, 4, 8, 8];
const TS: usize = 0;
const DURATION: usize = 1;
const SITE: usize = 2;
const OPTVAL: usize = 3;
const OPTLEN: usize = 4;
/// Room for the tables a block encoder starts with, per event of its capacity.
const TABLE_ROOM_PER_EVENT: usize = 8;

/// Empties `buf` and makes room for `room` bytes. When it must grow, the old buffer is
/// dropped rather than reallocated: a reallocation would copy its whole capacity, stale bytes
/// included, into fresh pages.
pub(crate) fn clear_with_room(buf: &mut Vec<u8>, room: usize) {
    buf.clear();
    if buf.capacity() < room {
        *buf = Vec::with_capacity(room);
    }
}

/// A block's distinct sockets in the order first seen. Consecutive calls are mostly on the
/// socket of the call before, which is checked first; the map (hashed with a random key,
/// since the fields come from traced programs) serves the rest.
#[derive(Default)]
struct SocketTable {
    keys: Vec<Socket>,
    map: std::collections::HashMap<Socket, u32>,
    last: u32,
    /// Encoded bytes of the entries.
    bytes: usize,
    /// Some event of the block has socket identity (a socket, or the fact that there was none).
    recorded: bool,
}

impl SocketTable {
    /// The site's `socket` for an event's socket, the socket added if new.
    #[inline]
    fn index(&mut self, r: SocketRef<'_>) -> u32 {
        let s = match r {
            SocketRef::NotRecorded => return Site::SOCKET_NOT_RECORDED,
            SocketRef::NoSocket => {
                self.recorded = true;
                return Site::SOCKET_NONE;
            }
            SocketRef::Socket(s) => s,
        };
        self.recorded = true;
        if self.keys.get(self.last as usize) == Some(s) {
            return self.last;
        }
        let id = match self.map.get(s) {
            Some(&id) => id,
            None => {
                let id = self.keys.len() as u32;
                self.keys.push(s.clone());
                self.map.insert(s.clone(), id);
                self.bytes += s.encoded_len();
                id
            }
        };
        self.last = id;
        id
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.map.clear();
        self.last = 0;
        self.bytes = 0;
        self.recorded = false;
    }
}

/// Accumulates events into the tables and columns of one block.
///
/// The payload is built in place in one buffer, so that closing a block hands zstd the
/// columns where they were written instead of a copy: the buffer holds room for the tables
/// (`gap` bytes: the tables are written at its end when the block closes), then each column
/// with its length and room for `capacity` events, then the values' length and the values.
/// A block that closes with `capacity` events is contiguous as it is; one closed earlier (by
/// age, size or a flush) has its columns moved down first. The buffer and its layout are kept
/// from block to block, grown when the tables or the events outgrow them.
pub(crate) struct BlockEncoder {
    threads: Table<ThreadEntry, ()>,
    /// Each site with the last (optval, optlen) pointers of its events: pointer deltas are
    /// taken per site, where a buffer on the caller's stack makes them zero.
    sites: Table<Site, (u64, u64)>,
    /// The thread of the previous event and its index: calls come in bursts per thread.
    last_thread: Option<(ThreadEntry, u32)>,
    sockets: SocketTable,
    /// Bytes after the values that `payload` appended (the socket table and the site socket
    /// column), which `push` takes off again before it adds an event.
    tail_len: usize,
    /// The last events' sites, hashes and pointers, waiting for their site lookup: the site
    /// table is larger than the CPU's caches, so `push` prefetches a site's slot and looks it
    /// up only `PIPELINE` events later, when the slot has arrived.
    pending: [PendingSite; PIPELINE],
    /// Where in `pending` the oldest waiting site is, and how many wait.
    pending_head: usize,
    pending_len: usize,
    /// Events whose site lookup is done: the site and pointer columns hold this many.
    resolved: usize,
    buf: Vec<u8>,
    /// Bytes before the first column's length, for the tables.
    gap: usize,
    /// Events the columns have room for, at most `max_events`.
    capacity: usize,
    max_events: usize,
    /// Where each column's elements start in `buf`, and the values.
    cols: [usize; 5],
    values_at: usize,
    /// `payload` packed the columns of a block closed early; `push` (after a failed close)
    /// or `clear` puts them back.
    packed: bool,
    len: u32,
    ts_min: u64,
    ts_max: u64,
    prev_ts: u64,
}

impl BlockEncoder {
    /// An encoder for blocks of at most `max_events` events.
    pub fn new(max_events: u32) -> BlockEncoder {
        let mut b = BlockEncoder {
            threads: Table::new(),
            sites: Table::new(),
            last_thread: None,
            sockets: SocketTable::default(),
            tail_len: 0,
            pending: [PendingSite::default(); PIPELINE],
            pending_head: 0,
            pending_len: 0,
            resolved: 0,
            buf: Vec::new(),
            gap: 0,
            capacity: 0,
            max_events: max_events as usize,
            cols: [0; 5],
            values_at: 0,
            packed: false,
            len: 0,
            ts_min: u64::MAX,
            ts_max: 0,
            prev_ts: 0,
        };
        // Room for a whole block from the start, and for tables of 8 bytes per event (the
        // generator's busy mix needs 5 to 7): the allocator hands out zeroed pages that cost
        // nothing until written, where growing by doubling would copy and touch every column
        // again at each step. The tables are written at the end of their gap, so a gap
        // larger than they need stays untouched.
        b.relayout(TABLE_ROOM_PER_EVENT * b.max_events, b.max_events);
        b
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn ts_range(&self) -> (u64, u64) {
        (self.ts_min, self.ts_max)
    }

    fn column(&self, c: usize) -> &[u8] {
        let n = if c == TS || c == DURATION {
            self.len as usize
        } else {
            self.resolved
        };
        &self.buf[self.cols[c]..][..n * COLUMNS[c]]
    }

    /// The site and duration columns: one little-endian `u32` site index and one `u64` per
    /// event (every pending site lookup is resolved first).
    pub fn site_and_duration_columns(&mut self) -> (&[u8], &[u8]) {
        self.resolve_all();
        (self.column(SITE), self.column(DURATION))
    }

    /// Sites in the block's table (every pending site lookup is resolved first).
    pub fn site_count(&mut self) -> usize {
        self.resolve_all();
        self.sites.len()
    }

    fn tables_len(&self) -> usize {
        16 + self.threads.len() * THREAD_ENTRY_LEN + self.sites.len() * SITE_ENTRY_LEN
    }

    fn values_len(&self) -> usize {
        self.buf.len() - self.tail_len - self.values_at
    }

    /// Takes the bytes `payload` appended after the values off again.
    fn drop_tail(&mut self) {
        let end = self.buf.len() - self.tail_len;
        self.buf.truncate(end);
        self.tail_len = 0;
    }

    /// Bytes of the socket table and the site socket column (none when no event of the block
    /// has socket identity: such a block is laid out as in 1.1).
    fn socket_tail_len(&self) -> usize {
        match self.sockets.recorded {
            false => 0,
            true => 16 + self.sockets.bytes + 4 * self.sites.len(),
        }
    }

    /// Payload bytes the block would take if closed now.
    pub fn raw_len(&mut self) -> usize {
        self.resolve_all();
        self.tables_len()
            + 6 * 8
            + self.len as usize * COLUMN_BYTES_PER_EVENT
            + self.values_len()
            + self.socket_tail_len()
    }

    /// Where the columns and the values start in a buffer with `gap` bytes for the tables and
    /// room for `capacity` events.
    fn layout(gap: usize, capacity: usize) -> ([usize; 5], usize) {
        let mut cols = [0; 5];
        let mut at = gap + 8;
        for (c, width) in COLUMNS.iter().enumerate() {
            cols[c] = at;
            at += width * capacity + 8;
        }
        (cols, at)
    }

    /// Moves the columns and values to a new buffer with `gap` bytes for the tables and room
    /// for `capacity` events.
    #[cold]
    fn relayout(&mut self, gap: usize, capacity: usize) {
        self.drop_tail();
        let (cols, values_at) = Self::layout(gap, capacity);
        // Zeroed by the allocator (calloc): untouched pages stay free.
        let mut buf = vec![0u8; values_at];
        buf.reserve(self.values_len());
        for (c, &at) in cols.iter().enumerate() {
            let col = self.column(c);
            buf[at..][..col.len()].copy_from_slice(col);
        }
        buf.extend_from_slice(&self.buf[self.values_at..]);
        self.buf = buf;
        self.gap = gap;
        self.capacity = capacity;
        self.cols = cols;
        self.values_at = values_at;
    }

    /// Moves packed columns and values back to where `push` writes them.
    #[cold]
    fn unpack(&mut self) {
        self.drop_tail();
        let (cols, values_at) = Self::layout(self.gap, self.capacity);
        let values_len = self.values_len();
        self.buf.resize(values_at + values_len, 0);
        // Everything moves up: the last first, so nothing is overwritten before it moves.
        self.buf
            .copy_within(self.values_at..self.values_at + values_len, values_at);
        for c in (0..5).rev() {
            let len = self.column(c).len();
            self.buf
                .copy_within(self.cols[c]..self.cols[c] + len, cols[c]);
        }
        self.cols = cols;
        self.values_at = values_at;
        self.packed = false;
    }

    #[inline]
    fn put<const N: usize>(&mut self, c: usize, i: usize, bytes: [u8; N]) {
        debug_assert_eq!(N, COLUMNS[c]);
        self.buf[self.cols[c] + i * N..][..N].copy_from_slice(&bytes);
    }

    pub fn push(&mut self, e: &Event<'_>) -> Result<(), Error> {
        let value_len = u16::try_from(e.value.len()).map_err(|_| {
            Error::InvalidInput(format!(
                "an option value of {} bytes is longer than the format's 65535",
                e.value.len()
            ))
        })?;
        if let SocketRef::Socket(s) = e.socket {
            let long = [&s.unix_path, &s.unix_peer]
                .map(|n| n.len())
                .into_iter()
                .max();
            if let Some(n) = long.filter(|&n| n > MAX_UNIX_NAME) {
                return Err(Error::InvalidInput(format!(
                    "a unix socket name of {n} bytes is longer than sun_path's {MAX_UNIX_NAME}"
                )));
            }
        }
        if self.packed {
            self.unpack();
        }
        self.drop_tail();
        let i = self.len as usize;
        if i == self.capacity {
            // The caller closes blocks at `max_events`, which the room made at the start
            // holds; this is only for a caller that does not.
            self.relayout(
                self.gap,
                (2 * self.capacity).min(self.max_events).max(i + 1),
            );
        }
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
            socket: self.sockets.index(e.socket),
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
        self.put(TS, i, e.ts_ns.wrapping_sub(self.prev_ts).to_le_bytes());
        self.put(DURATION, i, e.duration_ns.to_le_bytes());
        match *e.value {
            // An int option's value: a fixed-size copy is one store, where a copy of a
            // length known only at run time is a memcpy call.
            [a, b, c, d] => self.buf.extend_from_slice(&[a, b, c, d]),
            _ => self.buf.extend_from_slice(e.value),
        }

        self.prev_ts = e.ts_ns;
        self.ts_min = self.ts_min.min(e.ts_ns);
        self.ts_max = self.ts_max.max(e.ts_ns);
        self.len += 1;
        Ok(())
    }

    /// Looks up a pending site and writes its event's site index and pointer deltas.
    #[inline]
    fn resolve(&mut self, p: PendingSite) {
        // A new site's pointers start at 0, so its first event stores them whole.
        let (site, (prev_optval, prev_optlen)) =
            self.sites.find_or_insert_hashed(p.site, p.hash, (0, 0));
        let optval = p.optval_ptr.wrapping_sub(*prev_optval);
        let optlen = p.optlen_ptr.wrapping_sub(*prev_optlen);
        (*prev_optval, *prev_optlen) = (p.optval_ptr, p.optlen_ptr);
        let i = self.resolved;
        self.put(SITE, i, site.to_le_bytes());
        self.put(OPTVAL, i, optval.to_le_bytes());
        self.put(OPTLEN, i, optlen.to_le_bytes());
        self.resolved += 1;
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

    /// Lays out the payload (the bytes that get compressed) in place and returns it. Events
    /// pushed afterwards (if the block could not be written) join the same block.
    pub fn payload(&mut self) -> &[u8] {
        self.resolve_all();
        let n = self.len as usize;
        let tables_len = self.tables_len();
        if tables_len > self.gap {
            // A quarter more than this block needs, so that the next one likely fits.
            self.relayout(tables_len + tables_len / 4, self.capacity);
        }
        // The tables go at the end of the gap, right before the first column's length.
        let start = self.gap - tables_len;
        let (threads_len, rest) = self.buf[start..self.gap].split_at_mut(8);
        threads_len.copy_from_slice(&(self.threads.len() as u64).to_le_bytes());
        let (threads, rest) = rest.split_at_mut(self.threads.len() * THREAD_ENTRY_LEN);
        for (b, t) in threads
            .as_chunks_mut()
            .0
            .iter_mut()
            .zip(self.threads.keys())
        {
            t.encode(b);
        }
        let (sites_len, sites) = rest.split_at_mut(8);
        sites_len.copy_from_slice(&(self.sites.len() as u64).to_le_bytes());
        for (b, s) in sites.as_chunks_mut().0.iter_mut().zip(self.sites.keys()) {
            s.encode(b);
        }
        if n < self.capacity {
            // Closed early: the columns move down to follow each other.
            let mut at = self.gap + 8;
            for (col, width) in self.cols.iter_mut().zip(COLUMNS) {
                let len = n * width;
                self.buf.copy_within(*col..*col + len, at);
                *col = at;
                at += len + 8;
            }
            let values_len = self.values_len();
            self.buf.copy_within(self.values_at.., at);
            self.buf.truncate(at + values_len);
            self.values_at = at;
            self.packed = true;
        }
        for col in self.cols {
            self.buf[col - 8..col].copy_from_slice(&(n as u64).to_le_bytes());
        }
        let values_len = self.values_len() as u64;
        self.buf[self.values_at - 8..self.values_at].copy_from_slice(&values_len.to_le_bytes());
        self.append_socket_tail();
        &self.buf[start..]
    }

    /// Appends the socket table and the site socket column after the values (FORMAT.md 4.3),
    /// if any event of the block has socket identity.
    fn append_socket_tail(&mut self) {
        self.drop_tail();
        if !self.sockets.recorded {
            return;
        }
        let before = self.buf.len();
        self.buf
            .extend_from_slice(&(self.sockets.keys.len() as u64).to_le_bytes());
        for s in &self.sockets.keys {
            s.encode(&mut self.buf);
        }
        self.buf
            .extend_from_slice(&(self.sites.len() as u64).to_le_bytes());
        for site in self.sites.keys() {
            self.buf.extend_from_slice(&site.socket.to_le_bytes());
        }
        self.tail_len = self.buf.len() - before;
        debug_assert_eq!(self.tail_len, self.socket_tail_len());
    }

    pub fn clear(&mut self) {
        self.drop_tail();
        self.threads.clear();
        self.sites.clear();
        self.sockets.clear();
        self.last_thread = None;
        self.pending_len = 0;
        self.resolved = 0;
        self.len = 0;
        // After payload() packed an early-closed block, this restores the full layout.
        (self.cols, self.values_at) = Self::layout(self.gap, self.capacity);
        self.buf.resize(self.values_at, 0);
        self.packed = false;
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
    /// The block's socket table (empty in a block without socket identity).
    sockets: Vec<Socket>,
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

    /// The block's socket table, which [`Site::socket`] indexes.
    pub fn sockets(&self) -> &[Socket] {
        &self.sockets
    }

    /// What a site's calls know about their socket.
    pub fn site_socket(&self, site: &Site) -> SocketRef<'_> {
        socket_ref(&self.sockets, site.socket)
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
        // Since 1.2: the socket table and the site socket column, if the block has them.
        // Anything after those belongs to a later minor version: skipped.
        let socket_tail = match values_start + values_len < raw.len() {
            true => Some(seq("socket table", SOCKET_MIN_LEN, None)?),
            false => None,
        };

        decode_tables(
            raw,
            (threads_at, n_threads),
            (sites_at, n_sites),
            &mut self.threads,
            &mut self.sites,
            frame_offset,
        )?;
        self.sockets.clear();
        if let Some((sockets_at, n_sockets)) = socket_tail {
            decode_sockets(
                raw,
                sockets_at,
                n_sockets,
                &mut self.sockets,
                &mut self.sites,
            )
            .map_err(|(at, what)| err(at, what))?;
        }
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
            sockets: &self.sockets,
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
    sockets: &'a [Socket],
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
            socket: socket_ref(self.sockets, s.socket),
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

/// A site's [`SocketRef`]; `parse` checked that every site's index is in the table.
#[inline]
fn socket_ref(sockets: &[Socket], index: u32) -> SocketRef<'_> {
    match index {
        Site::SOCKET_NOT_RECORDED => SocketRef::NotRecorded,
        Site::SOCKET_NONE => SocketRef::NoSocket,
        i => SocketRef::Socket(&sockets[i as usize]),
    }
}

/// Decodes a block's socket table (`n_sockets` entries from byte `at` of `raw`) and the site
/// socket column after it (FORMAT.md 4.3) into each site's `socket`. An error is the payload
/// position and what was expected there. Bytes after the column belong to a later version.
pub(crate) fn decode_sockets(
    raw: &[u8],
    mut at: usize,
    n_sockets: usize,
    sockets: &mut Vec<Socket>,
    sites: &mut [Site],
) -> Result<(), (usize, String)> {
    for _ in 0..n_sockets {
        let (s, len) = Socket::decode(&raw[at..]).map_err(|(i, what)| (at + i, what))?;
        sockets.push(s);
        at += len;
    }
    let n_sites = sites.len();
    let len = raw
        .get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if len != Some(n_sites as u64) || raw.len() - at - 8 < 4 * n_sites {
        let found = len.map_or("the payload's end".into(), |n| n.to_string());
        let what = format!("a site socket column of {n_sites} elements, found {found}");
        return Err((at, what));
    }
    at += 8;
    for (i, site) in sites.iter_mut().enumerate() {
        let b = &raw[at + 4 * i..][..4];
        let index = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        if index as usize >= n_sockets && index < Site::SOCKET_NONE {
            let what = format!(
                "a socket index below {n_sockets} (or 4294967294, 4294967295), found {index}"
            );
            return Err((at + 4 * i, what));
        }
        site.socket = index;
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

    /// A payload laid out early (a block closed before it was full) and then pushed to, as after
    /// a failed close, is the payload of all the events; after a clear, the next block's too.
    #[test]
    fn payload_is_the_same_however_often_it_was_laid_out() {
        let mut synth = crate::synth::Synth::new(crate::synth::SynthConfig {
            events: 30_000,
            ..Default::default()
        });
        let mut events = Vec::new();
        let mut e = crate::OwnedEvent::default();
        while synth.next_event(&mut e) {
            events.push(e.clone());
        }
        let (first, second) = events.split_at(12_000);
        let payload_of = |events: &[crate::OwnedEvent]| {
            let mut b = BlockEncoder::new(65536);
            for e in events {
                b.push(&e.as_event()).unwrap();
            }
            b.payload().to_vec()
        };
        let mut b = BlockEncoder::new(65536);
        for (i, e) in first.iter().enumerate() {
            b.push(&e.as_event()).unwrap();
            if i % 5000 == 17 {
                b.payload();
            }
        }
        assert_eq!(b.payload(), payload_of(first));
        b.clear();
        for e in second {
            b.push(&e.as_event()).unwrap();
        }
        assert_eq!(b.payload(), payload_of(second));
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

    /// A payload with a socket table (two sockets, four sites), then `tweak`ed and parsed.
    fn parse_socket_payload(tweak: impl Fn(&mut Vec<u8>, usize)) -> Result<DecodedBlock, Error> {
        let sock = |ino| Socket {
            family: 1,
            ino,
            unix_path: b"/run/a".to_vec(),
            ..Socket::default()
        };
        let (a, b) = (sock(1), sock(2));
        let mut enc = BlockEncoder::new(16);
        for (i, r) in [
            SocketRef::Socket(&a),
            SocketRef::Socket(&b),
            SocketRef::NoSocket,
            SocketRef::NotRecorded,
        ]
        .into_iter()
        .enumerate()
        {
            let e = Event {
                ts_ns: i as u64,
                duration_ns: 0,
                cpu: 0,
                tgid: 1,
                tid: 1,
                ppid: 0,
                uid: 0,
                gid: 0,
                comm: [0; COMM_LEN],
                cgroup_id: 0,
                pid_ns: 0,
                mnt_ns: 0,
                fd: 3,
                level: 1,
                optname: 4,
                optval_ptr: 0,
                optlen_ptr: 0,
                optlen_in: 4,
                optlen_out: 4,
                ret: 0,
                flags: 0,
                value: &[],
                socket: r,
            };
            enc.push(&e).unwrap();
        }
        let mut raw = enc.payload().to_vec();
        // The socket table starts after the values' length (0 values): find it from the end.
        let tail = 8 + 2 * (SOCKET_MIN_LEN + 6) + 8 + 4 * 4;
        let at = raw.len() - tail;
        tweak(&mut raw, at);
        let mut d = DecodedBlock {
            raw,
            ..DecodedBlock::default()
        };
        d.parse(4, 100).map(|()| d)
    }

    #[test]
    fn socket_tables_are_checked() {
        let d = parse_socket_payload(|_, _| {}).unwrap();
        let socks: Vec<u32> = d.sites().iter().map(|s| s.socket).collect();
        assert_eq!(socks, [0, 1, Site::SOCKET_NONE, Site::SOCKET_NOT_RECORDED]);
        let err = |tweak: &dyn Fn(&mut Vec<u8>, usize)| {
            parse_socket_payload(tweak).unwrap_err().to_string()
        };
        let last = |raw: &mut Vec<u8>| {
            let n = raw.len();
            raw[n - 16..n - 12].copy_from_slice(&2u32.to_le_bytes());
        };
        assert!(
            err(&|r, _| last(r)).contains("a socket index below 2"),
            "{}",
            err(&|r, _| last(r))
        );
        let cut = |r: &mut Vec<u8>, _: usize| r.truncate(r.len() - 4);
        assert!(
            err(&cut).contains("site socket column of 4 elements"),
            "{}",
            err(&cut)
        );
        let huge =
            |r: &mut Vec<u8>, at: usize| r[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            err(&huge).contains("socket table length of at most"),
            "{}",
            err(&huge)
        );
        // A unix name whose length runs past the payload.
        let name = |r: &mut Vec<u8>, at: usize| {
            let p = at + 8 + SOCKET_MIN_LEN - 16;
            r[p..p + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        };
        assert!(
            err(&name).contains("unix_path length of at most"),
            "{}",
            err(&name)
        );
        // Without the two fields the block is read as not recorded.
        let d = parse_socket_payload(|r, at| r.truncate(at)).unwrap();
        assert!(
            d.sites()
                .iter()
                .all(|s| s.socket == Site::SOCKET_NOT_RECORDED)
        );
    }
}
