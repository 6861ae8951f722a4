#!/usr/bin/env python3
"""Writes the conformance suite: small crafted trace files, each with its expected outcome.

Every file is built here byte by byte from FORMAT.md (not by the Rust writer), so the suite
tests the text, not one implementation. For `NAME.gsot` the expected outcome is `NAME.json`:

  rule        the FORMAT.md rule the file pins
  refused     null, or {"exit": 3, "error": exact analyze message after "PATH: ",
              "offset": file offset, "python_error": class read_gsot.py raises}
  events      the events every reader decodes, in file order (a subset of the fields)
  processes   the process table entries; losses: the loss records
  recovered   whether the file has to be read by scanning (no usable trailer/index)
  problems    [offset, text] that `analyze verify` must list (text: a substring of its line;
              offset null: anywhere, for a summary's problem whose offset lies in its frame)
  notes       [offset, text] that `analyze verify` lists as notes (not problems)
  unreadable_blocks  offsets of blocks no reader can decode
  rejected_summaries offsets of the blocks whose BSUM a reader must reject
  exit        exit status of `analyze info`, `events`, `stats` and `verify`
  stats_count events `analyze stats --by ''` counts (it may believe a wrong summary)
  stats_max_ns  (where given) the max_ns `analyze stats --by ''` reports
  cgroup      {glob: events `analyze events --cgroup GLOB` prints}, when the case is about it

Usage: make.py          writes the files that are missing (a pinned file is never rewritten)
       make.py --check  fails unless every committed file is exactly what this script writes
"""

from __future__ import annotations

import json
import pathlib
import struct
import sys

import zstandard

HERE = pathlib.Path(__file__).resolve().parent
U64 = (1 << 64) - 1


# --- Encodings (FORMAT.md 1) --------------------------------------------------------------


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def varint(v: int) -> bytes:
    if v < 251:
        return bytes([v])
    if v <= 0xFFFF:
        return b"\xfb" + struct.pack("<H", v)
    if v <= 0xFFFFFFFF:
        return b"\xfc" + struct.pack("<I", v)
    return b"\xfd" + struct.pack("<Q", v)


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def text(s: bytes | str) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return varint(len(b)) + b


def vec(items: list[bytes]) -> bytes:
    return varint(len(items)) + b"".join(items)


def zstd(raw: bytes) -> bytes:
    # Content size and checksum written: any valid frame is allowed (FORMAT.md 10).
    return zstandard.ZstdCompressor(level=1, write_content_size=True).compress(raw)


def section(tag: bytes, body: bytes) -> bytes:
    h = tag + struct.pack("<II", len(body), crc32c(body))
    return h + struct.pack("<I", crc32c(h)) + body


def preamble(major: int = 1, minor: int = 1) -> bytes:
    p = b"\x89GSO\r\n\x1a\n" + struct.pack("<HH", major, minor)
    return p + struct.pack("<I", crc32c(p))


# --- Sections -------------------------------------------------------------------------------

BOOT_TO_WALL = 1_767_139_200_000_000_000  # 2026-01-01T00:00:00Z minus one day of boot time


def head_body(cpu_count: bytes = varint(4), extra_bytes: bytes = b"", extra=()) -> bytes:
    return (
        bytes(range(16))
        + text("conformance")
        + text("6.18.0-conformance")
        + text("x86_64")
        + cpu_count
        + varint(zigzag(BOOT_TO_WALL))
        + varint(0)
        + text("samples/conformance/make.py")
        + vec([text("make.py")])
        + text("synthetic")
        + vec([])
        + varint(64)
        + varint(0)
        + b"\x00"
        + vec([text(k) + text(v) for k, v in extra])
        + extra_bytes
    )


def proc_entry(pid, first_seen, comm=b"app", exe=b"/usr/bin/app", cgroup=b"/app", pid_bytes=None):
    return (
        (pid_bytes if pid_bytes is not None else varint(pid))
        + varint(1)
        + varint(first_seen)
        + text(comm)
        + text(exe)
        + text(cgroup)
    )


def loss_entry(cpu, lost, start, end):
    return varint(cpu) + varint(lost) + varint(start) + varint(end)


