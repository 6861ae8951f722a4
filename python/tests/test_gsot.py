"""gsot (the Python reader) against `analyze export`: the same table for the same file.

Every column of `gsot.read` equals what `analyze export` writes for the same file and
arguments, on every committed sample and a generated trace; damage raises gsot.TraceError
naming the file and the offset, and `recover=True` returns every complete block.

Binaries: $ANALYZE_BIN and $GEN_TRACE_BIN, else ${CARGO_TARGET_DIR:-target}/debug/{analyze,
gen-trace} (scripts/test-all.sh builds them and installs the wheel).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import warnings
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gsot

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
ANALYZE = os.environ.get("ANALYZE_BIN", os.path.join(TARGET, "debug", "analyze"))
GEN_TRACE = os.environ.get("GEN_TRACE_BIN", os.path.join(TARGET, "debug", "gen-trace"))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "samples", "*.gsot"))) + sorted(
    glob.glob(os.path.join(ROOT, "samples", "real", "*.gsot")))
CRASHED = os.path.join(ROOT, "samples", "crashed.gsot")
MIXED = os.path.join(ROOT, "samples", "synthetic-mixed.gsot")


def analyze(*args: str, ok=(0,)) -> str:
    p = subprocess.run([ANALYZE, *args], capture_output=True, text=True)
    assert p.returncode in ok, f"analyze {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    for b in (ANALYZE, GEN_TRACE):
        # A missing binary is a failure, not a skip: CI must not pass without testing.
        assert os.access(b, os.X_OK), f"{b} not built (scripts/test-all.sh builds it)"
    return tmp_path_factory.mktemp("gsot")


@pytest.fixture(scope="module")
def generated(tmp):
    path = str(tmp / "generated.gsot")
    subprocess.run([GEN_TRACE, "--seed", "3", "--events", "60000", "--block-events", "8192",
                    "-o", path], check=True, capture_output=True)
    return path


def exported(tmp, files, *args, ok=(0,)) -> pa.Table:
    out = str(tmp / "export.parquet")
    analyze("export", *files, "-o", out, *args, ok=ok)
    return pq.read_table(out)


def plain(t: pa.Table) -> pa.Table:
    """The table without metadata, dictionaries as their values: chunking and dictionary
    layout differ between two writers of the same rows, the rows must not."""
    fields = [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type,
                       f.nullable) for f in t.schema]
    return t.cast(pa.schema(fields)).combine_chunks()


def assert_same(got: pa.Table, want: pa.Table):
    # Exactly the export schema: names, Arrow types (dictionaries, timezone), nullability.
    assert got.schema.remove_metadata() == want.schema.remove_metadata()
    got, want = plain(got), plain(want)
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        assert got.column(name).equals(want.column(name)), name


@pytest.mark.parametrize("path", SAMPLES + ["generated"], ids=os.path.basename)
def test_every_column_equals_export(tmp, generated, path):
    path = generated if path == "generated" else path
    ok = (0, 1) if path == CRASHED else (0,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = gsot.read(path, recover=path == CRASHED)
    assert_same(got, exported(tmp, [path], ok=ok))


def test_several_files_read_as_one_table_like_export(tmp, generated):
    files = [generated, MIXED, os.path.join(ROOT, "samples", "real", "iperf3-tcp-info.gsot")]
    assert_same(gsot.read(files), exported(tmp, files))


def test_filters_are_analyzes(tmp, generated):
    where = 'optname == TCP_INFO && duration > 1us || errno == EINVAL'
    got = gsot.read(generated, where=where, since="1ms", until="-2ms")
    want = exported(tmp, [generated], "--where", where, "--since", "1ms", "--until", "-2ms")
    assert got.num_rows > 0
    assert_same(got, want)


def test_since_takes_a_datetime(tmp, generated):
    info = gsot.info(generated)
    first = datetime.fromisoformat(info["first_event"].replace("Z", "+00:00")[:26] + "+00:00")
    got = gsot.read(generated, since=first.replace(tzinfo=None))
    assert got.num_rows == info["events"]
    later = gsot.read(generated, since=datetime(2100, 1, 1, tzinfo=timezone.utc))
    assert later.num_rows == 0
    assert later.schema == got.schema


def test_info_is_analyze_info_json():
    for path in SAMPLES:
        ok = (0, 1) if path == CRASHED else (0,)
        want = json.loads(analyze("info", "--format", "json", path, ok=ok))
        got = gsot.info(path)
        assert got == want
    assert gsot.info(MIXED)["host_name"]


def test_a_damaged_file_names_file_and_offset():
    with pytest.raises(gsot.TraceError) as e:
        gsot.read(CRASHED)
    msg = str(e.value)
    assert msg.startswith(f"{CRASHED}: damaged: at offset 43794: ")
    assert "recover=True" in msg


def test_recover_returns_every_complete_block(tmp):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = gsot.read(CRASHED, recover=True)
    assert got.num_rows == 2048
    assert any("offset 43718" in str(x.message) for x in w)
    assert_same(got, exported(tmp, [CRASHED], ok=(1,)))


def test_a_corrupt_block_raises_then_is_skipped(tmp):
    bad = str(tmp / "corrupt.gsot")
    shutil.copy(MIXED, bad)
    # Flip a byte in the middle of the file: inside a block, the index stays intact.
    with open(bad, "r+b") as f:
        data = bytearray(f.read())
        at = len(data) // 2
        data[at] ^= 0xFF
        f.seek(0)
        f.write(data)
    with pytest.raises(gsot.TraceError) as e:
        gsot.read(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: the block at offset ")
    assert "checksum" in msg or "expected" in msg
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = gsot.read(bad, recover=True)
    assert len(w) == 1 and str(w[0].message) == msg
    want = exported(tmp, [bad], ok=(1,))
    assert 0 < got.num_rows < 5000
    assert_same(got, want)


def test_bad_arguments():
    with pytest.raises(ValueError, match="where"):
        gsot.read(MIXED, where="duration >")
    with pytest.raises(gsot.TraceError, match="no-such.gsot"):
        gsot.read("no-such.gsot")
    with pytest.raises(ValueError):
        gsot.read([])


def test_columns_are_the_full_tables_in_the_order_named(tmp, generated):
    full = gsot.read(generated)
    for names in (["tcp_info", "ts_ns", "value_text"], ["optname_name", "ret"], ["linger"]):
        got = gsot.read(generated, columns=names)
        assert got.column_names == names
        assert got.schema.remove_metadata() == full.select(names).schema.remove_metadata()
        for n in names:
            assert got.column(n).combine_chunks().equals(full.column(n).combine_chunks()), n
    # The where filter reads its own fields whatever the columns named.
    where = "optname == TCP_INFO"
    got = gsot.read(generated, where=where, columns=["duration_ns"])
    assert got.column("duration_ns") == gsot.read(generated, where=where).column("duration_ns")
    assert got.num_rows > 0


def test_columns_not_in_the_schema_are_refused():
    with pytest.raises(ValueError, match='columns: no column named "rtt_us"'):
        gsot.read(MIXED, columns=["ts_ns", "rtt_us"])
    with pytest.raises(ValueError, match='columns: "ts_ns" named twice'):
        gsot.read(MIXED, columns=["ts_ns", "ts_ns"])
