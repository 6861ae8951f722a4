#!/usr/bin/env python3
"""An independent reader for `.gsot` getsockopt trace files, format version 1.x (up to 1.3).

Written from FORMAT.md alone (no look at the Rust implementation), to show that the
specification is enough to read the format. Pure Python 3.11 plus the PyPI package
`zstandard` for decompression.

Usage: python3 read_gsot.py FILE     prints a JSON summary of the file
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field

import zstandard

# --- Constants from FORMAT.md ------------------------------------------------------------

MAGIC = b"\x89GSO\r\n\x1a\n"  # section 2.1
END_MAGIC = b"GSOTEND\n"  # section 6
KNOWN_MAJOR = 1
KNOWN_MINOR = 4  # 1.1 adds BSUM block summaries (section 4.2), 1.2 socket identity (4.3), 1.3 CTNR and CGV1 (5.1, 5.2), 1.4 AGGR (5.3)

PREAMBLE_LEN = 16
SECTION_HEADER_LEN = 16
TRAILER_LEN = 24
BLOCK_HEADER_LEN = 24  # event_count, raw_len, ts_min, ts_max (section 4)
THREAD_LEN = 52
SITE_LEN = 36

MAX_BODY_LEN = 268_435_456  # 256 MiB
MAX_BLOCK_EVENTS = 1_048_576
MAX_RAW_LEN = 67_108_864  # 64 MiB
MIN_RAW_BYTES_PER_EVENT = 36

BSUM_HEADER_LEN = 20  # block_offset, event_count, site_count, raw_len (section 4.2)
MAX_VARINT_LEN = 9  # a u64 in the varint encoding: marker 253 and 8 bytes

TAG_HEAD, TAG_BLCK, TAG_PROC, TAG_LOSS, TAG_INDX = b"HEAD", b"BLCK", b"PROC", b"LOSS", b"INDX"
TAG_BSUM = b"BSUM"
TAG_CTNR = b"CTNR"  # since 1.3 (section 5.1)
TAG_CGV1 = b"CGV1"  # since 1.3 (section 5.2)
TAG_AGGR = b"AGGR"  # since 1.4 (section 5.3)
LATER_TAGS = (TAG_CTNR, TAG_CGV1, TAG_AGGR)  # listed after INDX total_events (section 6)
# Section 7 step 3: "a 1.1 reader knows BSUM" when searching past damage.
KNOWN_TAGS = {TAG_HEAD, TAG_BLCK, TAG_BSUM, TAG_PROC, TAG_LOSS, TAG_CTNR, TAG_CGV1, TAG_AGGR, TAG_INDX}

AGG_BUCKETS = 304  # section 5.3: indexes 0 to 303
SAMPLE_ALL = 1 << 32  # section 5.3: sample_p of a period in which every call was picked
OVERFLOW_TGID = 0xFFFFFFFF  # section 5.3: the overflow entry

U64_MASK = (1 << 64) - 1


class GsotError(Exception):
    """A file that cannot be read as the spec says. Always names a file offset."""

    def __init__(self, offset: int, message: str):
        super().__init__(f"offset {offset}: {message}")
        self.offset = offset
        self.message = message


class VersionError(GsotError):
    """A file of a major version this reader does not know (section 2.1, section 8)."""


# --- CRC32C (section 1) ------------------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of `data`. Pass a previous result as `crc` to continue it ("A then B")."""
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- bincode "varint" configuration (section 1), used by HEAD, PROC, LOSS, INDX -----------


class VarintReader:
    """Reads bincode standard() values from a section body; errors name file offsets."""

    def __init__(self, data: bytes, file_offset: int):
        self.data = data
        self.pos = 0
        self.file_offset = file_offset  # file offset of data[0]

    def where(self) -> int:
        return self.file_offset + self.pos

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise GsotError(self.where(), f"needs {n} bytes, only {self.left()} left in the section")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def bool(self) -> bool:
        at = self.where()
        byte = self.u8()
        if byte > 1:
            raise GsotError(at, f"bool byte is {byte}, not 0 or 1")
        return byte == 1

    def _unsigned(self, width: int) -> int:
        """u16/u32/u64: a byte < 251 is the value; 251/252/253 announce 2/4/8 bytes."""
        at = self.where()
        first = self.u8()
        if first < 251:
            return first
        if first >= 254:
            raise GsotError(at, f"invalid varint marker byte {first}")
        size = {251: 2, 252: 4, 253: 8}[first]
        if size > width:
            raise GsotError(at, f"varint marker {first} announces {size} bytes for a {width}-byte integer")
        value = int.from_bytes(self.take(size), "little")
        # Cannot actually trigger given the check above, but the spec lists it as a rule.
        if value >= 1 << (8 * width):
            raise GsotError(at, f"value {value} too large for a {width}-byte integer")
        return value

    def u16(self) -> int:
        return self._unsigned(2)

    def u32(self) -> int:
        return self._unsigned(4)

    def u64(self) -> int:
        return self._unsigned(8)

    @staticmethod
    def _unzigzag(n: int) -> int:
        # 0, 1, 2, 3, ... -> 0, -1, 1, -2, ...
        return n >> 1 if n & 1 == 0 else -((n + 1) >> 1)

    def i32(self) -> int:
        return self._unzigzag(self._unsigned(4))

    def i64(self) -> int:
        return self._unzigzag(self._unsigned(8))

    def fixed(self, n: int) -> bytes:
        return self.take(n)

    def length(self) -> int:
        """A String/Vec length (u64). Section 9: never more than the bytes left could hold,
        since every element takes at least one byte."""
        at = self.where()
        n = self.u64()
        if n > self.left():
            raise GsotError(at, f"length {n} is more than the {self.left()} bytes left could hold")
        return n

    def string(self) -> str:
        n = self.length()
        at = self.where()
        raw = self.take(n)
        # Section 1: bytes that are not UTF-8 are decoded lossily, never rejected.
        return raw.decode("utf-8", "replace")

    def vec(self, read_element) -> list:
        return [read_element() for _ in range(self.length())]

    def string_pair(self) -> tuple[str, str]:
        return (self.string(), self.string())