# An event: ts, duration, and the fields that make its site and thread.
def ev(ts, dur=1000, tgid=100, tid=100, comm=b"app", fd=3, level=1, optname=7, ret=0,
       flags=0, value=b"\x00\x10\x00\x00", optlen_in=4, optlen_out=4, cpu=0, sock=None):
    """`sock` (FORMAT.md 4.3): None not recorded, "none" no socket, or a socket_entry()."""
    e = dict(ts=ts, dur=dur, tgid=tgid, tid=tid, comm=comm, fd=fd, level=level,
             optname=optname, ret=ret, flags=flags, value=value, optlen_in=optlen_in,
             optlen_out=optlen_out, cpu=cpu)
    if sock is not None:
        e["sock"] = sock
    return e


def socket_entry(family, sock_type, protocol, tcp_state=0, local=(b"", 0), remote=(b"", 0),
                 scope_id=0, ino=0, netns=4026531840, portid=0, path=b"", peer=b"") -> bytes:
    """A socket table entry (FORMAT.md 4.3): addresses given as their 4 or 16 bytes."""
    addr = lambda a: a.ljust(16, b"\0")
    return (struct.pack("<3HB", family, sock_type, protocol, tcp_state)
            + addr(local[0]) + struct.pack("<H", local[1])
            + addr(remote[0]) + struct.pack("<H", remote[1])
            + struct.pack("<IQII", scope_id, ino, netns, portid)
            + struct.pack("<Q", len(path)) + path + struct.pack("<Q", len(peer)) + peer)


def payload(events: list[dict]) -> tuple[bytes, list[list[int]]]:
    """The fixint payload (FORMAT.md 4.1) and each site's durations."""
    threads, sites, site_of, site_sock = [], [], [], []
    for e in events:
        t = struct.pack("<5I16sQ2I", e["tgid"], e["tid"], 1, 1000, 1000,
                        e["comm"].ljust(16, b"\0")[:16], 77, 4026531836, 4026531840)
        if t not in threads:
            threads.append(t)
        s = struct.pack("<2I6i2H", threads.index(t), e["cpu"], e["fd"], e["level"],
                        e["optname"], e["optlen_in"], e["optlen_out"], e["ret"], e["flags"],
                        len(e["value"]))
        # A site is one socket's (FORMAT.md 4.3): the same call on another socket is another site.
        key = (s, e.get("sock"))
        if key not in sites:
            sites.append(key)
        site_of.append(sites.index(key))
    n = len(events)
    prev, deltas = 0, []
    for e in events:
        deltas.append((e["ts"] - prev) & U64)
        prev = e["ts"]
    ptrs, last = [], {}
    for i in site_of:
        ptrs.append((0x7FFF0000 - last.get(i, 0)) & U64)
        last[i] = 0x7FFF0000
    raw = (
        struct.pack("<Q", len(threads)) + b"".join(threads)
        + struct.pack("<Q", len(sites)) + b"".join(s for s, _ in sites)
        + struct.pack(f"<Q{n}Q", n, *deltas)
        + struct.pack(f"<Q{n}Q", n, *(e["dur"] for e in events))
        + struct.pack(f"<Q{n}I", n, *site_of)
        + struct.pack(f"<Q{n}Q", n, *ptrs)
        + struct.pack(f"<Q{n}Q", n, *(p + 8 if p else 0 for p in ptrs))
        + struct.pack("<Q", sum(len(e["value"]) for e in events))
        + b"".join(e["value"] for e in events)
    )
    if any("sock" in e for e in events):
        table = []
        for _, sock in sites:
            if sock not in (None, "none") and sock not in table:
                table.append(sock)
        index = [0xFFFFFFFF if sock is None else 0xFFFFFFFE if sock == "none"
                 else table.index(sock) for _, sock in sites]
        raw += (struct.pack("<Q", len(table)) + b"".join(table)
                + struct.pack(f"<Q{len(sites)}I", len(sites), *index))
    durations = [sorted(e["dur"] for e, s in zip(events, site_of) if s == i)
                 for i in range(len(sites))]
    return raw, durations


