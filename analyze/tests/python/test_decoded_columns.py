#!/usr/bin/env python3
"""The export's decoded-value columns read by pyarrow, DuckDB and polars, with exact values.

On captures of real sockets (samples/real/): `value_text` is CSV's `value` for every row of
every sample; `tcp_info`, `linger`, `ucred` and `timeval` hold exactly the fields of
`analyze events --format json`'s `value` (and what the raw bytes say at the kernel's offsets),
with every field beyond the bytes captured null, never 0.

Binaries and packages as test_export.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import duckdb
import polars as pl
import pyarrow.parquet as pq

from test_export import ANALYZE, ROOT, SAMPLES, TCP_INFO_FIELDS, damaged_ok, run

REAL = os.path.join(ROOT, "samples", "real")
IPERF = os.path.join(REAL, "iperf3-tcp-info.gsot")
SNAP100 = os.path.join(REAL, "python-struct-options-snaplen100.gsot")
URLLIB = os.path.join(REAL, "python-urllib-and-http-server.gsot")
# The JSON field name of each tcp_info column: the column without its unit suffix.
JSON_NAME = {n: n.rsplit("_", 1)[0] if n.endswith(("_us", "_ms")) else n
             for n, _ in TCP_INFO_FIELDS}


def events_json(path: str) -> list[dict]:
    return [json.loads(line) for line in
            run("events", path, "--format", "json", ok=damaged_ok(path)).splitlines()]


def json_to_column(v):
    """A JSON value field as the struct column holds it (flags are a list in JSON)."""
    return "|".join(v) if isinstance(v, list) else v


class DecodedColumnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(ANALYZE, os.X_OK):
            raise RuntimeError(f"{ANALYZE} not built (scripts/test-all.sh builds it)")
        cls.tmp = tempfile.mkdtemp(prefix="gsot-decoded-test-")
        cls.out = {}
        for i, t in enumerate(SAMPLES):
            out = os.path.join(cls.tmp, f"{i}.parquet")
            run("export", t, "-o", out, ok=damaged_ok(t))
            cls.out[t] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_value_text_is_csv_value_on_every_sample(self):
        for t in SAMPLES:
            rows = list(csv.DictReader(io.StringIO(
                run("events", t, "--format", "csv", ok=damaged_ok(t)))))
            table = pq.read_table(self.out[t], columns=["ret", "value_text", "value_truncated"])
            texts = table.column("value_text").to_pylist()
            self.assertEqual(len(texts), len(rows), t)
            for i, r in enumerate(rows):
                # CSV's empty cell is Parquet's null: the failed calls.
                want = r["value"] if int(r["ret"]) >= 0 else None
                self.assertEqual(texts[i], want, (t, i))
                self.assertEqual(table.column("value_truncated")[i].as_py(),
                                 r["value_truncated"] == "true", (t, i))

    def test_tcp_info_is_events_json_field_by_field(self):
        for t in (IPERF, SNAP100, URLLIB):
            events = events_json(t)
            infos = pq.read_table(self.out[t]).column("tcp_info").to_pylist()
            seen = 0
            for e, info in zip(events, infos, strict=True):
                if e["optname_name"] != "TCP_INFO" or e["ret"] != 0:
                    self.assertIsNone(info, e)
                    continue
                seen += 1
                self.assertEqual([n for n in info], [n for n, _ in TCP_INFO_FIELDS])
                for col, v in info.items():
                    want = e["value"].get(JSON_NAME[col])
                    self.assertEqual(v, json_to_column(want), (t, e["ts_ns"], col))
            self.assertGreater(seen, 0, t)

    def test_tcp_info_holds_the_raw_bytes_and_nulls_past_them(self):
        events = events_json(IPERF)
        table = pq.read_table(self.out[IPERF])
        infos = table.column("tcp_info").to_pylist()
        rows = [(e, i) for e, i in zip(events, infos) if i is not None]
        # iperf3 polls every 0.1 s for 2 s (client) plus the server's reports.
        self.assertGreaterEqual(len(rows), 20)
        for e, info in rows:
            raw = bytes.fromhex(e["value_hex"])
            # iperf3 asks with its own 232-byte struct (Linux 5.4's).
            self.assertEqual(len(raw), 232)
            rtt, rttvar, ssthresh, cwnd = struct.unpack_from("<4I", raw, 68)
            self.assertEqual((info["rtt_us"], info["rttvar_us"], info["snd_cwnd"]),
                             (rtt, rttvar, cwnd))
            self.assertEqual(info["bytes_acked"], struct.unpack_from("<Q", raw, 120)[0])
            self.assertEqual(info["snd_wnd"], struct.unpack_from("<I", raw, 228)[0])
            self.assertEqual(info["state"], "ESTABLISHED")
            # Past the 232 bytes: not returned, so null (rcv_wnd is 6.2's).
            for col in ("rcv_wnd", "rehash", "total_rto", "received_ce", "options2"):
                self.assertIsNone(info[col], col)

    def test_snaplen_cut_tcp_info_and_small_structs(self):
        t = pq.read_table(self.out[SNAP100])
        events = events_json(SNAP100)
        infos = t.column("tcp_info").to_pylist()
        cut = [i for i in infos if i is not None]
        self.assertEqual(len(cut), 2)
        for info in cut:
            # 100 bytes captured: rcv_space (96..100) is there, total_retrans (100..104) not.
            self.assertEqual(info["rcv_space"], 65495)
            self.assertIsNone(info["total_retrans"])
            self.assertIsNone(info["bytes_acked"])
        self.assertEqual(t.column("value_truncated").to_pylist()[:2], [True, True])
        self.assertEqual([x for x in t.column("linger").to_pylist() if x],
                         [{"l_onoff": 1, "l_linger": 7}])
        self.assertEqual([x for x in t.column("timeval").to_pylist() if x],
                         [{"tv_sec": 1, "tv_usec": 500000}])
        pid = [e["pid"] for e in events if e["optname_name"] == "SO_PEERCRED"]
        self.assertEqual([x for x in t.column("ucred").to_pylist() if x],
                         [{"pid": pid[0], "uid": 0, "gid": 0}])

    def test_duckdb_reads_tcp_info_fields(self):
        out = self.out[IPERF]
        got = duckdb.sql(
            f"SELECT ts_ns, tcp_info.rtt_us, tcp_info.snd_cwnd, tcp_info.state, "
            f"tcp_info.rcv_wnd FROM '{out}' WHERE tcp_info IS NOT NULL ORDER BY ts_ns"
        ).fetchall()
        want = [(e["ts_ns"], e["value"]["rtt"], e["value"]["snd_cwnd"], "ESTABLISHED", None)
                for e in events_json(IPERF) if e["optname_name"] == "TCP_INFO"]
        self.assertEqual(got, want)
        types = {r[0]: r[1] for r in duckdb.sql(
            f"DESCRIBE SELECT tcp_info.rtt_us AS rtt_us, tcp_info.bytes_acked AS bytes_acked, "
            f"value_text FROM '{out}'").fetchall()}
        self.assertEqual(types, {"rtt_us": "UINTEGER", "bytes_acked": "UBIGINT",
                                 "value_text": "VARCHAR"})

    def test_polars_unnests_tcp_info(self):
        df = (pl.read_parquet(self.out[IPERF])
              .filter(pl.col("tcp_info").is_not_null())
              .select("ts_ns", "fd", "tcp_info")
              .unnest("tcp_info")
              .sort("ts_ns"))
        want = [e for e in events_json(IPERF) if e["optname_name"] == "TCP_INFO"]
        self.assertEqual(df.height, len(want))
        self.assertEqual(df["rtt_us"].to_list(), [e["value"]["rtt"] for e in want])
        self.assertEqual(df["snd_cwnd"].to_list(), [e["value"]["snd_cwnd"] for e in want])
        self.assertEqual(df["bytes_acked"].dtype, pl.UInt64)
        self.assertEqual(df["rcv_wnd"].null_count(), df.height)


if __name__ == "__main__":
    unittest.main()
