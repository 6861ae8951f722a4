"""The spec-only reader against the conformance suite (samples/conformance/, FORMAT.md 8.1):
for every crafted file, the outcome its .json expects.

Run from the repository root:
    python3 -m unittest discover -s format/tests/python -v
"""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import read_gsot as gsot  # noqa: E402

SUITE = Path(__file__).resolve().parents[3] / "samples" / "conformance"


def shown(e: gsot.Event) -> dict:
    """An event in the suite's JSON shape: comm cut at its first NUL (FORMAT.md 4.1)."""
    return dict(ts_ns=e.ts_ns, duration_ns=e.duration_ns, tgid=e.tgid, tid=e.tid,
                comm=e.comm.split(b"\0", 1)[0].decode("utf-8", "replace"), fd=e.fd,
                level=e.level, optname=e.optname, ret=e.ret, flags=e.flags,
                value=e.value.hex(), optlen_in=e.optlen_in, optlen_out=e.optlen_out, cpu=e.cpu)


class ConformanceTest(unittest.TestCase):
    def cases(self):
        files = sorted(SUITE.glob("*.json"))
        self.assertGreaterEqual(len(files), 40)
        for path in files:
            yield path.stem, json.loads(path.read_text()), SUITE / f"{path.stem}.gsot"

    def test_every_case(self):
        for name, want, path in self.cases():
            with self.subTest(case=name):
                self.check(want, path)

    def check(self, want: dict, path: Path) -> None:
        if want["refused"] is not None:
            with self.assertRaises(gsot.GsotError) as ctx:
                gsot.TraceFile.open(str(path))
            self.assertEqual(type(ctx.exception).__name__, want["refused"]["python_error"])
            self.assertEqual(ctx.exception.offset, want["refused"]["offset"])
            return
        trace = gsot.TraceFile.open(str(path))
        events, unreadable, rejected = [], [], []
        for ref in trace.blocks:
            try:
                block = trace.read_block_full(ref)
            except gsot.GsotError:
                unreadable.append(ref.offset)
                continue
            events.extend(shown(e) for e in block.events)
            try:
                trace.summary_matches(ref, block)
            except gsot.GsotError:
                rejected.append(ref.offset)
        self.assertEqual(events, want["events"])
        self.assertEqual(unreadable, want["unreadable_blocks"])
        self.assertEqual(rejected, want["rejected_summaries"])
        self.assertEqual(trace.processes, want["processes"])
        self.assertEqual(trace.losses, want["losses"])
        self.assertEqual(trace.recovered, want["recovered"])
        # Section 5.3, since 1.4: (index, calls) pairs are lists in the JSON.
        aggregates = [{**p, "entries": [{**e, "buckets": [list(b) for b in e["buckets"]]} for e in p["entries"]]}
                      for p in trace.aggregates]
        self.assertEqual(aggregates, want.get("aggregates", []))
        for glob, count in want.get("cgroup", {}).items():
            matched = [e for e in events if (trace.process_at(e["tgid"], e["ts_ns"]) or {}).get("cgroup") == glob]
            self.assertEqual(len(matched), count, glob)


if __name__ == "__main__":
    unittest.main()