def block_body(events, ts_min=None, ts_max=None, after_frame=b""):
    raw, durations = payload(events)
    ts = [e["ts"] for e in events]
    lo = min(ts) if ts_min is None else ts_min
    hi = max(ts) if ts_max is None else ts_max
    body = struct.pack("<IIQQ", len(events), len(raw), lo, hi) + zstd(raw) + after_frame
    return body, durations


def summary_raw(durations: list[list[int]]) -> bytes:
    out = b""
    for ds in durations:
        out += varint(len(ds))
        prev = 0
        for d in ds:
            out += varint(d - prev)
            prev = d
    return out


def bsum_body(block_offset, event_count, site_count, raw, raw_len=None, after=b""):
    n = len(raw) if raw_len is None else raw_len
    return struct.pack("<QII", block_offset, event_count, site_count) + struct.pack("<I", n) + zstd(raw) + after


class File:
    """A file built section by section; `finish()` adds INDX and the trailer."""

    def __init__(self, major=1, minor=1, head=None):
        self.bytes = bytearray(preamble(major, minor))
        self.bytes += section(b"HEAD", head_body() if head is None else head)
        self.blocks, self.sides = [], []

    def add(self, tag: bytes, body: bytes) -> int:
        at = len(self.bytes)
        self.bytes += section(tag, body)
        if tag in (b"PROC", b"LOSS"):
            self.sides.append((tag, at))
        return at

    def block(self, events, summary=True, bsum=None, **kw) -> int:
        """A BLCK, then (by default) its valid BSUM; `bsum(at, n, sites, raw)` makes another."""
        body, durations = block_body(events, **kw)
        at = len(self.bytes)
        self.bytes += section(b"BLCK", body)
        lo, hi = struct.unpack_from("<QQ", body, 8)
        self.blocks.append((at, len(events), lo, hi))
        raw = summary_raw(durations)
        if bsum is not None:
            self.bytes += section(b"BSUM", bsum(at, len(events), len(durations), raw))
        elif summary:
            self.bytes += section(b"BSUM", bsum_body(at, len(events), len(durations), raw))
        return at

    def finish(self, index_blocks=None, index_extra=b"", trailer=True) -> bytes:
        at = len(self.bytes)
        blocks = self.blocks if index_blocks is None else index_blocks
        body = (
            vec([varint(o) + varint(n) + varint(lo) + varint(hi) for o, n, lo, hi in blocks])
            + vec([t + varint(o) for t, o in self.sides])
            + varint(sum(b[1] for b in blocks))
            + index_extra
        )
        self.bytes += section(b"INDX", body)
        if trailer:
            t = struct.pack("<QI", at, 0)
            self.bytes += t + struct.pack("<I", crc32c(t + b"GSOTEND\n")) + b"GSOTEND\n"
        return bytes(self.bytes)


def standard(f: File, events=None) -> File:
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    f.block(events or [ev(1000), ev(2000, dur=1500), ev(3000, ret=-22, value=b"")])
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return f


# --- Expectations -------------------------------------------------------------------------

def show(e: dict) -> dict:
    """An event as readers must decode it (comm cut at its first NUL, lossy UTF-8)."""
    comm = e["comm"][:16].split(b"\0", 1)[0].decode("utf-8", "replace")
    return dict(ts_ns=e["ts"], duration_ns=e["dur"], tgid=e["tgid"], tid=e["tid"], comm=comm,
                fd=e["fd"], level=e["level"], optname=e["optname"], ret=e["ret"],
                flags=e["flags"], value=e["value"].hex(), optlen_in=e["optlen_in"],
                optlen_out=e["optlen_out"], cpu=e["cpu"])


PROC_100 = [dict(pid=100, ppid=1, first_seen_ns=10, comm="app", exe="/usr/bin/app", cgroup="/app")]
LOSS_1 = [dict(cpu=1, lost=5, start_ns=1500, end_ns=1600)]
EVENTS_3 = [ev(1000), ev(2000, dur=1500), ev(3000, ret=-22, value=b"")]


