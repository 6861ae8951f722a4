"""Tests for read_gsot.py, the spec-only Python reader, against the committed samples.

Run from the repository root:
    python3 -m unittest discover -s format/tests/python -v
"""

import os
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zstandard  # noqa: E402

import read_gsot as gsot  # noqa: E402

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[2] / "samples"
READER = HERE / "read_gsot.py"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def digest_of(events) -> str:
    h = gsot.FNV_OFFSET_BASIS
    for event in events:
        h = gsot.fnv1a64(gsot.event_digest_bytes(event), h)
    return f"0x{h:016x}"


def section_bytes(tag: bytes, body: bytes) -> bytes:
    """A well-formed section, for building test files."""
    head = tag + struct.pack("<II", len(body), gsot.crc32c(body))
    return head + struct.pack("<I", gsot.crc32c(head)) + body


def run_cli(data: bytes) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.gsot")
        with open(path, "wb") as f:
            f.write(data)
        return subprocess.run([sys.executable, str(READER), path], capture_output=True, text=True)


class Crc32cTest(unittest.TestCase):
    def test_check_value(self):
        self.assertEqual(gsot.crc32c(b"123456789"), 0xE3069283)

    def test_chaining_is_concatenation(self):
        self.assertEqual(gsot.crc32c(b"6789", gsot.crc32c(b"12345")), 0xE3069283)


class VarintTest(unittest.TestCase):
    def reader(self, data: bytes) -> gsot.VarintReader:
        return gsot.VarintReader(data, 1000)

    def test_markers(self):
        r = self.reader(bytes([250, 251, 0x34, 0x12, 252, 1, 0, 0, 0, 253]) + (1 << 40).to_bytes(8, "little"))
        self.assertEqual([r.u16(), r.u16(), r.u32(), r.u64()], [250, 0x1234, 1, 1 << 40])

    def test_zigzag(self):
        r = self.reader(bytes([0, 1, 2, 3]))
        self.assertEqual([r.i32(), r.i32(), r.i32(), r.i64()], [0, -1, 1, -2])

    def test_rejections(self):
        for data, read in [
            (bytes([254]), "u64"),
            (bytes([255]), "u64"),
            (bytes([253]) + bytes(8), "u32"),
            (bytes([252]) + bytes(4), "u16"),
            (bytes([2]), "bool"),
            (bytes([5, 1]), "string"),  # length 5, 1 byte left
        ]:
            with self.subTest(data=data, read=read):
                with self.assertRaises(gsot.GsotError) as ctx:
                    getattr(self.reader(data), read)()
                self.assertEqual(ctx.exception.offset, 1000)


def block_body(threads, sites, events, values=None, event_count=None, raw_len=None) -> bytes:
    """A BLCK body built by hand in the fixint layout of FORMAT.md section 4.
    `events` are (ts_delta, duration, site, optval_delta, optlen_delta) tuples."""
    columns = list(zip(*events)) if events else [()] * 5
    payload = struct.pack("<Q", len(threads)) + b"".join(struct.pack("<5I16sQ2I", *t) for t in threads)
    payload += struct.pack("<Q", len(sites)) + b"".join(struct.pack("<2I6i2H", *s) for s in sites)
    for code, column in zip("QQIQQ", columns):
        payload += struct.pack(f"<Q{len(column)}{code}", len(column), *column)
    if values is None:
        values = b"".join(bytes([i]) * sites[e[2]][9] for i, e in enumerate(events))
    payload += struct.pack("<Q", len(values)) + values
    count = len(events) if event_count is None else event_count
    ts, all_ts = 0, []
    for e in events:
        ts = (ts + e[0]) % 2**64
        all_ts.append(ts)
    head = struct.pack("<IIQQ", count, len(payload) if raw_len is None else raw_len,
                       min(all_ts, default=0), max(all_ts, default=0))
    return head + zstandard.ZstdCompressor().compress(payload)


THREAD = (100, 101, 1, 1000, 1000, b"nginx".ljust(16, b"\0"), 7, 4026531836, 4026531841)
SITES = [
    # thread, cpu, fd, level, optname, optlen_in, optlen_out, ret, flags, value_len
    (0, 2, 5, 1, 8, 4, 4, 0, 0, 4),
    (0, 3, -1, 6, 11, 280, 280, -9, 0x8000, 0),
]