# --- Data model ----------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    ts_ns: int
    duration_ns: int
    cgroup_id: int
    optval_ptr: int
    optlen_ptr: int
    cpu: int
    tgid: int
    tid: int
    ppid: int
    uid: int
    gid: int
    pid_ns: int
    mnt_ns: int
    fd: int
    level: int
    optname: int
    optlen_in: int
    optlen_out: int
    ret: int
    flags: int
    comm: bytes
    value: bytes
    # Section 4.3: None when not recorded, NO_SOCKET when the fd was not an open socket,
    # else the socket's fields as a dict.
    socket: dict | str | None = None


@dataclass(slots=True)
class BlockRef:
    """Where a block is, and what its section says about it (from INDX or from a scan)."""

    offset: int  # offset of the BLCK section header
    event_count: int
    ts_min: int
    ts_max: int


@dataclass(slots=True)
class Section:
    offset: int
    tag: bytes
    body: bytes

    @property
    def body_offset(self) -> int:
        return self.offset + SECTION_HEADER_LEN

    @property
    def end(self) -> int:
        return self.offset + SECTION_HEADER_LEN + len(self.body)


@dataclass
class ScanReport:
    """How a file without a usable trailer/index was read (section 7)."""

    reason: str  # why the trailer/index path failed
    stop_offset: int  # where scanning stopped
    stop_reason: str


# --- Section framing (section 2.2) ------------------------------------------------------------


def _header_fields(data: bytes, offset: int) -> tuple[bytes, int, int, bool]:
    """Tag, body_len, body CRC, and whether the header's own CRC holds, at `offset`
    (which must have 16 bytes)."""
    header = data[offset : offset + SECTION_HEADER_LEN]
    tag = header[0:4]
    body_len, body_crc, header_crc = struct.unpack_from("<III", header, 4)
    return tag, body_len, body_crc, crc32c(header[0:12]) == header_crc


def read_section(data: bytes, offset: int, expected_tag: bytes | None = None) -> Section:
    """Read and fully check the section at `offset`; raise GsotError on any failure."""
    if offset + SECTION_HEADER_LEN > len(data):
        raise GsotError(offset, "section header runs past the end of the file")
    tag, body_len, body_crc, header_ok = _header_fields(data, offset)
    if not header_ok:
        raise GsotError(offset, "section header CRC mismatch")
    if expected_tag is not None and tag != expected_tag:
        raise GsotError(offset, f"expected a {expected_tag.decode()} section, found tag {tag!r}")
    if body_len > MAX_BODY_LEN:
        raise GsotError(offset + 4, f"body_len {body_len} exceeds the 256 MiB limit")
    body_offset = offset + SECTION_HEADER_LEN
    if body_offset + body_len > len(data):
        raise GsotError(body_offset, f"{_tag_name(tag)} body of {body_len} bytes runs past the end of the file")
    body = data[body_offset : body_offset + body_len]
    if crc32c(body) != body_crc:
        raise GsotError(body_offset, f"{_tag_name(tag)} body CRC mismatch")
    return Section(offset, tag, body)


def _tag_name(tag: bytes) -> str:
    return tag.decode("ascii", "backslashreplace")


# --- HEAD, PROC, LOSS, INDX bodies (sections 3, 5, 6) ------------------------------------------


def decode_head(body: bytes, body_offset: int) -> dict:
    r = VarintReader(body, body_offset)
    header = {
        "capture_id": r.fixed(16).hex(),
        "host_name": r.string(),
        "kernel_release": r.string(),
        "arch": r.string(),
        "cpu_count": r.u32(),
        "boot_to_wall_ns": r.i64(),
        "start_ts_ns": r.u64(),
        "recorder_version": r.string(),
        "command_line": r.vec(r.string),
        "attach_mode": r.string(),
        "filters": [list(p) for p in r.vec(r.string_pair)],
        "snaplen": r.u32(),
        "sequence": r.u32(),
        "redacted": r.bool(),
        "extra": [list(p) for p in r.vec(r.string_pair)],
    }
    # Bytes after the last known field belong to a later minor version: ignored.
    return header


def decode_proc(body: bytes, body_offset: int) -> list[dict]:
    r = VarintReader(body, body_offset)

    def process() -> dict:
        return {
            "pid": r.u32(),
            "ppid": r.u32(),
            "first_seen_ns": r.u64(),
            "comm": r.string(),
            "exe": r.string(),
            "cgroup": r.string(),
        }

    entries = r.vec(process)
    # FORMAT.md §5: bytes after the list belong to a later minor version: ignored.
    return entries


def decode_loss(body: bytes, body_offset: int) -> list[dict]:
    r = VarintReader(body, body_offset)

    def loss() -> dict:
        return {"cpu": r.u32(), "lost": r.u64(), "start_ns": r.u64(), "end_ns": r.u64()}

    entries = r.vec(loss)
    # FORMAT.md §5: bytes after the list belong to a later minor version: ignored.
    return entries


def decode_indx(body: bytes, body_offset: int) -> tuple[list[BlockRef], list[tuple[bytes, int]], int]:
    r = VarintReader(body, body_offset)
    blocks = r.vec(lambda: BlockRef(r.u64(), r.u32(), r.u64(), r.u64()))
    sections = r.vec(lambda: (r.fixed(4), r.u64()))
    total_events = r.u64()
    # Since 1.3: more_sections, offsets whose kind is in their header (None here), absent when
    # no bytes are left; bytes that do not decode as that list predate it: ignored (section 6).
    if r.left() > 0:
        try:
            sections += [(None, off) for off in r.vec(r.u64)]
        except GsotError:
            pass
    # Bytes after the last known field belong to a later minor version: ignored.
    return blocks, sections, total_events


def decode_ctnr(body: bytes, body_offset: int) -> list[dict]:
    r = VarintReader(body, body_offset)
    names = ("id", "runtime", "name", "image", "pod_name", "pod_namespace", "k8s_container")
    entries = r.vec(lambda: {k: r.string() for k in names})
    # FORMAT.md §5.1: bytes after the list belong to a later minor version: ignored.
    return entries