def expect(rule, events=(), processes=PROC_100, losses=LOSS_1, recovered=False, problems=(),
           notes=(), unreadable_blocks=(), rejected_summaries=(), exit=(0, 0, 0, 0),
           stats_count=None, refused=None, cgroup=None, aggregates=None):
    out = dict(rule=rule, refused=refused, events=[show(e) for e in events],
               processes=list(processes), losses=list(losses), recovered=recovered,
               problems=[list(p) for p in problems], notes=[list(n) for n in notes],
               unreadable_blocks=list(unreadable_blocks),
               rejected_summaries=list(rejected_summaries),
               exit=dict(zip(("info", "events", "stats", "verify"), exit)),
               stats_count=len(events) if stats_count is None else stats_count)
    if cgroup is not None:
        out["cgroup"] = cgroup
    if aggregates is not None:
        out["aggregates"] = aggregates
    return out


def refused(rule, error, offset, python_error="GsotError"):
    return expect(rule, processes=(), losses=(), exit=(3, 3, 3, 3), stats_count=0,
                  refused=dict(exit=3, error=error, offset=offset, python_error=python_error))


# --- The cases ------------------------------------------------------------------------------

CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


@case
def basic():
    return standard(File()).finish(), expect("a plain finished 1.1 file: every reader agrees", EVENTS_3)


@case
def timestamps_out_of_order():
    evs = [ev(5000), ev(1000), ev(3000), ev(2000, dur=10)]
    return standard(File(), evs).finish(), expect(
        "4.1: events are in the order received, not time order; ts_delta wraps modulo 2^64", evs)


@case
def timestamp_max():
    evs = [ev(1000), ev(U64 - 1), ev(U64)]
    return standard(File(), evs).finish(), expect(
        "4.1: 2^64-1 is a valid timestamp, an open range includes it, the wall clock clamps", evs)


@case
def flags():
    evs = [ev(1000, flags=1, optlen_out=300), ev(2000, flags=4, optlen_in=0),
           ev(3000, flags=8, optlen_out=0), ev(4000, flags=2, value=b"")]
    return standard(File(), evs).finish(), expect("4.1: flag bits 1, 2, 4 and 8", evs)


@case
def reserved_flags():
    evs = [ev(1000, flags=0x8010), ev(2000, flags=0xFFF0 | 1)]
    return standard(File(), evs).finish(), expect("4.1: reserved flag bits are kept", evs)


@case
def comm_16_bytes():
    evs = [ev(1000, comm=b"0123456789abcdef"), ev(2000, comm=b"ab\0cd", tid=101)]
    return standard(File(), evs).finish(), expect(
        "4.1: a 16-byte comm has no NUL; a comm is cut at its first NUL", evs)


@case
def comm_not_utf8():
    evs = [ev(1000, comm=b"a\xffb")]
    return standard(File(), evs).finish(), expect("4.1: comm decoded lossily", evs)


@case
def unknown_section():
    f = File()
    f.add(b"XTRA", b"a section of a later minor version")
    standard(f)
    f.add(b"ZZZZ", b"")
    data = f.finish()
    xtra = 16 + len(section(b"HEAD", head_body()))
    zzzz = data.rindex(b"ZZZZ")
    return data, expect("2.2, 8: sections of unknown kinds are skipped and are not damage",
                        EVENTS_3, notes=[(xtra, 'unknown kind "XTRA"'), (zzzz, 'unknown kind "ZZZZ"')])


@case
def sockets_1_2():
    # Three sockets' worth of calls: a TCP connection, the same fd closed and reused for
    # another connection (the same call site, two sites), a Unix socket with a path, a call
    # whose fd was no socket, and one without socket identity.
    v4 = lambda *a: bytes(a)
    tcp = socket_entry(2, 1, 6, 1, (v4(127, 0, 0, 1), 40312), (v4(127, 0, 0, 1), 5432), ino=9001)
    reused = socket_entry(2, 1, 6, 1, (v4(127, 0, 0, 1), 40314), (v4(127, 0, 0, 1), 6379), ino=9002)
    unix = socket_entry(1, 1, 0, ino=9003, path=b"/run/app.sock")
    evs = [ev(1000, sock=tcp), ev(2000, dur=1500, sock=tcp), ev(3000, sock=reused),
           ev(4000, fd=5, sock=unix), ev(5000, fd=9, ret=-9, value=b"", sock="none"),
           ev(6000, fd=6)]
    f = File(minor=2, head=head_body(extra=[(b"socket_identity", b"recorded")]))
    standard(f, evs)
    return f.finish(), expect(
        "4.3, 8: socket identity (1.2) follows `values`; every 1.x reader reads every event, "
        "and a 1.2 reader the sockets too",
        evs)