class BlockTest(unittest.TestCase):
    """Blocks built by hand: event rebuilding and the rejections section 4.1 requires."""

    def test_pointer_deltas_are_per_site(self):
        events = [
            (1000, 5, 0, 0x7FFF0000, 0x7FFF0100),  # site 0's first event: absolute pointers
            (10, 6, 1, 0x5000, 0x5008),  # site 1's first event: absolute too
            (10, 7, 0, 0, 0),  # site 0 again, same buffers: zero deltas
            (10, 8, 1, 0x10, 0x10),  # site 1, relative to site 1's previous call
        ]
        got = gsot.decode_block(block_body([THREAD], SITES, events), 0)
        self.assertEqual([e.ts_ns for e in got], [1000, 1010, 1020, 1030])
        self.assertEqual([e.optval_ptr for e in got], [0x7FFF0000, 0x5000, 0x7FFF0000, 0x5010])
        self.assertEqual([e.optlen_ptr for e in got], [0x7FFF0100, 0x5008, 0x7FFF0100, 0x5018])
        self.assertEqual([e.value for e in got], [b"\0" * 4, b"", b"\2" * 4, b""])
        self.assertEqual((got[1].fd, got[1].ret, got[1].flags, got[1].comm[:5]), (-1, -9, 0x8000, b"nginx"))

    def test_deltas_wrap_modulo_2_64(self):
        events = [(5, 0, 1, 0x10, 0), (2**64 - 1, 0, 1, 2**64 - 0x10, 0)]  # -1 and -0x10
        got = gsot.decode_block(block_body([THREAD], SITES, events), 0)
        self.assertEqual([(e.ts_ns, e.optval_ptr) for e in got], [(5, 0x10), (4, 0)])

    def test_rejections(self):
        good = [(1, 0, 0, 0, 0), (1, 0, 1, 0, 0)]
        bad_thread_site = (7,) + SITES[0][1:]
        cases = {
            "site index": block_body([THREAD], SITES, [(1, 0, 2, 0, 0)], values=b""),
            "thread": block_body([THREAD], [bad_thread_site], [(1, 0, 0, 0, 0)]),
            "add up": block_body([THREAD], SITES, good, values=b"12345"),
            "raw_len": block_body([THREAD], SITES, good, raw_len=500),
            "event_count": block_body([THREAD], SITES, good, event_count=3),
        }
        for what, body in cases.items():
            with self.subTest(what=what):
                with self.assertRaisesRegex(gsot.GsotError, what):
                    gsot.decode_block(body, 0)