def decode_cgv1(body: bytes, body_offset: int) -> list[dict]:
    r = VarintReader(body, body_offset)
    entries = r.vec(lambda: {"pid": r.u32(), "first_seen_ns": r.u64(), "path": r.string()})
    # FORMAT.md §5.2: bytes after the list belong to a later minor version: ignored.
    return entries


def decode_aggr(body: bytes, body_offset: int) -> list[dict]:
    """Section 5.3: a list of periods, each with its entries; every rule checked."""
    r = VarintReader(body, body_offset)

    def buckets() -> list[tuple[int, int]]:
        out = []
        for _ in range(r.length()):
            at = r.where()
            index, calls = r.u32(), r.u64()
            if index >= AGG_BUCKETS or (out and index <= out[-1][0]) or calls == 0:
                raise GsotError(at, f"bucket index {index} with {calls} calls breaks section 5.3")
            out.append((index, calls))
        return out

    def entry() -> dict:
        e = {"tgid": r.u32(), "level": r.i32(), "optname": r.i32(), "ret": r.i32(),
             "duration_sum_ns": r.u64(), "duration_max_ns": r.u64()}
        e["buckets"] = buckets()
        e["calls"] = sum(n for _, n in e["buckets"])
        return e

    def period() -> dict:
        at = r.where()
        names = ("start_ns", "end_ns", "sample_p", "sampled", "capped", "dropped")
        p = {k: r.u64() for k in names}
        if p["start_ns"] > p["end_ns"] or p["sample_p"] > SAMPLE_ALL or p["capped"] + p["dropped"] > p["sampled"]:
            raise GsotError(at, f"an aggregate period that breaks section 5.3: {p}")
        p["entries"] = r.vec(entry)
        return p

    periods = r.vec(period)
    # FORMAT.md §5.3: bytes after the list belong to a later minor version: ignored.
    return periods


def aggregate_bucket_range(index: int) -> tuple[int, int | None]:
    """Section 5.3: the durations bucket `index` holds, [low, high); high None for the last."""
    if index < 8:
        return index, index + 1
    j = index - 8
    s, m = j // 8, 8 + j % 8
    return m << s, None if index == AGG_BUCKETS - 1 else (m + 1) << s


# --- BLCK bodies (section 4) -----------------------------------------------------------------

# zstd input is fed in small pieces so that a damaged or hostile frame cannot make us
# allocate far more than raw_len before we notice (section 9).
_ZSTD_FEED = 256


def _feed(frame: bytes, raw_len: int, frame_offset: int, need: int | None):
    """Decompress a zstd frame piece by piece, never past raw_len bytes of output, until `need`
    bytes are out (None: until the frame ends). Returns the output, the decompressor and how
    many frame bytes were fed."""
    dobj = zstandard.ZstdDecompressor().decompressobj()
    out = bytearray()
    pos = 0
    try:
        while (need is None or len(out) < need) and pos < len(frame) and not dobj.eof:
            piece = frame[pos : pos + _ZSTD_FEED]
            pos += len(piece)
            out += dobj.decompress(piece)
            if len(out) > raw_len:
                raise GsotError(frame_offset, f"zstd frame decompresses to more than raw_len={raw_len} bytes")
    except zstandard.ZstdError as err:
        raise GsotError(frame_offset, f"zstd frame is invalid: {err}") from None
    return out, dobj, pos


def decompress_frame(frame: bytes, raw_len: int, frame_offset: int) -> bytes:
    """Decompress exactly one zstd frame that must fill the rest of the body and decompress
    to exactly raw_len bytes."""
    out, dobj, pos = _feed(frame, raw_len, frame_offset, None)
    if not dobj.eof:
        raise GsotError(frame_offset, "zstd frame is incomplete")
    trailing = len(dobj.unused_data) + (len(frame) - pos)
    if trailing:
        raise GsotError(frame_offset, f"{trailing} bytes after the zstd frame")
    if len(out) != raw_len:
        raise GsotError(frame_offset, f"zstd frame decompresses to {len(out)} bytes, raw_len says {raw_len}")
    return bytes(out)


class FixintReader:
    """Reads the fixint payload; errors name the frame's file offset and payload position."""

    def __init__(self, payload: bytes, frame_offset: int):
        self.payload = payload
        self.pos = 0
        self.frame_offset = frame_offset

    def error(self, pos: int, message: str) -> GsotError:
        return GsotError(self.frame_offset, f"payload position {pos}: {message}")

    def left(self) -> int:
        return len(self.payload) - self.pos

    def u64(self) -> int:
        if self.left() < 8:
            raise self.error(self.pos, "u64 runs past the end of the payload")
        (value,) = struct.unpack_from("<Q", self.payload, self.pos)
        self.pos += 8
        return value

    def vec_length(self, element_size: int, what: str) -> int:
        at = self.pos
        n = self.u64()
        if n * element_size > self.left():
            raise self.error(at, f"{what}: {n} elements of {element_size} bytes run past the end of the payload")
        return n

    def records(self, fmt: str, what: str) -> list[tuple]:
        """A Vec of fixed-size structs, each described by a struct format."""
        size = struct.calcsize(fmt)
        n = self.vec_length(size, what)
        items = list(struct.iter_unpack(fmt, self.payload[self.pos : self.pos + n * size]))
        self.pos += n * size
        return items

    def column(self, code: str, expected: int, what: str) -> tuple:
        """A per-event Vec of integers, which must have exactly `expected` elements."""
        size = struct.calcsize("<" + code)
        at = self.pos
        n = self.vec_length(size, what)
        if n != expected:
            raise self.error(at, f"{what} has {n} elements, event_count is {expected}")
        values = struct.unpack_from(f"<{n}{code}", self.payload, self.pos)
        self.pos += n * size
        return values

    def byte_vec(self, what: str) -> bytes:
        n = self.vec_length(1, what)
        data = self.payload[self.pos : self.pos + n]
        self.pos += n
        return data