def aggr_entry(tgid, level, optname, ret, buckets, dur_sum, dur_max):
    """FORMAT.md 5.3: an AggregateEntry, buckets as (index, calls)."""
    return (varint(tgid) + varint(zigzag(level)) + varint(zigzag(optname)) + varint(zigzag(ret))
            + varint(dur_sum) + varint(dur_max) + vec([varint(i) + varint(n) for i, n in buckets]))


def aggr_period(start, end, p, sampled, capped, dropped, entries):
    return b"".join(varint(v) for v in (start, end, p, sampled, capped, dropped)) + vec(entries)


# Bucket 8 + 8 * (top bit - 3) + the three bits below it (FORMAT.md 5.3): 1000 ns is in 63
# (960..1024), 1500 ns in 67 (1408..1536).
AGGR_EVENTS_3 = [
    aggr_period(500, 3500, 1 << 31, 3, 0, 0, [
        aggr_entry(100, 1, 7, 0, [(63, 4), (67, 1)], 4 * 1000 + 1500, 1500),
        aggr_entry(100, 1, 7, -22, [(63, 2)], 2000, 1000),
    ]),
]
AGGR_SHOWN = [dict(start_ns=500, end_ns=3500, sample_p=1 << 31, sampled=3, capped=0, dropped=0, entries=[
    dict(tgid=100, level=1, optname=7, ret=0, duration_sum_ns=5500, duration_max_ns=1500,
         buckets=[[63, 4], [67, 1]], calls=5),
    dict(tgid=100, level=1, optname=7, ret=-22, duration_sum_ns=2000, duration_max_ns=1000,
         buckets=[[63, 2]], calls=2),
])]


@case
def aggr_1_4():
    f = File(minor=4, head=head_body(extra=[(b"max_rate", b"1000")]))
    standard(f)
    at = f.add(b"AGGR", vec(AGGR_EVENTS_3))
    return f.finish(index_extra=vec([varint(at)])), expect(
        "5.3, 6: aggregate records (1.4), listed in INDX more_sections, count every call of a "
        "sampled capture: the 3 events are a sample of their 7 calls, which stats counts",
        EVENTS_3, stats_count=7, aggregates=AGGR_SHOWN)


@case
def aggr_bucket_out_of_order():
    f = File(minor=4)
    standard(f)
    bad = [aggr_period(500, 3500, 1 << 32, 3, 0, 0, [aggr_entry(100, 1, 7, 0, [(67, 1), (63, 2)], 3500, 1500)])]
    at = f.add(b"AGGR", vec(bad))
    data = f.finish(index_extra=vec([varint(at)]))
    # The second bucket, (63, 2), ends the body: the error names where its index is.
    second = at + 16 + len(vec(bad)) - 2
    return data, expect(
        "5.3, 7: an AGGR section whose bucket indexes do not increase does not decode: the index "
        "is not used, the scan skips the section, the events stay readable",
        EVENTS_3, recovered=True, problems=[(second, "a bucket index from 68 to 303")], exit=(1, 1, 1, 1))


@case
def minor_99():
    f = File(minor=99, head=head_body(extra_bytes=b"\x05later"))
    f.add(b"NEW1", b"\x01\x02")
    standard(f)
    data = f.finish(index_extra=b"\x07")
    return data, expect("8: a far newer minor version is read; appended bytes and new kinds skipped",
                        EVENTS_3, notes=[(16 + len(section(b"HEAD", head_body(extra_bytes=b"\x05later"))),
                                          'unknown kind "NEW1"')])


@case
def minor_0():
    f = File(minor=0)
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    f.block(EVENTS_3, summary=False)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return f.finish(), expect("4.2, 8: a 1.0 file has no summaries", EVENTS_3)


