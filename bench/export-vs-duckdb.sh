#!/usr/bin/env bash
# analyze export vs DuckDB writing the same rows as zstd Parquet, measured in one run.
#
#   bench/export-vs-duckdb.sh [EVENTS]      (default 100000000)
#
# Generates once, under .cache/bench-export/ (gitignored), big-N.gsot with the format crate's
# deterministic generator (gen-trace --seed 1). Then, page cache warm for every input:
#   1. analyze export big-N.gsot -> analyze.parquet          (zstd level 1, the default)
#   2. DuckDB, 2 threads, rewriting analyze.parquet -> zstd Parquet: the same rows and columns,
#      from a columnar input that needs no decoding of ours; once with DuckDB's default zstd
#      level and once with level 1 like analyze.
# Reports wall time and peak RSS (/usr/bin/time -v) of each, the output sizes, and checks
# that all three files hold the same number of rows and the same sum of durations.
set -euo pipefail

N=${1:-100000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.cache/bench-export"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-export}"
mkdir -p "$DIR/out"
cd "$ROOT"

source bench/lib.sh
bench_build
python3 -c 'import duckdb' 2>/dev/null ||
    python3 -m pip install -q --root-user-action=ignore -r scripts/requirements-test.txt

bench_trace "$N" "$DIR"
OUT="$DIR/out"
rm -f "$OUT"/*.parquet

cat >"$OUT/rewrite.py" <<'EOF'
import sys, duckdb
src, dst, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute("SET threads = 2")
opts = "FORMAT parquet, COMPRESSION zstd" + (f", COMPRESSION_LEVEL {level}" if level else "")
con.execute(f"COPY (SELECT * FROM read_parquet('{src}')) TO '{dst}' ({opts})")
EOF

measure() { # name, command...
    time_run "$@"
    printf '%-34s wall %9s  peak RSS %8s MiB\n' "$1" "$WALL" "$RSS_MIB"
}

echo "events: $N ($(du -h "$TRACE" | cut -f1) trace), $(nproc) CPUs"
cat "$TRACE" >/dev/null
measure analyze-export "$A" export "$TRACE" -o "$OUT/analyze.parquet" --no-progress
cat "$OUT/analyze.parquet" >/dev/null
measure duckdb-rewrite-default-level python3 "$OUT/rewrite.py" "$OUT/analyze.parquet" "$OUT/duckdb.parquet" 0
measure duckdb-rewrite-level-1 python3 "$OUT/rewrite.py" "$OUT/analyze.parquet" "$OUT/duckdb-l1.parquet" 1

python3 - "$OUT" <<'EOF'
import os, sys, duckdb
out = sys.argv[1]
rows = {}
for f in ("analyze.parquet", "duckdb.parquet", "duckdb-l1.parquet"):
    p = os.path.join(out, f)
    n, s = duckdb.connect().execute(
        f"SELECT count(*), sum(duration_ns) FROM read_parquet('{p}')").fetchone()
    rows[f] = (n, s)
    print(f"{f:<20} {os.path.getsize(p) / 2**20:9.1f} MiB  {n} rows")
assert len(set(rows.values())) == 1, f"the files differ: {rows}"
print("same rows and duration sum in all three files")
EOF