# Section 4.3: the two site_socket values that are not an index into `sockets`.
SITE_SOCKET_NONE = 0xFFFFFFFE
SITE_SOCKET_NOT_RECORDED = 0xFFFFFFFF
NO_SOCKET = "no socket"
# Socket (fixed part): family, sock_type, protocol, tcp_state, local_addr[16], local_port,
# remote_addr[16], remote_port, scope_id, ino, netns, netlink_portid (63 bytes), then the two
# Vec<u8> names.
_SOCKET_FIXED_FMT = "<3HB16sH16sHIQII"
_SOCKET_FIELDS = ("family", "sock_type", "protocol", "tcp_state", "local_addr", "local_port",
                  "remote_addr", "remote_port", "scope_id", "ino", "netns", "netlink_portid")
SOCKET_MIN_LEN = 79
assert struct.calcsize(_SOCKET_FIXED_FMT) == 63


def read_sockets(r: "FixintReader", site_count: int) -> list:
    """Section 4.3: the `sockets` table and the `site_socket` column, as each site's socket
    (None, NO_SOCKET or a dict)."""
    n = r.vec_length(SOCKET_MIN_LEN, "sockets")
    sockets = []
    for _ in range(n):
        if r.left() < 63:
            raise r.error(r.pos, "a socket entry runs past the end of the payload")
        s = dict(zip(_SOCKET_FIELDS, struct.unpack_from(_SOCKET_FIXED_FMT, r.payload, r.pos)))
        r.pos += 63
        s["unix_path"] = r.byte_vec("unix_path")
        s["unix_peer"] = r.byte_vec("unix_peer")
        sockets.append(s)
    at = r.pos
    if r.left() < 8:
        raise r.error(at, "site_socket is missing after sockets")
    count = r.vec_length(4, "site_socket")
    if count != site_count:
        raise r.error(at, f"site_socket has {count} elements, sites has {site_count}")
    out = []
    for j, v in enumerate(struct.unpack_from(f"<{count}I", r.payload, r.pos)):
        if v == SITE_SOCKET_NOT_RECORDED:
            out.append(None)
        elif v == SITE_SOCKET_NONE:
            out.append(NO_SOCKET)
        elif v < n:
            out.append(sockets[v])
        else:
            raise r.error(r.pos + 4 * j, f"site_socket {j}: {v} is not below {n} sockets")
    r.pos += 4 * count
    return out


# Thread: tgid, tid, ppid, uid, gid, comm[16], cgroup_id, pid_ns, mnt_ns (52 bytes)
_THREAD_FMT = "<5I16sQ2I"
# Site: thread, cpu, fd, level, optname, optlen_in, optlen_out, ret, flags, value_len (36 bytes)
_SITE_FMT = "<2I6i2H"
assert struct.calcsize(_THREAD_FMT) == THREAD_LEN and struct.calcsize(_SITE_FMT) == SITE_LEN


def parse_block_header(body: bytes, body_offset: int) -> tuple[int, int, int, int]:
    """event_count, raw_len, ts_min, ts_max, with their limits checked."""
    if len(body) < BLOCK_HEADER_LEN:
        raise GsotError(body_offset, f"BLCK body of {len(body)} bytes is shorter than its 24-byte header")
    event_count, raw_len, ts_min, ts_max = struct.unpack_from("<IIQQ", body, 0)
    if event_count > MAX_BLOCK_EVENTS:
        raise GsotError(body_offset, f"event_count {event_count} exceeds {MAX_BLOCK_EVENTS}")
    if raw_len > MAX_RAW_LEN:
        raise GsotError(body_offset + 4, f"raw_len {raw_len} exceeds {MAX_RAW_LEN}")
    if raw_len < 64 + MIN_RAW_BYTES_PER_EVENT * event_count:
        raise GsotError(body_offset + 4, f"raw_len {raw_len} is less than 64 + 36 x event_count ({event_count})")
    if event_count and ts_min > ts_max:
        raise GsotError(body_offset + 8, f"ts_min {ts_min} > ts_max {ts_max}")
    return event_count, raw_len, ts_min, ts_max


@dataclass(slots=True)
class DecodedBlock:
    """A decoded block: its events, plus what a BSUM check needs (section 4.2)."""

    events: list[Event]
    site_count: int  # len(sites)
    site_index: tuple  # the `site` column, per event
    # Section 4.1: the events are authoritative over ts_min/ts_max; a disagreement is
    # reported (offset, text), the block is still read.
    bounds_problem: tuple[int, str] | None = None

    def durations_by_site(self) -> list[list[int]]:
        """The block's durations grouped by site index and sorted: what its BSUM must hold.
        A site no event uses gets an empty list (which no valid BSUM can express)."""
        groups: list[list[int]] = [[] for _ in range(self.site_count)]
        for event, s in zip(self.events, self.site_index):
            groups[s].append(event.duration_ns)
        for group in groups:
            group.sort()
        return groups


def decode_block(body: bytes, body_offset: int) -> list[Event]:
    """Decode one BLCK body (already CRC-checked) into its events."""
    return decode_block_full(body, body_offset).events