@case
def major_2():
    data = standard(File(major=2, minor=0)).finish()
    return data, refused(
        "2.1, 8: another major version is refused, naming both versions",
        "at offset 8: this file is format version 2.0, this reader reads versions 1.x only; use a newer release of the tools",
        8, "VersionError")


@case
def varint_253_cpu_count():
    f = File(head=head_body(cpu_count=b"\xfd" + struct.pack("<Q", 4)))
    data = standard(f).finish()
    at = 16 + 16 + 16 + len(text("conformance")) + len(text("6.18.0-conformance")) + len(text("x86_64"))
    return data, refused(
        "1: a varint marker announcing more bytes than the type (253 for a u32) is rejected",
        f"at offset {at}: expected the CPU count as a varint of a 4-byte integer, found marker 253 announcing 8 bytes",
        at)


@case
def varint_253_proc_pid():
    f = File()
    pid_at = len(f.bytes) + 16 + 1
    f.add(b"PROC", vec([proc_entry(100, 10, pid_bytes=b"\xfd" + struct.pack("<Q", 100))]))
    f.block(EVENTS_3)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return f.finish(), expect(
        "1, 7: a PROC that does not decode is reported and skipped; the rest is read",
        EVENTS_3, processes=(), recovered=True,
        problems=[(pid_at, "as a varint of a 4-byte integer, found marker 253 announcing 8 bytes")],
        exit=(1, 1, 1, 1))


@case
def proc_second_entry_bad():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10, cgroup=b"/kept")]))
    at = len(f.bytes) + 16 + 1 + len(proc_entry(200, 20))
    f.add(b"PROC", vec([proc_entry(200, 20), proc_entry(201, 20, pid_bytes=b"\xfe")]))
    f.block(EVENTS_3)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return f.finish(), expect(
        "7: a PROC whose second entry does not decode is skipped whole, not kept in part",
        EVENTS_3, processes=[dict(PROC_100[0], cgroup="/kept")], recovered=True,
        problems=[(at, "as a varint (first byte 0-253), found 254")], exit=(1, 1, 1, 1))


@case
def proc_not_utf8():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10, comm=b"\xff\xfeapp", exe=b"/bin/\xc3")]))
    f.block(EVENTS_3)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    procs = [dict(PROC_100[0], comm="\ufffd\ufffdapp", exe="/bin/\ufffd")]
    return f.finish(), expect("1: strings that are not UTF-8 are decoded lossily", EVENTS_3,
                              processes=procs)


@case
def process_time_rule():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 1000, cgroup=b"/old")]))
    evs = [ev(500), ev(2000), ev(6000, dur=2000)]
    f.add(b"PROC", vec([proc_entry(100, 5000, cgroup=b"/new")]))
    f.block(evs)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    procs = [dict(PROC_100[0], first_seen_ns=1000, cgroup="/old"),
             dict(PROC_100[0], first_seen_ns=5000, cgroup="/new")]
    return f.finish(), expect(
        "5: the entry in force at an event's time names its process; before every entry, the earliest",
        evs, processes=procs, cgroup={"/old": 2, "/new": 1})


@case
def block_bytes_after_frame():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    bad = f.block(EVENTS_3, summary=False, after_frame=b"\x00\x01\x02\x03")
    good = f.block([ev(4000)])
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return f.finish(), expect(
        "4: bytes after a block's one zstd frame make the block damaged (for every reader)",
        [ev(4000)], unreadable_blocks=[bad], exit=(0, 1, 1, 1),
        problems=[(bad + 16 + 24, "exactly one zstd frame")])


@case
def block_ts_bounds_wrong():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    at = f.block(EVENTS_3, ts_min=1000, ts_max=2500)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return f.finish(), expect(
        "4.1: events are authoritative over ts_min/ts_max; the block is read, verify reports it",
        EVENTS_3, exit=(0, 0, 0, 1), problems=[(at, "(the block's time range), found 3000")])


HEAD_CUT = "at offset 32: file ends, expected a 117-byte HEAD section body, 8 bytes left"
HEAD_CRC = "at offset 32: checksum mismatch in the header section: stored 0xa6eead67, computed 0xff15be0e (the file is corrupted)"
PREAMBLE_CRC = "at offset 12: checksum mismatch in the preamble: stored 0x369a045d, computed 0x369a04a2 (the file is corrupted)"