class SampleTest(unittest.TestCase):
    def test_synthetic_mixed(self):
        trace = gsot.TraceFile(sample("synthetic-mixed.gsot"))
        s = gsot.summarize(trace)
        self.assertEqual(s["version"], [1, 0])
        self.assertFalse(s["recovered"])
        self.assertEqual(s["problems"], [])
        self.assertEqual(s["blocks"], 5)
        self.assertEqual(s["events"], 5000)
        self.assertEqual(s["processes"], 48)
        self.assertEqual(len(s["losses"]), 1)
        self.assertEqual(s["losses"][0]["lost"], 17)
        self.assertEqual(s["header"]["host_name"], "synth-host")
        self.assertEqual(s["header"]["attach_mode"], "synthetic")
        self.assertEqual(s["header"]["snaplen"], 512)
        self.assertEqual(s["digest"], "0x2fc4b35f5e7e334d")

    def test_flight_recorder_sample(self):
        """A `--ring` file: FORMAT.md 3.1's extra keys name the trigger, one of its events."""
        trace = gsot.TraceFile(sample("real/ring-enoprotoopt.gsot"))
        extra = dict(trace.header["extra"])
        self.assertEqual(extra["trigger"], "expression errno == ENOPROTOOPT")
        self.assertEqual(extra["ring_window_ns"], "1000000000")
        events = list(trace.events())
        self.assertEqual([e.optname for e in events], [8, 8, 8, 9999, 7, 7, 7])
        trigger = events[3]
        self.assertEqual(trigger.ts_ns, int(extra["trigger_ns"]))
        self.assertEqual(trigger.tid, int(extra["trigger_event_tid"]))
        self.assertEqual(trigger.ret, -92)
        t = int(extra["trigger_ns"])
        self.assertTrue(all(t - 10**9 <= e.ts_ns <= t + 5 * 10**8 for e in events))

    def test_sampled_capture_sample(self):
        """A `--max-rate` file: FORMAT.md 5.3's AGGR periods count every call; events a sample."""
        trace = gsot.TraceFile(sample("real/sampled-flood.gsot"))
        self.assertEqual(trace.version, (1, 4))
        self.assertEqual(dict(trace.header["extra"])["max_rate"], "500")
        self.assertEqual(len(trace.aggregates), 16)
        by = {}
        for p in trace.aggregates:
            for e in p["entries"]:
                key = (e["level"], e["optname"], e["ret"])
                by[key] = by.get(key, 0) + e["calls"]
        self.assertEqual(by, {(1, 8, 0): 200_000, (1, 7, 0): 200_000, (6, 9999, -92): 30_000})
        events = list(trace.events())
        self.assertEqual(len(events), 1138)
        kept = sum(p["sampled"] - p["capped"] - p["dropped"] for p in trace.aggregates)
        self.assertEqual(kept, len(events))
        self.assertEqual(gsot.aggregate_bucket_range(303), (15 << 36, None))
        self.assertEqual(gsot.aggregate_bucket_range(8 + 8 * 7 + 3), (11 << 7, 12 << 7))
        for p in trace.aggregates:
            for e in p["entries"]:
                for index, _ in e["buckets"]:
                    low, _high = gsot.aggregate_bucket_range(index)
                    self.assertLessEqual(low, e["duration_max_ns"])

    def test_synthetic_loop(self):
        s = gsot.summarize(gsot.TraceFile(sample("synthetic-loop.gsot")))
        self.assertEqual(s["version"], [1, 0])
        self.assertFalse(s["recovered"])
        self.assertEqual(s["blocks"], 3)
        self.assertEqual(s["events"], 5000)
        self.assertEqual(s["digest"], "0x8d94aaa297acb11e")

    def test_crashed(self):
        data = sample("crashed.gsot")
        trace = gsot.TraceFile(data)
        s = gsot.summarize(trace)
        self.assertTrue(s["recovered"])
        self.assertIn("end magic", trace.scan.reason)  # no usable trailer
        self.assertEqual(s["blocks"], 2)
        self.assertEqual(s["events"], 2048)
        self.assertEqual(s["processes"], 48)
        self.assertEqual(s["digest"], "0x3f6f56b7f8e01217")
        # The scan stops at the third BLCK section, which samples/README.md says was cut 100
        # bytes in; the one problem is its truncated body, named by the body's offset. (The
        # sample committed before 6d9aa36 had these at 42309 and 42325.)
        self.assertEqual(trace.scan.stop_offset, 43702)
        self.assertEqual(trace.scan.stop_offset, len(data) - 100)
        self.assertEqual(data[43702:43706], b"BLCK")
        self.assertEqual(len(trace.problems), 1)
        offset, text = trace.problems[0]
        self.assertEqual(offset, 43702 + gsot.SECTION_HEADER_LEN)
        self.assertIn("BLCK", text)
        self.assertIn("cut", text)

    def test_cli_prints_the_summary(self):
        result = subprocess.run(
            [sys.executable, str(READER), str(SAMPLES / "synthetic-loop.gsot")], capture_output=True, text=True
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('"digest": "0x8d94aaa297acb11e"', result.stdout)


class DamageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mixed = sample("synthetic-mixed.gsot")
        trace = gsot.TraceFile(cls.mixed)
        # (section offset, section end, events) of every block of the finished file.
        cls.spans = []
        for ref in trace.blocks:
            section = gsot.read_section(cls.mixed, ref.offset, gsot.TAG_BLCK)
            cls.spans.append((section.offset, section.end, trace.read_block(ref)))
        cls.all_events = [e for _, _, events in cls.spans for e in events]

    def test_flipped_byte_in_block_body_fails_the_block_crc(self):
        offset = self.spans[1][0]
        body_offset = offset + gsot.SECTION_HEADER_LEN
        data = bytearray(self.mixed)
        data[body_offset + 100] ^= 0x01  # inside the zstd frame
        trace = gsot.TraceFile(bytes(data))  # the index itself is intact
        self.assertFalse(trace.recovered)
        with self.assertRaises(gsot.GsotError) as ctx:
            list(trace.events())
        self.assertEqual(ctx.exception.offset, body_offset)
        self.assertIn("CRC", str(ctx.exception))
        result = run_cli(bytes(data))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("CRC", result.stderr)

    def test_flipped_byte_in_a_scanned_file_skips_that_block(self):
        offset, end, _ = self.spans[1]
        data = bytearray(self.mixed[: self.spans[-1][1]])  # no INDX, no trailer: scanned
        data[offset + gsot.SECTION_HEADER_LEN + 100] ^= 0x80
        trace = gsot.TraceFile(bytes(data))
        self.assertTrue(trace.recovered)
        self.assertEqual([ref.offset for ref in trace.blocks], [s[0] for i, s in enumerate(self.spans) if i != 1])
        self.assertEqual(len(trace.problems), 1)
        self.assertEqual(trace.problems[0][0], offset + gsot.SECTION_HEADER_LEN)
        self.assertIn("CRC", trace.problems[0][1])

    def test_major_version_2_is_refused_naming_both_versions(self):
        data = bytearray(self.mixed)
        struct.pack_into("<H", data, 8, 2)
        # Both with the preamble CRC fixed up (a genuine 2.0 file) and without: the version
        # is checked before the CRC.
        fixed = bytearray(data)
        struct.pack_into("<I", fixed, 12, gsot.crc32c(bytes(fixed[:12])))
        for candidate in (bytes(fixed), bytes(data)):
            with self.assertRaises(gsot.VersionError) as ctx:
                gsot.TraceFile(candidate)
            self.assertIn("2.0", str(ctx.exception))
            self.assertIn("1.x", str(ctx.exception))
        result = run_cli(bytes(fixed))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("2.0", result.stderr)
        self.assertIn("1.x", result.stderr)

    def test_bad_magic_and_bad_preamble_crc(self):
        with self.assertRaisesRegex(gsot.GsotError, "not a trace file"):
            gsot.TraceFile(b"\x89GSX" + self.mixed[4:])
        data = bytearray(self.mixed)
        data[13] ^= 0xFF
        with self.assertRaisesRegex(gsot.GsotError, "preamble CRC"):
            gsot.TraceFile(bytes(data))

    def test_cut_files_yield_every_complete_block(self):
        n = len(self.mixed)
        head_end = gsot.TraceFile(self.mixed).head_end
        cuts = {head_end, n - 1, n - 12, n - 24, n - 24 - 50}
        for offset, end, _ in self.spans:
            cuts |= {offset, offset + 5, offset + 16, offset + 100, end - 1, end, end + 1}
        for cut in sorted(cuts):
            with self.subTest(cut=cut):
                trace = gsot.TraceFile(self.mixed[:cut])
                self.assertTrue(trace.recovered)
                complete = [s for s in self.spans if s[1] <= cut]
                self.assertEqual([ref.offset for ref in trace.blocks], [s[0] for s in complete])
                events = list(trace.events())
                self.assertEqual(digest_of(events), digest_of(e for s in complete for e in s[2]))
                self.assertLessEqual(trace.scan.stop_offset, cut)

    def test_cut_inside_head_is_an_error(self):
        with self.assertRaises(gsot.GsotError):
            gsot.TraceFile(self.mixed[:100])

    def test_scanning_a_finished_file_with_a_broken_trailer(self):
        data = bytearray(self.mixed)
        data[-20] ^= 0x01  # trailer CRC no longer holds
        trace = gsot.TraceFile(bytes(data))
        self.assertTrue(trace.recovered)
        self.assertIn("trailer CRC", trace.scan.reason)
        self.assertEqual(trace.problems, [])
        self.assertEqual(trace.scan.stop_reason, "trailer")
        self.assertEqual(trace.scan.stop_offset, len(data) - gsot.TRAILER_LEN)
        s = gsot.summarize(trace)
        self.assertEqual((s["blocks"], s["events"], s["processes"], len(s["losses"])), (5, 5000, 48, 1))
        self.assertEqual(s["digest"], "0x2fc4b35f5e7e334d")

    def test_damaged_section_header_is_searched_past(self):
        data = bytearray(sample("crashed.gsot"))
        first_block, second_block = [ref.offset for ref in gsot.TraceFile(bytes(data)).blocks]
        data[second_block + 5] ^= 0x01  # body_len, covered by the header CRC
        trace = gsot.TraceFile(bytes(data))
        self.assertEqual([ref.offset for ref in trace.blocks], [first_block])
        self.assertEqual(trace.problems[0][0], second_block)
        self.assertIn("header CRC", trace.problems[0][1])

    def test_unknown_section_is_skipped(self):
        data = sample("crashed.gsot")
        head_end = gsot.TraceFile(data).head_end
        extra = section_bytes(b"XTRA", b"a section from a later minor version")
        trace = gsot.TraceFile(data[:head_end] + extra + data[head_end:])
        s = gsot.summarize(trace)
        self.assertEqual((s["blocks"], s["events"], s["digest"]), (2, 2048, "0x3f6f56b7f8e01217"))
        self.assertEqual(len(s["problems"]), 1)


# --- Block summaries, BSUM (FORMAT.md section 4.2, format 1.1) ---------------------------------

MIXED_DIGEST = "0x2fc4b35f5e7e334d"  # synthetic-mixed.gsot; the 1.1 sample holds the same events


def varint(n: int) -> bytes:
    """A u64 in bincode's varint encoding, shortest form (section 1)."""
    if n < 251:
        return bytes([n])
    if n <= 0xFFFF:
        return bytes([251]) + n.to_bytes(2, "little")
    if n <= 0xFFFF_FFFF:
        return bytes([252]) + n.to_bytes(4, "little")
    return bytes([253]) + n.to_bytes(8, "little")


def summary_bytes(groups) -> bytes:
    """The decompressed summary of section 4.2 for per-site duration lists (each sorted)."""
    out = b""
    for group in groups:
        out += varint(len(group))
        previous = 0
        for d in group:
            out += varint(d - previous)
            previous = d
    return out


def bsum_body(block_offset: int, event_count: int, site_count: int, summary: bytes, raw_len=None) -> bytes:
    head = struct.pack("<QIII", block_offset, event_count, site_count, len(summary) if raw_len is None else raw_len)
    return head + zstandard.ZstdCompressor().compress(summary)


class SummarySampleTest(unittest.TestCase):
    """The 1.1 sample, and the 1.0 samples read by a 1.1 reader."""

    @classmethod
    def setUpClass(cls):
        cls.data = sample("synthetic-mixed-1.1.gsot")
        cls.trace = gsot.TraceFile(cls.data)

    def test_synthetic_mixed_1_1(self):
        s = gsot.summarize(self.trace)
        self.assertEqual(self.trace.version, (1, 1))
        self.assertEqual(s["version"], [1, 1])
        self.assertFalse(s["recovered"])
        self.assertEqual(s["problems"], [])
        self.assertEqual((s["blocks"], s["events"], s["processes"], len(s["losses"])), (5, 5000, 48, 1))
        self.assertEqual(s["block_summaries"], 5)
        self.assertTrue(s["block_summaries_match"])
        self.assertEqual(s["summary_problems"], [])

    def test_same_events_as_the_1_0_sample(self):
        other = gsot.summarize(gsot.TraceFile(sample("synthetic-mixed.gsot")))
        mine = gsot.summarize(self.trace)
        self.assertEqual(other["digest"], MIXED_DIGEST)
        self.assertEqual(mine["digest"], other["digest"])

    def test_every_block_is_directly_followed_by_its_summary(self):
        for ref in self.trace.blocks:
            with self.subTest(block=ref.offset):
                block = gsot.read_section(self.data, ref.offset, gsot.TAG_BLCK)
                self.assertEqual(self.data[block.end : block.end + 4], b"BSUM")
                summary = self.trace.read_summary(ref)
                decoded = self.trace.read_block_full(ref)
                self.assertEqual(len(summary), decoded.site_count)
                self.assertEqual(sum(map(len, summary)), ref.event_count)
                self.assertTrue(all(run and run == sorted(run) for run in summary))
                self.assertEqual(summary, decoded.durations_by_site())
                self.assertIs(self.trace.summary_matches(ref), True)

    def test_1_0_samples_have_no_summaries(self):
        for name in ("synthetic-mixed.gsot", "synthetic-loop.gsot", "crashed.gsot"):
            with self.subTest(name=name):
                trace = gsot.TraceFile(sample(name))
                self.assertEqual(trace.version, (1, 0))
                self.assertEqual([trace.read_summary(ref) for ref in trace.blocks], [None] * len(trace.blocks))
                s = gsot.summarize(trace)
                self.assertEqual((s["block_summaries"], s["summary_problems"]), (0, []))

    def test_cli_reports_summaries(self):
        result = subprocess.run(
            [sys.executable, str(READER), str(SAMPLES / "synthetic-mixed-1.1.gsot")], capture_output=True, text=True
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('"block_summaries": 5,', result.stdout)
        self.assertIn('"block_summaries_match": true,', result.stdout)
        self.assertIn(f'"digest": "{MIXED_DIGEST}"', result.stdout)


class SummaryDamageTest(unittest.TestCase):
    """Damaged or wrong BSUM sections: each is rejected, and its block still reads."""

    @classmethod
    def setUpClass(cls):
        cls.data = sample("synthetic-mixed-1.1.gsot")
        trace = gsot.TraceFile(cls.data)
        cls.blocks = [(ref.offset, ref.event_count) for ref in trace.blocks]
        # Per block: its BSUM section, and the block's durations by site.
        cls.bsums = []
        for ref in trace.blocks:
            end = gsot.read_section(cls.data, ref.offset, gsot.TAG_BLCK).end
            cls.bsums.append((gsot.read_section(cls.data, end, gsot.TAG_BSUM), trace.read_block_full(ref)))

    def replace_bsum(self, i: int, body: bytes) -> bytes:
        """The sample with the i-th BSUM's body replaced, both CRCs recomputed."""
        section, _ = self.bsums[i]
        return self.data[: section.offset] + section_bytes(b"BSUM", body) + self.data[section.end :]

    def assert_blocks_read(self, trace, problems=1):
        s = gsot.summarize(trace)
        self.assertEqual((s["blocks"], s["events"], s["digest"]), (5, 5000, MIXED_DIGEST))
        self.assertEqual(s["block_summaries"], 5 - problems)
        self.assertTrue(s["block_summaries_match"])
        self.assertEqual(len(s["summary_problems"]), problems)
        return s

    def test_flipped_byte_in_summary_body_fails_its_crc(self):
        section, _ = self.bsums[2]
        data = bytearray(self.data)
        data[section.body_offset + 30] ^= 0x04  # inside the zstd frame
        trace = gsot.TraceFile(bytes(data))
        self.assertFalse(trace.recovered)  # the index does not list BSUMs; it is intact
        ref = trace.blocks[2]
        with self.assertRaises(gsot.GsotError) as ctx:
            trace.read_summary(ref)
        self.assertEqual(ctx.exception.offset, section.body_offset)
        self.assertIn("BSUM body CRC", str(ctx.exception))
        self.assertEqual(digest_of(trace.read_block(ref)), digest_of(self.bsums[2][1].events))
        s = self.assert_blocks_read(trace)
        self.assertEqual(s["summary_problems"][0]["offset"], section.body_offset)

    def test_flipped_byte_in_summary_of_a_scanned_file(self):
        section, _ = self.bsums[2]
        data = bytearray(self.data[: self.bsums[-1][0].end])  # no INDX, no trailer
        data[section.body_offset + 30] ^= 0x04
        trace = gsot.TraceFile(bytes(data))
        self.assertTrue(trace.recovered)
        self.assertEqual([(r.offset, r.event_count) for r in trace.blocks], self.blocks)
        self.assertEqual(trace.problems, [(section.body_offset, "BSUM body CRC mismatch: section skipped")])
        self.assert_blocks_read(trace)

    def test_wrong_header_fields_same_length(self):
        """block_offset, event_count, site_count off by one: the body keeps its length, so the
        index still opens the file."""
        section, decoded = self.bsums[1]
        offset, count = self.blocks[1]
        frame = section.body[gsot.BSUM_HEADER_LEN :]
        raw_len = struct.unpack_from("<I", section.body, 16)[0]
        cases = {
            "block_offset": (offset + 1, count, decoded.site_count, 0),
            "event_count": (offset, count - 1, decoded.site_count, 8),
            "site_count": (offset, count, decoded.site_count + 1, 12),
        }
        for what, (b, c, n, field_at) in cases.items():
            with self.subTest(what=what):
                data = self.replace_bsum(1, struct.pack("<QIII", b, c, n, raw_len) + frame)
                trace = gsot.TraceFile(data)
                self.assertFalse(trace.recovered)
                with self.assertRaisesRegex(gsot.GsotError, f"BSUM {what} is") as ctx:
                    trace.read_summary(trace.blocks[1])
                self.assertEqual(ctx.exception.offset, section.body_offset + field_at)
                self.assert_blocks_read(trace)

    def test_rebuilt_summaries_are_rejected(self):
        """Summaries rebuilt with valid CRCs but breaking a rule of section 4.2. Rebuilding
        changes the section's length, which moves the INDX section away from the trailer's
        index_offset: the file is opened by scanning. The last block's summary is the one
        changed, so every other section keeps its offset (and every other BSUM its
        block_offset)."""
        section, decoded = self.bsums[4]
        offset, count = self.blocks[4]
        groups = decoded.durations_by_site()
        sites = decoded.site_count
        multi = next(i for i, g in enumerate(groups) if len(g) >= 2)
        zero_run = [[]] + [sorted(groups[0] + groups[1])] + groups[2:]  # n_0 = 0, sum still right
        short_run = [g[:-1] if i == multi else g for i, g in enumerate(groups)]  # adds up to count - 1
        good = summary_bytes(groups)
        cases = {
            "run of 0": bsum_body(offset, count, sites, summary_bytes(zero_run)),
            "add up to 903": bsum_body(offset, count, sites, summary_bytes(short_run)),
            "stop 1 bytes short": bsum_body(offset, count, sites, good + b"\0"),
            "run past raw_len": bsum_body(offset, count, sites, good[:-1]),
            "event_count": bsum_body(offset, count + 1, sites, good),
            "block_offset": bsum_body(offset - 16, count, sites, good),
        }
        self.assertEqual(count, 904)
        for what, body in cases.items():
            with self.subTest(what=what):
                data = self.replace_bsum(4, body)
                trace = gsot.TraceFile(data)
                self.assertEqual(trace.recovered, len(data) != len(self.data))
                if trace.recovered:  # the trailer's index_offset no longer points at INDX
                    self.assertEqual(trace.scan.stop_reason, "trailer")
                    self.assertEqual(trace.problems, [])
                self.assertEqual([(r.offset, r.event_count) for r in trace.blocks], self.blocks)
                with self.assertRaisesRegex(gsot.GsotError, what):
                    trace.read_summary(trace.blocks[4])
                s = self.assert_blocks_read(trace)
                self.assertIn(what, s["summary_problems"][0]["problem"])
        # The rebuilding itself is sound: the good summary, recompressed, reads again.
        trace = gsot.TraceFile(self.replace_bsum(4, bsum_body(offset, count, sites, good)))
        self.assertEqual(trace.read_summary(trace.blocks[4]), groups)
        self.assert_blocks_read(trace, problems=0)

    def test_summary_with_other_durations_is_read_but_does_not_match(self):
        section, decoded = self.bsums[4]
        offset, count = self.blocks[4]
        groups = decoded.durations_by_site()
        groups[-1] = groups[-1][:-1] + [groups[-1][-1] + 1]  # the slowest call one ns slower
        trace = gsot.TraceFile(self.replace_bsum(4, bsum_body(offset, count, decoded.site_count, summary_bytes(groups))))
        self.assertEqual(trace.read_summary(trace.blocks[4]), groups)
        self.assertIs(trace.summary_matches(trace.blocks[4]), False)
        s = gsot.summarize(trace)
        self.assertEqual((s["block_summaries"], s["block_summaries_match"]), (5, False))
        self.assertEqual(s["block_summaries_mismatched"], [offset])
        self.assertEqual(s["digest"], MIXED_DIGEST)

    def test_summary_not_right_after_its_block_is_ignored(self):
        """A section between a block and its BSUM: the block has no summary, the BSUM is
        ignored (it is not where a summary is looked for)."""
        section, _ = self.bsums[4]
        extra = section_bytes(b"XTRA", b"a section from a later minor version")
        data = self.data[: section.offset] + extra + self.data[section.offset :]
        trace = gsot.TraceFile(data)
        self.assertTrue(trace.recovered)  # INDX moved
        self.assertIsNone(trace.read_summary(trace.blocks[4]))
        s = gsot.summarize(trace)
        self.assertEqual((s["blocks"], s["digest"], s["block_summaries"], s["summary_problems"]), (5, MIXED_DIGEST, 4, []))

    def test_cut_files(self):
        """A file cut right after a block, or inside its BSUM's header: no summary for it. Cut
        inside the BSUM's body: the scan stops there, the block reads, its summary is
        rejected."""
        section, _ = self.bsums[1]
        for cut in (section.offset, section.offset + 10):
            with self.subTest(cut=cut):
                trace = gsot.TraceFile(self.data[:cut])
                self.assertEqual(len(trace.blocks), 2)
                self.assertIsNone(trace.read_summary(trace.blocks[1]))
                s = gsot.summarize(trace)
                self.assertEqual((s["events"], s["block_summaries"], s["summary_problems"]), (2048, 1, []))
        for cut in (section.offset + 16, section.offset + 40, section.end - 1):
            with self.subTest(cut=cut):
                trace = gsot.TraceFile(self.data[:cut])
                self.assertEqual(trace.scan.stop_offset, section.offset)
                self.assertEqual(len(trace.blocks), 2)
                with self.assertRaisesRegex(gsot.GsotError, "BSUM body of .* runs past the end of the file"):
                    trace.read_summary(trace.blocks[1])
                s = gsot.summarize(trace)
                self.assertEqual((s["events"], s["block_summaries"], len(s["summary_problems"])), (2048, 1, 1))

    def test_scan_resyncs_on_a_summary(self):
        """A damaged block header: the search (section 7 step 3) knows the BSUM tag, so it
        resumes at the BSUM right after the lost block, which is then ignored."""
        block_offset, _ = self.blocks[1]
        section, _ = self.bsums[1]
        data = bytearray(self.data[: self.bsums[-1][0].end])  # no INDX, no trailer: scanned
        data[block_offset + 5] ^= 0x01  # body_len, covered by the header CRC
        trace = gsot.TraceFile(bytes(data))
        self.assertTrue(trace.recovered)
        self.assertEqual([r.offset for r in trace.blocks], [b for i, (b, _) in enumerate(self.blocks) if i != 1])
        self.assertEqual(len(trace.problems), 1)
        self.assertEqual(trace.problems[0][0], block_offset)
        self.assertIn(f"skipped {section.offset - block_offset} bytes", trace.problems[0][1])
        s = gsot.summarize(trace)
        self.assertEqual((s["blocks"], s["events"], s["block_summaries"], s["summary_problems"]), (4, 5000 - 1024, 4, []))


class DecodeSummaryTest(unittest.TestCase):
    """decode_bsum on hand-built bodies (body at file offset 1000, block at 500)."""

    def decode(self, body, event_count=3, site_count=2):
        return gsot.decode_bsum(body, 1000, 500, event_count, site_count)

    def test_decodes_deltas(self):
        groups = [[5, 5, 300], [2**40]]
        got = self.decode(bsum_body(500, 4, 2, summary_bytes(groups)), event_count=4)
        self.assertEqual(got, groups)
        # Longer varint forms are accepted too.
        long_form = bytes([2, 251, 7, 0, 253]) + (9).to_bytes(8, "little") + bytes([1, 0])
        self.assertEqual(self.decode(bsum_body(500, 3, 2, long_form)), [[7, 16], [0]])

    def test_empty_block(self):
        self.assertEqual(gsot.decode_bsum(bsum_body(500, 0, 0, b""), 1000, 500, 0, 0), [])

    def test_rejections(self):
        frame_at = 1000 + gsot.BSUM_HEADER_LEN
        cases = {
            "overflows 64 bits": (bsum_body(500, 3, 2, bytes([2, 253]) + (2**64 - 1).to_bytes(8, "little") + bytes([1, 1, 0])), frame_at),
            "run of 0": (bsum_body(500, 3, 2, bytes([0, 3, 1, 1, 1])), frame_at),
            "more than event_count": (bsum_body(500, 3, 2, bytes([2, 1, 1, 2, 1, 1])), frame_at),
            # Long forms fill raw_len; two runs of 1 for 3 events (shortest forms would stop short).
            "add up to 2": (bsum_body(500, 3, 2, bytes([1, 251, 1, 0, 1, 1])), frame_at),
            "invalid varint marker": (bsum_body(500, 3, 2, bytes([1, 254, 1, 1, 1])), frame_at),
            "run past raw_len": (bsum_body(500, 3, 2, bytes([1, 1, 2, 1, 253, 1])), frame_at),
            "cannot hold": (bsum_body(500, 3, 2, bytes([1, 1, 2, 1]), raw_len=4), 1016),
            "shorter than its 20-byte header": (bytes(19), 1000),
            "raw_len says 6": (bsum_body(500, 3, 2, bytes([1, 1, 2, 1, 1]), raw_len=6), frame_at),
        }
        for what, (body, offset) in cases.items():
            with self.subTest(what=what):
                with self.assertRaisesRegex(gsot.GsotError, what) as ctx:
                    self.decode(body)
                self.assertEqual(ctx.exception.offset, offset)


if __name__ == "__main__":
    unittest.main()


class ContainerTableTest(unittest.TestCase):
    """CTNR (FORMAT.md 5.1, since 1.3), listed after INDX's total_events and found by a scan."""

    def setUp(self):
        root = HERE.parents[2]
        target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
        gen = Path(os.environ.get("GEN_TRACE_BIN", target / "debug" / "gen-trace"))
        if not os.access(gen, os.X_OK):
            # A missing binary is a failure, not a skip: CI must not pass without testing.
            raise RuntimeError(f"{gen} not built (scripts/test-all.sh builds it)")
        self.tmp = tempfile.mkdtemp(prefix="gsot-ctnr-")
        self.path = Path(self.tmp) / "t.gsot"
        subprocess.run([str(gen), "--seed", "1", "--events", "2000", "-o", str(self.path)], check=True)

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    WANT = [{
        "id": "9f2b6c1d4e8a3f7b0c5d2e9a6b1f4c8d3e7a0b5c2d9f6e1a4b8c3d7e0f5a2b9c",
        "runtime": "containerd", "name": "envoy", "image": "docker.io/envoyproxy/envoy:v1.31.0",
        "pod_name": "web-7f9c", "pod_namespace": "default", "k8s_container": "envoy",
    }]

    def test_read_by_the_index(self):
        t = gsot.TraceFile(self.path.read_bytes())
        self.assertFalse(t.recovered)
        self.assertEqual(t.containers, self.WANT)
        # The container's id is the one its process's cgroup path names.
        self.assertTrue(any(p["cgroup"].endswith(f"cri-containerd-{self.WANT[0]['id']}.scope")
                            for p in t.processes))

    def test_read_by_a_scan(self):
        data = self.path.read_bytes()[:-24]  # no trailer: the index is not used
        t = gsot.TraceFile(data)
        self.assertTrue(t.recovered)
        self.assertEqual(t.containers, self.WANT)


class SocketSampleTest(unittest.TestCase):
    """The 1.2 sample: the mixed events again, each with its socket (FORMAT.md 4.3)."""

    @classmethod
    def setUpClass(cls):
        cls.trace = gsot.TraceFile(sample("synthetic-mixed-1.2.gsot"))
        cls.events = [e for ref in cls.trace.blocks for e in cls.trace.read_block(ref)]

    def test_same_events_as_the_1_0_sample(self):
        s = gsot.summarize(self.trace)
        self.assertEqual(s["version"], [1, 2])
        self.assertEqual(s["problems"], [])
        self.assertEqual(s["digest"], MIXED_DIGEST)
        self.assertIn(["socket_identity", "recorded"], s["header"]["extra"])

    def test_every_event_has_its_socket(self):
        for e in self.events:
            if e.ret in (-9, -88):  # EBADF, ENOTSOCK
                self.assertEqual(e.socket, gsot.NO_SOCKET)
            else:
                self.assertIsInstance(e.socket, dict)
        families = {e.socket["family"] for e in self.events if isinstance(e.socket, dict)}
        self.assertEqual(families, {1, 2, 10, 16})
        first = self.events[0].socket
        self.assertEqual((first["family"], first["sock_type"], first["protocol"]), (2, 1, 6))
        self.assertEqual((first["tcp_state"], first["local_port"], first["remote_port"]), (10, 443, 0))
        unix = [e.socket for e in self.events if isinstance(e.socket, dict) and e.socket["family"] == 1]
        self.assertTrue(any(s["unix_path"].startswith(b"/run/") for s in unix))
        self.assertTrue(any(s["unix_path"].startswith(b"\0") for s in unix))

    def test_older_samples_have_no_socket_identity(self):
        for name in ("synthetic-mixed.gsot", "synthetic-mixed-1.1.gsot"):
            trace = gsot.TraceFile(sample(name))
            ref = trace.blocks[0]
            self.assertTrue(all(e.socket is None for e in trace.read_block(ref)))


class SocketConformanceTest(unittest.TestCase):
    def test_sockets_of_the_conformance_file(self):
        path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "samples", "conformance", "sockets-1-2.gsot")
        with open(path, "rb") as f:
            trace = gsot.TraceFile(f.read())
        events = [e for ref in trace.blocks for e in trace.read_block(ref)]
        socks = [e.socket for e in events]
        self.assertEqual([s["ino"] if isinstance(s, dict) else s for s in socks],
                         [9001, 9001, 9002, 9003, gsot.NO_SOCKET, None])
        tcp = socks[0]
        self.assertEqual((tcp["family"], tcp["local_addr"][:4], tcp["local_port"], tcp["remote_port"]),
                         (2, bytes([127, 0, 0, 1]), 40312, 5432))
        self.assertEqual(socks[3]["unix_path"], b"/run/app.sock")