def decode_block_full(body: bytes, body_offset: int) -> DecodedBlock:
    """Decode one BLCK body (already CRC-checked)."""
    event_count, raw_len, ts_min, ts_max = parse_block_header(body, body_offset)
    frame_offset = body_offset + BLOCK_HEADER_LEN
    payload = decompress_frame(body[BLOCK_HEADER_LEN:], raw_len, frame_offset)

    r = FixintReader(payload, frame_offset)
    threads = r.records(_THREAD_FMT, "threads")
    sites_at = r.pos
    sites = r.records(_SITE_FMT, "sites")
    ts_delta = r.column("Q", event_count, "ts_delta")
    duration = r.column("Q", event_count, "duration_ns")
    site_at = r.pos
    site_index = r.column("I", event_count, "site")
    optval_delta = r.column("Q", event_count, "optval_delta")
    optlen_delta = r.column("Q", event_count, "optlen_delta")
    values_at = r.pos
    values = r.byte_vec("values")
    # Section 4.3: `sockets` and `site_socket` follow when the block has socket identity;
    # bytes after those are columns of a later minor version: ignored.
    site_sockets = read_sockets(r, len(sites)) if r.left() > 0 else [None] * len(sites)

    for i, site in enumerate(sites):
        if site[0] >= len(threads):
            pos = sites_at + 8 + i * SITE_LEN
            raise r.error(pos, f"site {i}: thread index {site[0]} >= {len(threads)} threads")

    events = []
    ts = 0  # "ts_ns[-1] = 0": the first time delta is the absolute time
    # The pointers are deltas from the previous event *of the same site* (not of the
    # previous event): every site's last pointers start at 0 in each block.
    last_optval = [0] * len(sites)
    last_optlen = [0] * len(sites)
    value_pos = 0
    for i in range(event_count):
        s = site_index[i]
        if s >= len(sites):
            raise r.error(site_at + 8 + 4 * i, f"event {i}: site index {s} >= {len(sites)} sites")
        (thread_i, cpu, fd, level, optname, optlen_in, optlen_out, ret, flags, value_len) = sites[s]
        (tgid, tid, ppid, uid, gid, comm, cgroup_id, pid_ns, mnt_ns) = threads[thread_i]
        ts = (ts + ts_delta[i]) & U64_MASK
        optval = last_optval[s] = (last_optval[s] + optval_delta[i]) & U64_MASK
        optlen = last_optlen[s] = (last_optlen[s] + optlen_delta[i]) & U64_MASK
        if value_pos + value_len > len(values):
            raise r.error(values_at, f"event {i}: value of {value_len} bytes runs past the end of values")
        value = values[value_pos : value_pos + value_len]
        value_pos += value_len
        events.append(
            Event(ts, duration[i], cgroup_id, optval, optlen, cpu, tgid, tid, ppid, uid, gid,
                  pid_ns, mnt_ns, fd, level, optname, optlen_in, optlen_out, ret, flags, comm, value,
                  site_sockets[s])
        )
    if value_pos != len(values):
        raise r.error(values_at, f"the events' value_len add up to {value_pos}, values has {len(values)} bytes")

    # ts_min/ts_max are defined as the earliest/latest event time; check they say so, and
    # report rather than refuse (section 4.1: the events are authoritative).
    bounds_problem = None
    if events:
        lo = min(e.ts_ns for e in events)
        hi = max(e.ts_ns for e in events)
        if (lo, hi) != (ts_min, ts_max):
            bounds_problem = (body_offset + 8, f"block says ts {ts_min}..{ts_max}, its events span {lo}..{hi}")
    return DecodedBlock(events, len(sites), site_index, bounds_problem)


def block_site_count(body: bytes, body_offset: int) -> int:
    """len(sites) of a BLCK body (already CRC-checked), decompressing only the start of its
    frame: `threads` and `sites` open the payload (section 4.2), so a question about sites and
    durations need not decompress the columns."""
    _count, raw_len, _ts_min, _ts_max = parse_block_header(body, body_offset)
    frame_offset = body_offset + BLOCK_HEADER_LEN

    def error(pos: int, message: str) -> GsotError:
        return GsotError(frame_offset, f"payload position {pos}: {message}")

    prefix = decompress_prefix(body[BLOCK_HEADER_LEN:], 8, raw_len, frame_offset)
    (threads,) = struct.unpack_from("<Q", prefix, 0)
    sites_at = 8 + threads * THREAD_LEN
    if sites_at + 8 > raw_len:
        raise error(0, f"threads: {threads} elements of {THREAD_LEN} bytes run past the end of the payload")
    prefix = decompress_prefix(body[BLOCK_HEADER_LEN:], sites_at + 8, raw_len, frame_offset)
    (sites,) = struct.unpack_from("<Q", prefix, sites_at)
    if sites * SITE_LEN > raw_len - sites_at - 8:
        raise error(sites_at, f"sites: {sites} elements of {SITE_LEN} bytes run past the end of the payload")
    return sites


def decompress_prefix(frame: bytes, need: int, raw_len: int, frame_offset: int) -> bytes:
    """At least the first `need` bytes (need <= raw_len) of a zstd frame's output."""
    out, _, _ = _feed(frame, raw_len, frame_offset, need)
    if len(out) < need:
        raise GsotError(frame_offset, f"zstd frame ends after {len(out)} bytes, raw_len says {raw_len}")
    return bytes(out)


# --- BSUM bodies (section 4.2) -------------------------------------------------------------------