@case
def head_cut():
    data = standard(File()).finish()[:40]
    return data, refused("2.1: a cut HEAD refuses the file", HEAD_CUT, 32)


@case
def head_crc_bad():
    data = bytearray(standard(File()).finish())
    data[40] ^= 0xFF
    return bytes(data), refused("2.1: a HEAD failing its CRC refuses the file", HEAD_CRC, 32)


@case
def preamble_crc_bad():
    data = bytearray(standard(File()).finish())
    data[12] ^= 0xFF
    return bytes(data), refused("2.1: a preamble failing its CRC refuses the file", PREAMBLE_CRC, 12)


@case
def section_cut():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    f.block(EVENTS_3)
    cut_at = len(f.bytes)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    data = bytes(f.bytes[: cut_at + 16 + 2])
    return data, expect(
        "7: a header whose CRC holds but whose body runs past the end: the file was cut there",
        EVENTS_3, losses=(), recovered=True, exit=(1, 1, 1, 1),
        problems=[(cut_at + 16, "file ends, expected a")])


def two_blocks() -> tuple[bytearray, int]:
    """A finished file whose first block (one event, returned offset) is there to be damaged."""
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    bad = f.block([ev(500)])
    f.block(EVENTS_3)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    return bytearray(f.finish()), bad


@case
def block_crc_bad():
    data, bad = two_blocks()
    data[bad + 16 + 30] ^= 0xFF
    return bytes(data), expect(
        "6, 7: a block failing its body CRC is unreadable; the rest of the file is not",
        EVENTS_3, unreadable_blocks=[bad], exit=(0, 1, 1, 1),
        problems=[(bad + 16, "checksum mismatch")])


@case
def header_damaged_resync():
    data, bad = two_blocks()
    data[bad + 13] ^= 0xFF
    return bytes(data), expect(
        "7: a damaged section header: skip to the next intact section, report the bytes skipped",
        EVENTS_3, recovered=True, exit=(1, 1, 1, 1), problems=[(bad, "skipped")])


@case
def trailer_cut():
    data = standard(File()).finish()[:-10]
    return data, expect("7: a cut trailer is reported; everything before it is read", EVENTS_3,
                        recovered=True, exit=(1, 1, 1, 1), problems=[(len(data) - 14, "trailer")])


@case
def indx_crc_bad():
    data = bytearray(standard(File()).finish())
    data[-24 - 3] ^= 0xFF  # inside INDX's body
    idx = struct.unpack_from("<Q", data, len(data) - 24)[0]
    return bytes(data), expect(
        "6: an INDX failing its body CRC is not used; readers scan and say so",
        EVENTS_3, recovered=True, exit=(1, 1, 1, 1), problems=[(idx + 16, "checksum mismatch")])


@case
def indx_entry_not_blck():
    f = File()
    proc_at = f.add(b"PROC", vec([proc_entry(100, 10)]))
    at = f.block(EVENTS_3)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    data = f.finish(index_blocks=[(proc_at, 3, 1000, 3000)])
    return data, expect(
        "6: an index entry that is not a BLCK header of its event count: the index is not used",
        EVENTS_3, recovered=True, exit=(1, 1, 1, 1), problems=[(proc_at, "where the index points")])


@case
def indx_entry_wrong_count():
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    at = f.block(EVENTS_3)
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    data = f.finish(index_blocks=[(at, 4, 1000, 3000)])
    return data, expect(
        "6: an index entry whose event_count is not its block's: the index is not used",
        EVENTS_3, recovered=True, exit=(1, 1, 1, 1), problems=[(at, "where the index points")])


