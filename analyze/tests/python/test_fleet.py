#!/usr/bin/env python3
"""A fleet's dataset on a real distributed engine: Apache Spark (local mode), DuckDB, polars.

Traces of three hosts over two days (gen-trace --host/--start), `analyze export --partition-by
host,date` into one dataset, plus one host's files as an older export wrote them (without the
newer columns). The Spark, DuckDB and polars code is README.md's ("A fleet in Spark, DuckDB and
polars"), run as written. Spark's per-(host, optname) counts must equal `analyze stats`
exactly, its exact percentiles agree with analyze's within analyze's documented 0.4%, ns times
and uint64 values come through exactly, and the older files' rows have the newer columns null.

Binaries as test_export.py; Java (Debian's openjdk) and pyspark from scripts/setup.sh.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
from datetime import datetime, timezone

import pyarrow.parquet as pq

from test_export import EXPECTED_ARROW, GEN_TRACE, ROOT, run

# The columns of the export before value_text and the struct columns were added (and before
# the socket and container columns): what an older analyze wrote.
NAMES = [n for n, _, _ in EXPECTED_ARROW]
OLD_COLUMNS = NAMES[:NAMES.index("capture_id") + 1]
HOSTS = {"web-1": 11, "web-2": 12, "db-1": 13}    # host: first seed
DAYS = ["2026-01-01T09:00:00Z", "2026-01-02T17:30:00Z"]
OLD_HOST = "db-0"                                  # exported by "an older analyze"
EVENTS = 12000


def readme_block(marker: str) -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no {marker} block"
    return m.group(1)


def option(level: int, optname: int, level_name, optname_name) -> str:
    return optname_name or f"{level_name or level}:{optname}"


def iso_ns(s: str) -> int:
    """`2026-01-01T09:00:00.000000533Z` as Unix ns, exactly."""
    whole, frac = s.rstrip("Z").split(".")
    t = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 10**9 + int(frac.ljust(9, "0"))


class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Spark hands timestamps to Python in the process's time zone.
        os.environ["TZ"] = "UTC"
        time.tzset()
        cls.tmp = tempfile.mkdtemp(prefix="gsot-fleet-test-")
        cls.dataset = os.path.join(cls.tmp, "dataset")
        cls.traces: dict[str, list[str]] = {}
        for host, seed in {**HOSTS, OLD_HOST: 20}.items():
            for d, start in enumerate(DAYS):
                path = os.path.join(cls.tmp, f"{host}-{d}.gsot")
                subprocess.run([GEN_TRACE, "--seed", str(seed + 10 * d), "--events", str(EVENTS),
                                "--host", host, "--start", start, "-o", path],
                               check=True, capture_output=True)
                cls.traces.setdefault(host, []).append(path)
        new = [t for h in HOSTS for t in cls.traces[h]]
        run("export", *new, "-o", cls.dataset, "--partition-by", "host,date")
        # The old host's files, as an export without the newer columns wrote them.
        old = os.path.join(cls.tmp, "old")
        run("export", *cls.traces[OLD_HOST], "-o", old, "--partition-by", "host,date")
        for f in glob.glob(f"{old}/**/*.parquet", recursive=True):
            dest = os.path.join(cls.dataset, os.path.relpath(f, old))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            # Partitioned by host: the host is in the path, not in the file.
            pq.write_table(pq.read_table(f, columns=[c for c in OLD_COLUMNS if c != "host"]), dest)
        cls.rows = {}
        for name in ("fleet-spark", "fleet-duckdb", "fleet-polars"):
            ns = {"dataset": cls.dataset}
            exec(readme_block(name), ns)
            cls.rows[name] = ns
        cls.rows["fleet-spark"]["spark"].stop()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def stats(self, host: str) -> dict:
        return json.loads(run("stats", *self.traces[host], "--by", "optname", "--format", "json"))

    def spark(self) -> dict:
        """Spark's rows by (host, option as analyze stats names it: LEVEL:NUMBER if unknown)."""
        return {(r["host"], option(r["level"], r["optname"], r["level_name"], r["optname_name"])): r
                for r in self.rows["fleet-spark"]["spark_rows"]}

    def rows_of(self, name: str) -> dict:
        """DuckDB's or polars' rows (host, level, optname, level_name, optname_name, ...)."""
        return {(r[0], option(*r[1:5])): r[5:] for r in self.rows[name][name.replace("fleet-", "") + "_rows"]}

    def test_dataset_has_every_host_and_day(self):
        dirs = sorted(os.path.relpath(d, self.dataset)
                      for d in glob.glob(f"{self.dataset}/host=*/date=*"))
        want = sorted(f"host={h}/date={day[:10]}" for h in [*HOSTS, OLD_HOST] for day in DAYS)
        self.assertEqual(dirs, want)

    def test_spark_counts_equal_stats_and_percentiles_agree(self):
        spark = self.spark()
        self.assertEqual({h for h, _ in spark}, {*HOSTS, OLD_HOST})
        for host in [*HOSTS, OLD_HOST]:
            s = self.stats(host)
            mine = {k: r for k, r in spark.items() if k[0] == host}
            self.assertEqual(len(mine), len(s["groups"]), host)
            for g in s["groups"]:
                r = mine[(host, g["key"]["optname"])]
                self.assertEqual(r["n"], g["count"], (host, g["key"]))
                # percentile_disc is the exact nearest-rank value; analyze's is within 0.4%.
                for q in ("p50_ns", "p99_ns"):
                    exact = int(r[q])
                    self.assertLessEqual(abs(g[q] - exact), max(1, exact * 0.004),
                                         (host, g["key"], q))

    def test_spark_keeps_nanosecond_times_and_uint64_exact(self):
        spark = self.spark()
        for host in HOSTS:
            firsts = [iso_ns(json.loads(run("info", "--format", "json", t))["first_event"])
                      for t in self.traces[host]]
            got = min(r["first_ns"] for k, r in spark.items() if k[0] == host)
            self.assertEqual(got, min(firsts), host)
            self.assertNotEqual(got % 1000, 0, "ns below the microsecond survive")
            last = max(int(r["last_ts_ns"]) for k, r in spark.items() if k[0] == host)
            # Events are in time order within a file: its last line has its largest ts_ns.
            want = max(int(run("events", t, "--format", "csv", "--fields", "ts_ns").split()[-1])
                       for t in self.traces[host])
            self.assertEqual(last, want, host)
        first = min(r["first"] for r in spark.values())
        self.assertEqual(first.strftime("%Y-%m-%d %H:%M"), "2026-01-01 09:00")

    def test_older_files_read_with_the_newer_columns_null(self):
        spark = self.spark()
        duck, pol = self.rows_of("fleet-duckdb"), self.rows_of("fleet-polars")
        for rows in (duck, pol):
            self.assertEqual(set(rows), set(spark))
            for k, r in rows.items():
                self.assertEqual((r[0], r[1]), (spark[k]["n"], spark[k]["with_tcp_info"]), k)
        for k in [k for k in spark if k[1] == "TCP_INFO"]:
            if k[0] == OLD_HOST:
                self.assertEqual(spark[k]["with_tcp_info"], 0, k)
                self.assertIsNone(pol[k][2], k)
            else:
                # The newer files' successful TCP_INFO calls have their struct.
                self.assertGreater(spark[k]["with_tcp_info"], 0, k)
                self.assertEqual(duck[k][3], pol[k][2], k)
        for k, r in duck.items():
            # Sums of uint64 columns: exact in both (decimal(20,0) in Spark, UBIGINT in DuckDB).
            self.assertEqual(r[2], int(spark[k]["total_ns"]), k)

if __name__ == "__main__":
    unittest.main()