def decode_bsum(body: bytes, body_offset: int, block_offset: int, event_count: int, site_count: int) -> list[list[int]]:
    """Decode one BSUM body (already CRC-checked) summarising the block at `block_offset`,
    which has `event_count` events and `site_count` sites. Returns, per site in the order of
    the block's `sites`, that site's durations in ascending order. Raises GsotError for
    everything section 4.2 says a reader rejects."""
    if len(body) < BSUM_HEADER_LEN:
        raise GsotError(body_offset, f"BSUM body of {len(body)} bytes is shorter than its 20-byte header")
    got_offset, got_count, got_sites, raw_len = struct.unpack_from("<QIII", body, 0)
    if got_offset != block_offset:
        raise GsotError(body_offset, f"BSUM block_offset is {got_offset}, the block before it is at {block_offset}")
    if got_count != event_count:
        raise GsotError(body_offset + 8, f"BSUM event_count is {got_count}, the block has {event_count} events")
    if got_sites != site_count:
        raise GsotError(body_offset + 12, f"BSUM site_count is {got_sites}, the block has {site_count} sites")
    # Every number takes 1 to 9 bytes, so raw_len outside these bounds means the numbers
    # would run past it or stop short of it; checking first bounds what we decompress.
    numbers = event_count + site_count
    if not numbers <= raw_len <= MAX_VARINT_LEN * numbers:
        raise GsotError(
            body_offset + 16,
            f"BSUM raw_len {raw_len} cannot hold {numbers} numbers (event_count + site_count) of 1 to 9 bytes",
        )
    frame_offset = body_offset + BSUM_HEADER_LEN
    summary = decompress_frame(body[BSUM_HEADER_LEN:], raw_len, frame_offset)

    def error(pos: int, message: str) -> GsotError:
        return GsotError(frame_offset, f"summary position {pos}: {message}")

    pos = 0

    def u64() -> int:
        nonlocal pos
        at = pos
        if pos >= raw_len:
            raise error(at, f"the numbers run past raw_len={raw_len}")
        first = summary[pos]
        pos += 1
        if first < 251:
            return first
        if first >= 254:
            raise error(at, f"invalid varint marker byte {first}")
        size = {251: 2, 252: 4, 253: 8}[first]
        if pos + size > raw_len:
            raise error(at, f"the numbers run past raw_len={raw_len}")
        pos += size
        return int.from_bytes(summary[pos - size : pos], "little")

    sites: list[list[int]] = []
    total = 0
    for i in range(site_count):
        at = pos
        n = u64()
        if n == 0:
            raise error(at, f"site {i} has a run of 0 events")
        if total + n > event_count:
            raise error(at, f"site {i}: the runs add up to {total + n} (so far), more than event_count={event_count}")
        total += n
        durations = []
        value = 0
        for _ in range(n):
            at = pos
            value += u64()  # the first as it is, each later one as a difference
            if value > U64_MASK:
                raise error(at, f"site {i}: the sum of durations overflows 64 bits")
            durations.append(value)
        sites.append(durations)
    if pos != raw_len:
        raise error(pos, f"the numbers stop {raw_len - pos} bytes short of raw_len={raw_len}")
    if total != event_count:
        raise error(pos, f"the runs add up to {total}, event_count is {event_count}")
    return sites


# --- The file ----------------------------------------------------------------------------------