@case
def bsum_valid_but_wrong():
    # The same structure, the first site's larger duration 2000 instead of 1000: every rule
    # holds, so stats reports a max of 2000 ns that no event has.
    evs = [ev(1000), ev(2000), ev(3000, dur=1500, fd=4)]
    f = File()
    f.add(b"PROC", vec([proc_entry(100, 10)]))
    at = f.block(evs, bsum=lambda at, n, s, raw: bsum_body(at, n, s, summary_raw([[1000, 2000], [1500]])))
    f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
    out = expect(
        "4.2: a structurally valid but wrong BSUM is believed by stats, caught by verify",
        evs, exit=(0, 0, 0, 1),
        problems=[(None, f"the summary (BSUM) of the block at {at} is damaged and not used")])
    out["stats_max_ns"] = 2000
    return f.finish(), out


def bsum_case(name, rule, make):
    def build():
        f = File()
        f.add(b"PROC", vec([proc_entry(100, 10)]))
        at = f.block(EVENTS_3, bsum=make)
        f.add(b"LOSS", vec([loss_entry(1, 5, 1500, 1600)]))
        return f.finish(), expect(
            "4.2: " + rule + "; the summary is rejected, the block read instead", EVENTS_3,
            rejected_summaries=[at], exit=(0, 0, 0, 1),
            problems=[(None, f"the summary (BSUM) of the block at {at} is damaged and not used")])
    CASES["bsum-" + name] = build


bsum_case("short", "a body shorter than 20 bytes", lambda at, n, s, raw: b"\x00" * 19)
bsum_case("block-offset", "block_offset differs", lambda at, n, s, raw: bsum_body(at + 1, n, s, raw))
bsum_case("event-count", "event_count differs", lambda at, n, s, raw: bsum_body(at, n + 1, s, raw))
bsum_case("site-count", "site_count differs", lambda at, n, s, raw: bsum_body(at, n, s + 1, raw))
bsum_case("raw-len-low", "raw_len below event_count + site_count",
          lambda at, n, s, raw: bsum_body(at, n, s, raw, raw_len=n + s - 1))
bsum_case("raw-len-high", "raw_len above 9 x (event_count + site_count)",
          lambda at, n, s, raw: bsum_body(at, n, s, raw, raw_len=9 * (n + s) + 1))
bsum_case("raw-len-differs", "the frame decompresses to another size than raw_len",
          lambda at, n, s, raw: bsum_body(at, n, s, raw, raw_len=len(raw) + 1))
bsum_case("after-frame", "bytes after the one zstd frame",
          lambda at, n, s, raw: bsum_body(at, n, s, raw, after=b"\x00"))
bsum_case("bad-varint", "a number is not a valid varint (marker 254)",
          lambda at, n, s, raw: bsum_body(at, n, s, b"\xfe" + raw[1:]))
bsum_case("zero-run", "an n_i is 0",
          lambda at, n, s, raw: bsum_body(at, n, s, summary_raw([[], [1000, 1000, 1500]])))
bsum_case("past-raw-len", "the numbers run past raw_len",
          lambda at, n, s, raw: bsum_body(at, n, s, raw[:-3] + b"\xfc" + raw[-2:]))
bsum_case("short-of-raw-len", "the numbers stop short of raw_len",
          lambda at, n, s, raw: bsum_body(at, n, s, raw + b"\x00"))
bsum_case("runs-sum", "the n_i do not add up to event_count",
          lambda at, n, s, raw: bsum_body(at, n, s, summary_raw([[1000], [1500]])))
bsum_case("overflow", "a site's running sum of durations exceeds 2^64-1",
          lambda at, n, s, raw: bsum_body(at, n, s, varint(2) + varint(U64) + varint(1)
                                          + varint(1) + varint(1000)))


def build_all() -> dict[str, bytes]:
    files = {}
    for name, fn in CASES.items():
        data, expected = fn()
        files[f"{name}.gsot"] = data
        files[f"{name}.json"] = (json.dumps(expected, indent=1, ensure_ascii=True) + "\n").encode()
    return files


def main(argv: list[str]) -> int:
    files = build_all()
    if argv[1:] == ["--check"]:
        bad = [n for n, b in files.items() if not (HERE / n).exists() or (HERE / n).read_bytes() != b]
        for n in bad:
            print(f"make.py: {HERE / n}: not what make.py writes", file=sys.stderr)
        return 1 if bad else 0
    for name, data in files.items():
        path = HERE / name
        if not path.exists():  # pinned: never rewritten
            path.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
