#!/usr/bin/env python3
"""`analyze export` checked by real Parquet readers: pyarrow and DuckDB.

They must open the export, see the documented types, and get the same counts, sums and values
as `analyze stats --format json` and `analyze events --format json` on the committed samples
and on a generated trace; DuckDB must read a Hive-partitioned dataset built from several trace
files, with its partition columns.

Binaries: $ANALYZE_BIN and $GEN_TRACE_BIN, else ${CARGO_TARGET_DIR:-target}/debug/{analyze,
gen-trace} (scripts/test-all.sh builds them). Packages: scripts/requirements-test.txt.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import subprocess
import tempfile
import unittest
from datetime import datetime, timezone

import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "format", "tests", "python"))
import read_gsot  # noqa: E402  (the reader written from FORMAT.md alone)

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
ANALYZE = os.environ.get("ANALYZE_BIN", os.path.join(TARGET, "debug", "analyze"))
GEN_TRACE = os.environ.get("GEN_TRACE_BIN", os.path.join(TARGET, "debug", "gen-trace"))

SAMPLES = sorted(glob.glob(os.path.join(ROOT, "samples", "*.gsot"))) + sorted(
    glob.glob(os.path.join(ROOT, "samples", "real", "*.gsot"))
)

DICT = pa.dictionary(pa.int32(), pa.string())
U8, U16, U32, U64 = pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()
# `tcp_info`'s fields as README.md lists them, in order.
TCP_INFO_FIELDS = (
    [("state", pa.string()), ("ca_state", pa.string())]
    + [(n, U8) for n in ("retransmits", "probes", "backoff")]
    + [("options", pa.string())]
    + [(n, U8) for n in ("snd_wscale", "rcv_wscale", "delivery_rate_app_limited",
                         "fastopen_client_fail")]
    + [(n, U32) for n in (
        "rto_us", "ato_us", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans",
        "fackets", "last_data_sent_ms", "last_ack_sent_ms", "last_data_recv_ms",
        "last_ack_recv_ms", "pmtu", "rcv_ssthresh", "rtt_us", "rttvar_us", "snd_ssthresh",
        "snd_cwnd", "advmss", "reordering", "rcv_rtt_us", "rcv_space", "total_retrans")]
    + [(n, U64) for n in ("pacing_rate", "max_pacing_rate", "bytes_acked", "bytes_received")]
    + [(n, U32) for n in ("segs_out", "segs_in", "notsent_bytes", "min_rtt_us", "data_segs_in",
                          "data_segs_out")]
    + [(n, U64) for n in ("delivery_rate", "busy_time_us", "rwnd_limited_us",
                          "sndbuf_limited_us")]
    + [(n, U32) for n in ("delivered", "delivered_ce")]
    + [(n, U64) for n in ("bytes_sent", "bytes_retrans")]
    + [(n, U32) for n in ("dsack_dups", "reord_seen", "rcv_ooopack", "snd_wnd", "rcv_wnd",
                          "rehash")]
    + [(n, U16) for n in ("total_rto", "total_rto_recoveries")]
    + [(n, U32) for n in ("total_rto_time_ms", "received_ce", "delivered_e1_bytes",
                          "delivered_e0_bytes", "delivered_ce_bytes", "received_e1_bytes",
                          "received_e0_bytes", "received_ce_bytes")]
    + [(n, U8) for n in ("ecn_mode", "accecn_opt_seen", "accecn_fail_mode")]
    + [("options2", U32)]
)
TCP_INFO = pa.struct(TCP_INFO_FIELDS)
# The schema as README.md ("Parquet schema") documents it: name, Arrow type, nullable.
EXPECTED_ARROW = [
    ("time", pa.timestamp("ns", tz="UTC"), False),
    ("ts_ns", pa.uint64(), False),
    ("duration_ns", pa.uint64(), False),
    ("pid", pa.uint32(), False),
    ("tid", pa.uint32(), False),
    ("ppid", pa.uint32(), False),
    ("uid", pa.uint32(), False),
    ("gid", pa.uint32(), False),
    ("comm", DICT, False),
    ("cgroup_id", pa.uint64(), False),
    ("pid_ns", pa.uint32(), False),
    ("mnt_ns", pa.uint32(), False),
    ("cpu", pa.uint32(), False),
    ("fd", pa.int32(), False),
    ("level", pa.int32(), False),
    ("level_name", DICT, True),
    ("optname", pa.int32(), False),
    ("optname_name", DICT, True),
    ("optlen_in", pa.int32(), False),
    ("optlen_out", pa.int32(), False),
    ("ret", pa.int32(), False),
    ("errno", DICT, True),
    ("flags", pa.uint16(), False),
    ("optval_ptr", pa.uint64(), False),
    ("optlen_ptr", pa.uint64(), False),
    ("value", pa.binary(), False),
    ("value_int", pa.int64(), True),
    ("host", DICT, False),
    ("capture_id", DICT, False),
    ("container_runtime", DICT, True),
    ("container_id", DICT, True),
    ("container_name", DICT, True),
    ("image", DICT, True),
    ("pod_uid", DICT, True),
    ("pod_name", DICT, True),
    ("pod_namespace", DICT, True),
    ("k8s_container", DICT, True),
    ("qos_class", DICT, True),
    ("systemd_unit", DICT, True),
    ("value_text", pa.string(), True),
    ("value_truncated", pa.bool_(), False),
    ("tcp_info", TCP_INFO, True),
    ("linger", pa.struct([("l_onoff", pa.int32()), ("l_linger", pa.int32())]), True),
    ("ucred", pa.struct([("pid", pa.int32()), ("uid", U32), ("gid", U32)]), True),
    ("timeval", pa.struct([("tv_sec", pa.int64()), ("tv_usec", pa.int64())]), True),
    # Since format 1.2: the call's socket.
    ("sock_family", DICT, True),
    ("sock_type", DICT, True),
    ("sock_protocol", pa.uint16(), True),
    ("tcp_state", DICT, True),
    ("local_addr", DICT, True),
    ("local_port", pa.uint16(), True),
    ("remote_addr", DICT, True),
    ("remote_port", pa.uint16(), True),
    ("unix_path", DICT, True),
    ("unix_peer", DICT, True),
    ("sock_ino", pa.uint64(), True),
    ("netns", pa.uint32(), True),
]
# The container, pod and unit columns, named as in `analyze events --format json`.
NAMES = [n for n, _, _ in EXPECTED_ARROW]
ATTRIBUTION = NAMES[NAMES.index("capture_id") + 1:NAMES.index("value_text")]
# What DuckDB makes of the same Parquet types.
EXPECTED_DUCKDB = {
    "time": "TIMESTAMP WITH TIME ZONE",
    "ts_ns": "UBIGINT",
    "duration_ns": "UBIGINT",
    "pid": "UINTEGER",
    "comm": "VARCHAR",
    "fd": "INTEGER",
    "flags": "USMALLINT",
    "value": "BLOB",
    "value_int": "BIGINT",
    "host": "VARCHAR",
    "container_id": "VARCHAR",
    "pod_uid": "VARCHAR",
    "sock_family": "VARCHAR",
    "remote_addr": "VARCHAR",
    "remote_port": "USMALLINT",
    "sock_ino": "UBIGINT",
    "netns": "UINTEGER",
}


def run(*args: str, ok=(0,)) -> str:
    p = subprocess.run([ANALYZE, *args], capture_output=True, text=True)
    if p.returncode not in ok:
        raise AssertionError(f"analyze {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p.stdout


def damaged_ok(path: str):
    # A damaged sample is read as far as it goes and exits 1; everything else exits 0.
    return (0, 1) if "crashed" in path else (0,)


def stats(path: str, *extra: str) -> dict:
    return json.loads(
        run("stats", path, "--by", "comm,optname", "--format", "json", *extra, ok=damaged_ok(path))
    )


def sql(query: str):
    """Runs a DuckDB query on a fresh in-memory connection and returns a cursor."""
    return duckdb.connect().execute(query)


def nearest_rank(sorted_values: list[int], q: float) -> int:
    n = len(sorted_values)
    return sorted_values[min(max(math.ceil(q * n), 1), n) - 1]


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for b in (ANALYZE, GEN_TRACE):
            if not os.access(b, os.X_OK):
                # A missing binary is a failure, not a skip: CI must not pass without testing.
                raise RuntimeError(f"{b} not built (scripts/test-all.sh builds it)")
        cls.tmp = tempfile.mkdtemp(prefix="gsot-export-test-")
        cls.generated = os.path.join(cls.tmp, "generated.gsot")
        subprocess.run(
            [GEN_TRACE, "--seed", "7", "--events", "150000", "--block-events", "16384",
             "-o", cls.generated],
            check=True,
            capture_output=True,
        )
        cls.traces = SAMPLES + [cls.generated]
        cls.exports = {}
        for i, t in enumerate(cls.traces):
            out = os.path.join(cls.tmp, f"export-{i}.parquet")
            # Small row groups so the generated trace spans several of them.
            run("export", t, "-o", out, "--row-group-rows", "40000", ok=damaged_ok(t))
            cls.exports[t] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_samples_are_there(self):
        self.assertGreaterEqual(len(SAMPLES), 4, "committed samples missing")

    def test_pyarrow_sees_the_documented_schema(self):
        for t, out in self.exports.items():
            schema = pq.read_schema(out)
            got = [(f.name, f.type, f.nullable) for f in schema]
            self.assertEqual(got, EXPECTED_ARROW, t)
            md = pq.read_metadata(out)
            self.assertEqual(md.row_group(0).column(0).compression, "ZSTD")
            self.assertTrue(md.row_group(0).column(2).is_stats_set, "statistics on")
            kv = md.metadata
            doc = json.loads(kv[b"gsot.schema"])
            self.assertEqual([c["name"] for c in doc["columns"]], [n for n, _, _ in EXPECTED_ARROW])
            headers = json.loads(kv[b"gsot.headers"])
            info = json.loads(run("info", "--format", "json", t, ok=damaged_ok(t)))
            # One shape: every header field of gsot.headers is in info's JSON, the same, and
            # both carry exactly the fields (and names) the spec-only reader decodes.
            with open(t, "rb") as f:
                spec = read_gsot.TraceFile(f.read()).header
            self.assertEqual(set(headers[0]) - {"file"}, set(spec), t)
            for k, v in spec.items():
                self.assertEqual(headers[0][k], v, f"{t}: gsot.headers {k}")
                self.assertEqual(info[k], v, f"{t}: info {k}")

    def test_duckdb_sees_the_documented_types(self):
        for t, out in self.exports.items():
            rows = sql(f"DESCRIBE SELECT * FROM read_parquet('{out}')").fetchall()
            types = {r[0]: r[1] for r in rows}
            for name, ty in EXPECTED_DUCKDB.items():
                # DuckDB spells nanosecond timestamps with a suffix in some versions.
                self.assertTrue(types[name].startswith(ty.split(" ")[0]) or types[name] == ty,
                                f"{t}: {name} is {types[name]}, expected {ty}")

    def test_counts_sums_and_latencies_match_stats(self):
        for t, out in self.exports.items():
            s = stats(t)
            total = sql(
                f"SELECT count(*), count(*) FILTER (WHERE ret < 0), sum(duration_ns), "
                f"max(duration_ns) FROM read_parquet('{out}')"
            ).fetchone()
            n, errors, dsum, dmax = total
            self.assertEqual(n, s["total"]["count"], t)
            self.assertEqual(errors, s["total"]["errors"], t)
            self.assertEqual(n, s["total"]["count"], t)
            if n:
                self.assertEqual(dmax, s["total"]["max_ns"], t)
                # stats prints the mean rounded to a whole ns.
                self.assertLessEqual(abs(dsum / n - s["total"]["mean_ns"]), 1.0, t)
            groups = sql(
                # stats names an unknown option LEVEL:NUMBER, as here.
                f"SELECT comm, coalesce(optname_name, "
                f"coalesce(level_name, level::VARCHAR) || ':' || optname), count(*), "
                f"count(*) FILTER (WHERE errno IS NOT NULL), max(duration_ns), "
                f"sum(duration_ns), list(duration_ns ORDER BY duration_ns) "
                f"FROM read_parquet('{out}') GROUP BY ALL"
            ).fetchall()
            by_key = {(g[0], g[1]): g for g in groups}
            self.assertEqual(len(by_key), len(s["groups"]), t)
            for g in s["groups"]:
                key = (g["key"]["comm"], str(g["key"]["optname"]))
                self.assertTrue(key in by_key, (t, key))
                _, _, cnt, err, mx, sm, durations = by_key[key]
                self.assertEqual((cnt, err, mx), (g["count"], g["errors"], g["max_ns"]), key)
                self.assertLessEqual(abs(sm / cnt - g["mean_ns"]), 1.0, key)
                # stats' percentiles are within 0.4% of the exact nearest-rank value.
                for q, field in ((0.5, "p50_ns"), (0.99, "p99_ns")):
                    exact = nearest_rank(durations, q)
                    self.assertLessEqual(abs(g[field] - exact), max(1, exact * 0.004), (key, q))

    def test_rows_match_events_json(self):
        for t in SAMPLES:
            out = self.exports[t]
            events = [
                json.loads(line)
                for line in run("events", t, "--format", "json", ok=damaged_ok(t)).splitlines()
            ]
            table = pq.read_table(out)
            self.assertEqual(table.num_rows, len(events), t)
            cols = {name: table.column(name).to_pylist() for name in table.column_names
                    if name != "time"}
            times = table.column("time").cast(pa.int64()).to_pylist()
            for i, e in enumerate(events):
                for f in ("ts_ns", "duration_ns", "pid", "tid", "ppid", "uid", "gid", "comm",
                          "cgroup_id", "pid_ns", "mnt_ns", "cpu", "fd", "level", "level_name",
                          "optname", "optname_name", "optlen_in", "optlen_out", "ret",
                          *ATTRIBUTION,
                          "sock_family", "sock_type", "sock_protocol", "tcp_state", "local_addr",
                          "local_port", "remote_addr", "remote_port", "unix_path", "unix_peer",
                          "sock_ino", "netns"):
                    self.assertEqual(cols[f][i], e[f], (t, i, f))
                self.assertEqual(cols["value"][i].hex(), e["value_hex"], (t, i))
                self.assertEqual(cols["errno"][i], e["errno"] if e["errno"] is None
                                 else str(e["errno"]), (t, i))
                wall = datetime.fromtimestamp(times[i] // 10**9, tz=timezone.utc)
                iso = wall.strftime("%Y-%m-%dT%H:%M:%S") + f".{times[i] % 10**9:09d}Z"
                self.assertEqual(iso, e["time"], (t, i))
                if cols["value_int"][i] is not None and isinstance(e["value"], int):
                    self.assertEqual(cols["value_int"][i], e["value"], (t, i))
            # Every successful plain-int option has its integer column.
            ints = [i for i, e in enumerate(events)
                    if e["optname_name"] in ("SO_RCVBUF", "SO_SNDBUF", "SO_ERROR")
                    and e["ret"] == 0 and not e["flags"] and len(e["value_hex"]) == 8]
            for i in ints:
                self.assertIsNotNone(cols["value_int"][i], (t, i))

    def test_container_columns_match_stats(self):
        # The generated trace has two pods' containers; the rest are systemd units.
        out = self.exports[self.generated]
        got = sql(
            f"SELECT container_id, pod_uid, qos_class, count(*) FROM read_parquet('{out}') "
            f"WHERE container_id IS NOT NULL GROUP BY ALL ORDER BY 1"
        ).fetchall()
        s = json.loads(run("stats", self.generated, "--by", "container_id,pod_uid,qos_class",
                           "--format", "json"))
        want = sorted((g["key"]["container_id"], g["key"]["pod_uid"], g["key"]["qos_class"],
                       g["count"]) for g in s["groups"] if g["key"]["container_id"])
        self.assertEqual(got, want)
        self.assertEqual(len(got), 2)
        # A unit only where there is no container; the user slice's processes have neither.
        rows = sql(
            f"SELECT systemd_unit IS NOT NULL, container_id IS NOT NULL, "
            f"bool_and(comm IN ('python3', 'curl')), count(*) FROM read_parquet('{out}') "
            f"GROUP BY ALL ORDER BY 1, 2"
        ).fetchall()
        self.assertEqual([r[:3] for r in rows], [(False, False, True), (False, True, False),
                                                 (True, False, False)])

    def test_filters_apply(self):
        t = self.generated
        out = os.path.join(self.tmp, "filtered.parquet")
        args = ["--comm", "ngin*", "--errors", "--since", "1ms"]
        run("export", t, "-o", out, *args)
        s = stats(t, *args)
        n = sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
        self.assertEqual(n, s["total"]["count"])
        self.assertGreater(n, 0, "the filter should select something in the generated trace")
        bad = sql(
            f"SELECT count(*) FROM read_parquet('{out}') WHERE comm NOT LIKE 'ngin%' OR ret >= 0"
        ).fetchone()[0]
        self.assertEqual(bad, 0)
        where = 'optname == TCP_INFO && duration > 1us'
        run("export", t, "-o", out, "--where", where)
        s = stats(t, "--where", where)
        n = sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
        self.assertEqual(n, s["total"]["count"])

    def test_socket_columns_answer_socket_questions(self):
        t = os.path.join(ROOT, "samples", "synthetic-mixed-1.2.gsot")
        out = self.exports[t]
        want = len(run("events", t, "--port", "5432").splitlines())
        n = sql(f"SELECT count(*) FROM read_parquet('{out}') "
                "WHERE local_port = 5432 OR remote_port = 5432").fetchone()[0]
        self.assertEqual(n, want)
        self.assertGreater(n, 0)
        rows = sql(f"SELECT sock_family, count(DISTINCT sock_ino) FROM read_parquet('{out}') "
                   "WHERE sock_family IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
        self.assertEqual([r[0] for r in rows], ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"])
        first = sql(f"SELECT sock_family, sock_type, tcp_state, local_addr, local_port "
                    f"FROM read_parquet('{out}') ORDER BY ts_ns LIMIT 1").fetchone()
        self.assertEqual(first, ("AF_INET", "SOCK_STREAM", "LISTEN", "0.0.0.0", 443))
        # Older files have no socket identity: every socket column is null.
        old = self.exports[os.path.join(ROOT, "samples", "synthetic-mixed.gsot")]
        nn = sql(f"SELECT count(sock_family) + count(remote_port) + count(sock_ino) "
                 f"FROM read_parquet('{old}')").fetchone()[0]
        self.assertEqual(nn, 0)

    def test_partitioned_dataset_from_several_traces(self):
        dest = os.path.join(self.tmp, "dataset")
        run("export", *self.traces, "-o", dest, "--partition-by", "host,date", ok=(0, 1))
        files = sorted(glob.glob(os.path.join(dest, "host=*", "date=*", "*.parquet")))
        self.assertGreaterEqual(len(files), len(self.traces) - 1)
        got = dict(
            ((h, str(d)), n)
            for h, d, n in sql(
                f"SELECT host, date, count(*) FROM read_parquet('{dest}/**/*.parquet', "
                f"hive_partitioning=true) GROUP BY ALL"
            ).fetchall()
        )
        want: dict = {}
        for t in self.traces:
            info = json.loads(run("info", "--format", "json", t, ok=damaged_ok(t)))
            s = stats(t)
            date = info["first_event"][:10]
            key = (info["host_name"], date)
            want[key] = want.get(key, 0) + s["total"]["count"]
        self.assertEqual(got, want)
        # The partition columns live in the paths, not in the files.
        names = pq.read_schema(files[0]).names
        self.assertNotIn("host", names)
        self.assertIn("capture_id", names)
        # Sums across the whole fleet agree with stats over every file together.
        dsum = sql(
            f"SELECT sum(duration_ns) FROM read_parquet('{dest}/**/*.parquet', "
            f"hive_partitioning=true)"
        ).fetchone()[0]
        expect = 0
        for out in self.exports.values():
            expect += sql(f"SELECT sum(duration_ns) FROM read_parquet('{out}')").fetchone()[0] or 0
        self.assertEqual(dsum, expect)

    def test_empty_selection_is_a_valid_empty_file(self):
        out = os.path.join(self.tmp, "empty.parquet")
        run("export", self.generated, "-o", out, "--pid", "999999999")
        self.assertEqual(pq.read_metadata(out).num_rows, 0)
        self.assertEqual(
            [(f.name, f.type) for f in pq.read_schema(out)],
            [(n, t) for n, t, _ in EXPECTED_ARROW],
        )


if __name__ == "__main__":
    unittest.main()