class TraceFile:
    """An opened trace file: header, side tables and the list of blocks.

    Opening reads the preamble, HEAD, and then either the trailer + INDX (a finished file) or
    scans the file (section 7). Blocks are decoded on demand by `read_block()` and `events()`.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.version: tuple[int, int] = (0, 0)
        self.header: dict = {}
        self.blocks: list[BlockRef] = []
        self.processes: list[dict] = []
        self.losses: list[dict] = []
        self.containers: list[dict] = []  # CTNR entries, file order (section 5.1)
        self.cgroup_v1: list[dict] = []  # CGV1 entries, file order (section 5.2)
        self.aggregates: list[dict] = []  # AGGR periods, file order (section 5.3)
        self.recovered = False
        self.scan: ScanReport | None = None
        self.problems: list[tuple[int, str]] = []  # (file offset, description), from a scan
        self.head_end = 0  # offset right after the HEAD section

        self._read_preamble()
        head = read_section(data, PREAMBLE_LEN, TAG_HEAD)
        self.header = decode_head(head.body, head.body_offset)
        self.head_end = head.end
        try:
            self._open_with_index()
        except GsotError as err:
            self.blocks, self.processes, self.losses, self.containers = [], [], [], []
            self.cgroup_v1, self.aggregates = [], []
            self.recovered = True
            self._scan_file(reason=str(err))

    @classmethod
    def open(cls, path: str) -> "TraceFile":
        with open(path, "rb") as f:
            return cls(f.read())

    # Section 2.1: magic, then major version, then CRC, in that order.
    def _read_preamble(self) -> None:
        data = self.data
        if len(data) < 8 or data[:8] != MAGIC:
            raise GsotError(0, "not a trace file (bad magic)")
        if len(data) < PREAMBLE_LEN:
            raise GsotError(8, "file ends inside the 16-byte preamble")
        major, minor, crc = struct.unpack_from("<HHI", data, 8)
        if major != KNOWN_MAJOR:
            raise VersionError(
                8,
                f"file is format version {major}.{minor}, this reader reads version "
                f"{KNOWN_MAJOR}.x (up to {KNOWN_MAJOR}.{KNOWN_MINOR}); a {major}.x file is not a damaged "
                f"{KNOWN_MAJOR}.x file",
            )
        if crc32c(data[:12]) != crc:
            raise GsotError(12, "preamble CRC mismatch")
        self.version = (major, minor)

    # Section 6.
    def _open_with_index(self) -> None:
        data = self.data
        n = len(data)
        if n < self.head_end + SECTION_HEADER_LEN + TRAILER_LEN:
            raise GsotError(n, "file too short to hold an INDX section and a trailer")
        trailer_at = n - TRAILER_LEN
        trailer = data[trailer_at:]
        if trailer[16:24] != END_MAGIC:
            raise GsotError(trailer_at + 16, "no end magic: the file was not finished")
        (trailer_crc,) = struct.unpack_from("<I", trailer, 12)
        if crc32c(trailer[0:12] + trailer[16:24]) != trailer_crc:
            raise GsotError(trailer_at + 12, "trailer CRC mismatch")
        index_offset, reserved = struct.unpack_from("<QI", trailer, 0)
        if reserved != 0:
            raise GsotError(trailer_at + 8, f"trailer reserved field is {reserved}, not zero")
        if not self.head_end <= index_offset < trailer_at:
            raise GsotError(trailer_at, f"index_offset {index_offset} is outside the file's sections")

        index = read_section(data, index_offset, TAG_INDX)
        # Section 6: the index need not end exactly where the trailer begins, but it cannot
        # overlap it.
        if index.end > trailer_at:
            raise GsotError(index_offset, f"INDX section ends at {index.end}, after the trailer starts at {trailer_at}")
        blocks, sections, total_events = decode_indx(index.body, index.body_offset)

        previous = -1
        for ref in blocks:
            if not self.head_end <= ref.offset < index_offset or ref.offset <= previous:
                raise GsotError(index.body_offset, f"INDX lists a block at {ref.offset}, not before INDX in file order")
            previous = ref.offset
            # Section 6: an entry must point at an intact BLCK header of its event_count,
            # else the index is not used at all.
            tag, body_len, _crc, header_ok = _header_fields(data, ref.offset)
            body_at = ref.offset + SECTION_HEADER_LEN
            count = struct.unpack_from("<I", data, body_at)[0] if body_at + 4 <= n else None
            if not header_ok or tag != TAG_BLCK or body_len < 4 or count != ref.event_count:
                raise GsotError(ref.offset, f"INDX entry at {ref.offset} is not a BLCK of {ref.event_count} events")
        if sum(ref.event_count for ref in blocks) != total_events:
            raise GsotError(index.body_offset, f"INDX block counts do not add up to total_events={total_events}")

        processes, losses, containers = [], [], []
        cgroup_v1, aggregates = [], []
        for tag, offset in sections:
            if tag is None:
                # Section 6: a more_sections offset names its kind in its header; one that is
                # no known later section before INDX is ignored.
                ok = self.head_end <= offset <= index_offset - SECTION_HEADER_LEN
                fields = _header_fields(data, offset) if ok else None
                if not (fields and fields[3] and fields[0] in LATER_TAGS):
                    continue
                tag = fields[0]
            if not self.head_end <= offset < index_offset:
                raise GsotError(index.body_offset, f"INDX lists a section at {offset}, not before INDX")
            if tag not in (TAG_PROC, TAG_LOSS, *LATER_TAGS):
                raise GsotError(index.body_offset, f"INDX lists a section with tag {tag!r}")
            section = read_section(data, offset, tag)
            if tag == TAG_PROC:
                processes.extend(decode_proc(section.body, section.body_offset))
            elif tag == TAG_CTNR:
                containers.extend(decode_ctnr(section.body, section.body_offset))
            elif tag == TAG_CGV1:
                cgroup_v1.extend(decode_cgv1(section.body, section.body_offset))
            elif tag == TAG_AGGR:
                aggregates.extend(decode_aggr(section.body, section.body_offset))
            else:
                losses.extend(decode_loss(section.body, section.body_offset))

        self.blocks, self.processes, self.losses = blocks, processes, losses
        self.containers, self.cgroup_v1, self.aggregates = containers, cgroup_v1, aggregates

    # Section 7.
    def _scan_file(self, reason: str) -> None:
        data = self.data
        n = len(data)
        offset = self.head_end
        after_index = False
        while True:
            left = n - offset
            if after_index and left <= TRAILER_LEN:
                if 0 < left < TRAILER_LEN:
                    self.problems.append((offset, f"the trailer is cut: {left} of its 24 bytes"))
                return self._stop(reason, offset, "trailer" if left else "end of file")
            if left == 0:
                return self._stop(reason, offset, "end of file")
            if left < SECTION_HEADER_LEN:
                self.problems.append((offset, f"{left} bytes left, too few for a section header"))
                return self._stop(reason, offset, "cut inside a section header")

            tag, body_len, body_crc, header_ok = _header_fields(data, offset)
            body_offset = offset + SECTION_HEADER_LEN
            if header_ok and body_len <= MAX_BODY_LEN:
                if body_offset + body_len > n:
                    self.problems.append(
                        (body_offset, f"{_tag_name(tag)} body of {body_len} bytes is cut: "
                                      f"only {n - body_offset} bytes left in the file")
                    )
                    return self._stop(reason, offset, "cut inside a section body")
                body = data[body_offset : body_offset + body_len]
                after_index = False
                if crc32c(body) != body_crc:
                    # The length is trustworthy (the header's CRC held), so skip just this.
                    self.problems.append((body_offset, f"{_tag_name(tag)} body CRC mismatch: section skipped"))
                else:
                    self._keep_scanned(Section(offset, tag, body))
                    after_index = tag == TAG_INDX
                offset = body_offset + body_len
                continue

            # A damaged header: search for the next plausible section.
            what = "section header CRC mismatch" if not header_ok else f"body_len {body_len} over the limit"
            found = self._search(offset + 1)
            if found is None:
                self.problems.append((offset, f"{what}; no valid section in the {left} bytes after it"))
                return self._stop(reason, offset, "no valid section after damage")
            self.problems.append((offset, f"{what}; skipped {found - offset} bytes to the next section"))
            after_index = False
            offset = found

    def _keep_scanned(self, section: Section) -> None:
        tag = section.tag
        if tag == TAG_BLCK:
            try:
                count, _raw_len, ts_min, ts_max = parse_block_header(section.body, section.body_offset)
            except GsotError as err:
                self.problems.append((err.offset, f"{err.message}: block skipped"))
                return
            self.blocks.append(BlockRef(section.offset, count, ts_min, ts_max))
        elif tag in (TAG_PROC, TAG_LOSS, *LATER_TAGS):
            # A side table that does not decode is reported and skipped; the scan goes on.
            try:
                if tag == TAG_PROC:
                    self.processes.extend(decode_proc(section.body, section.body_offset))
                elif tag == TAG_CTNR:
                    self.containers.extend(decode_ctnr(section.body, section.body_offset))
                elif tag == TAG_CGV1:
                    self.cgroup_v1.extend(decode_cgv1(section.body, section.body_offset))
                elif tag == TAG_AGGR:
                    self.aggregates.extend(decode_aggr(section.body, section.body_offset))
                else:
                    self.losses.extend(decode_loss(section.body, section.body_offset))
            except GsotError as err:
                self.problems.append((err.offset, f"{err.message}: {_tag_name(tag)} section skipped"))
        elif tag == TAG_HEAD:
            self.problems.append((section.offset, "a second HEAD section: skipped"))
        # INDX is ignored (the scan rebuilds the index); BSUM needs no bookkeeping (it is
        # found from its block, section 4.2); unknown tags are skipped.

    def _search(self, start: int) -> int | None:
        """The next offset holding a section with a known tag, valid header CRC, a body
        within the file and a valid body CRC (section 7, step 3)."""
        data = self.data
        n = len(data)
        for offset in range(start, n - SECTION_HEADER_LEN + 1):
            if data[offset : offset + 4] not in KNOWN_TAGS:
                continue
            _tag, body_len, body_crc, header_ok = _header_fields(data, offset)
            body_offset = offset + SECTION_HEADER_LEN
            if not header_ok or body_len > MAX_BODY_LEN or body_offset + body_len > n:
                continue
            if crc32c(data[body_offset : body_offset + body_len]) == body_crc:
                return offset
        return None

    def _stop(self, reason: str, offset: int, stop_reason: str) -> None:
        self.scan = ScanReport(reason=reason, stop_offset=offset, stop_reason=stop_reason)

    # Section 5: the process table's time rule.
    def process_at(self, pid: int, ts: int) -> dict | None:
        """The entry naming pid's process at boot time ts: the latest with first_seen_ns <= ts
        (the later in the file among equal times), else the pid's earliest entry."""
        entries = [p for p in self.processes if p["pid"] == pid]
        if not entries:
            return None
        before = [p for p in entries if p["first_seen_ns"] <= ts]
        if before:
            return max(reversed(before), key=lambda p: p["first_seen_ns"])
        return min(entries, key=lambda p: p["first_seen_ns"])

    # Blocks.
    def read_block(self, ref: BlockRef) -> list[Event]:
        return self.read_block_full(ref).events

    def read_block_full(self, ref: BlockRef) -> DecodedBlock:
        section = self._block_section(ref)
        return decode_block_full(section.body, section.body_offset)

    def events(self):
        """Every event of every block, in file order."""
        for ref in self.blocks:
            yield from self.read_block(ref)

    def _block_section(self, ref: BlockRef) -> Section:
        section = read_section(self.data, ref.offset, TAG_BLCK)
        count, _raw_len, ts_min, ts_max = parse_block_header(section.body, section.body_offset)
        if (count, ts_min, ts_max) != (ref.event_count, ref.ts_min, ref.ts_max):
            raise GsotError(ref.offset, "block header disagrees with the index entry for it")
        return section

    # Block summaries (section 4.2).
    def read_summary(self, ref: BlockRef) -> list[list[int]] | None:
        """The block's BSUM summary: per site, in the order of the block's `sites`, that
        site's durations sorted ascending. None when the block has no summary (the section
        right after the block is not a BSUM: a 1.0 file, or a file cut right after the
        block). Raises GsotError when there is one but it is damaged or wrong, and when the
        block itself cannot be read (a summary is only checked against its block); the caller
        then falls back to the block."""
        block = self._block_section(ref)
        at = block.end
        if at + SECTION_HEADER_LEN > len(self.data) or self.data[at : at + 4] != TAG_BSUM:
            return None
        section = read_section(self.data, at, TAG_BSUM)
        site_count = block_site_count(block.body, block.body_offset)
        return decode_bsum(section.body, section.body_offset, ref.offset, ref.event_count, site_count)

    def summary_matches(self, ref: BlockRef, decoded: DecodedBlock | None = None) -> bool | None:
        """Whether the block's summary holds exactly its events' durations, grouped by site
        and sorted (what `analyze verify` checks). None when the block has no summary; raises
        GsotError when the summary or the block is rejected."""
        summary = self.read_summary(ref)
        if summary is None:
            return None
        if decoded is None:
            decoded = self.read_block_full(ref)
        return summary == decoded.durations_by_site()


