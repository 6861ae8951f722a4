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

    def test_synthetic_loop(self):
        s = gsot.summarize(gsot.TraceFile(sample("synthetic-loop.gsot")))
        self.assertEqual(s["version"], [1, 0])
        self.assertFalse(s["recovered"])
        self.assertEqual(s["blocks"], 3)
        self.assertEqual(s["events"], 5000)
        self.assertEqual(s["digest"], "0x8d94aaa297acb11e")

    def test_crashed(self):
        trace = gsot.TraceFile(sample("crashed.gsot"))
        s = gsot.summarize(trace)
        self.assertTrue(s["recovered"])
        self.assertIn("end magic", trace.scan.reason)  # no usable trailer
        self.assertEqual(s["blocks"], 2)
        self.assertEqual(s["events"], 2048)
        self.assertEqual(s["processes"], 48)
        self.assertEqual(s["digest"], "0x3f6f56b7f8e01217")
        self.assertEqual(trace.scan.stop_offset, 42309)
        self.assertEqual(len(trace.problems), 1)
        offset, text = trace.problems[0]
        self.assertEqual(offset, 42325)
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
        cuts = {16 + 16 + 175, n - 1, n - 12, n - 24, n - 24 - 50}
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
        second_block = 22916  # the BLCK after the LOSS section in crashed.gsot
        self.assertEqual(bytes(data[second_block : second_block + 4]), b"BLCK")
        data[second_block + 5] ^= 0x01  # body_len, covered by the header CRC
        trace = gsot.TraceFile(bytes(data))
        self.assertEqual([ref.offset for ref in trace.blocks], [3608])
        self.assertEqual(trace.problems[0][0], second_block)
        self.assertIn("header CRC", trace.problems[0][1])

    def test_unknown_section_is_skipped(self):
        data = sample("crashed.gsot")
        head_end = 16 + 16 + 175
        extra = section_bytes(b"XTRA", b"a section from a later minor version")
        trace = gsot.TraceFile(data[:head_end] + extra + data[head_end:])
        s = gsot.summarize(trace)
        self.assertEqual((s["blocks"], s["events"], s["digest"]), (2, 2048, "0x3f6f56b7f8e01217"))
        self.assertEqual(len(s["problems"]), 1)


if __name__ == "__main__":
    unittest.main()