# --- Digest and summary -----------------------------------------------------------------------

FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_DIGEST_FMT = "<5Q8I6iH16sI"  # see event_digest_bytes


def event_digest_bytes(e: Event) -> bytes:
    return struct.pack(
        _DIGEST_FMT,
        e.ts_ns, e.duration_ns, e.cgroup_id, e.optval_ptr, e.optlen_ptr,
        e.cpu, e.tgid, e.tid, e.ppid, e.uid, e.gid, e.pid_ns, e.mnt_ns,
        e.fd, e.level, e.optname, e.optlen_in, e.optlen_out, e.ret,
        e.flags, e.comm, len(e.value),
    ) + e.value


def fnv1a64(data: bytes, h: int = FNV_OFFSET_BASIS) -> int:
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & U64_MASK
    return h


def summarize(trace: TraceFile) -> dict:
    """The file's summary. A block that cannot be read is an error (raised); a block summary
    (BSUM) that is rejected is listed under summary_problems, its block is read regardless."""
    digest = FNV_OFFSET_BASIS
    events = 0
    with_summary = 0
    mismatched = []
    summary_problems = []
    problems = [{"offset": off, "problem": text} for off, text in trace.problems]
    for ref in trace.blocks:
        block = trace.read_block_full(ref)
        if block.bounds_problem is not None:
            problems.append({"offset": block.bounds_problem[0], "problem": block.bounds_problem[1]})
        for event in block.events:
            digest = fnv1a64(event_digest_bytes(event), digest)
            events += 1
        try:
            matches = trace.summary_matches(ref, block)
        except GsotError as err:
            summary_problems.append({"offset": err.offset, "problem": err.message})
            continue
        if matches is not None:
            with_summary += 1
            if not matches:
                mismatched.append(ref.offset)
    summary = {
        "version": list(trace.version),
        "header": trace.header,
        "blocks": len(trace.blocks),
        "events": events,
        "processes": len(trace.processes),
        "losses": trace.losses,
        "recovered": trace.recovered,
        "problems": problems,
        "digest": f"0x{digest:016x}",
        # Section 4.2: blocks followed by a valid BSUM, whether each of those holds exactly
        # its block's durations (true when there are none), and the BSUMs rejected.
        "block_summaries": with_summary,
        "block_summaries_match": not mismatched,
        "block_summaries_mismatched": mismatched,
        "summary_problems": summary_problems,
    }
    if trace.scan is not None:
        summary["scan"] = {
            "reason": trace.scan.reason,
            "stop_offset": trace.scan.stop_offset,
            "stop_reason": trace.scan.stop_reason,
        }
    return summary


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: read_gsot.py FILE", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        summary = summarize(TraceFile.open(path))
    except GsotError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
