#!/usr/bin/env bash
# The Python reader vs Parquet: a trace into a pyarrow.Table, measured in one run.
#
#   bench/gsot-read-vs-pyarrow.sh [EVENTS]      (default 30000000)
#
# Builds (release, in $CARGO_TARGET_DIR, default target-analyze/ like the other benches) analyze,
# gen-trace and the gsot wheel, and installs the wheel under .cache/bench-analyze/py. Uses the
# trace of bench/analyze-vs-duckdb.sh EVENTS (generated once under .cache/bench-analyze/ if missing) and
# writes its `analyze export` anew each run (the columns change as the export grows; its time is
# reported too). Then, each in its own Python process, one run each, page cache warm:
#   gsot       gsot.read(TRACE)                      the trace straight into a pyarrow.Table
#   parquet    pyarrow.parquet.read_table(EXPORT)    the same rows from the export
# and reports wall time, CPU time and peak RSS (/usr/bin/time -v) of each, and checks both
# tables have the same rows and schema.
set -euo pipefail

N=${1:-30000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.cache/bench-analyze"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-analyze}"
mkdir -p "$DIR"
cd "$ROOT"

source bench/lib.sh
bench_build
WHEELS=$(mktemp -d)
maturin build --release --locked -q -m python/Cargo.toml -o "$WHEELS"
# Into a directory of its own, not site-packages: other worktrees' tests import their gsot.
rm -rf "$DIR/py"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --target "$DIR/py" "$WHEELS"/gsot-*.whl
rm -rf "$WHEELS"

bench_trace "$N" "$DIR"
EXPORT="$DIR/gsot-read-$N.parquet"
OUT="$DIR/out"
mkdir -p "$OUT"

measure() { # name, command...
    time_run "$@"
    printf '%-8s %10s wall  %8s CPU  %6s MiB peak RSS  %s\n' "$1" "$WALL" "$CPU" "$RSS_MIB" \
        "$(tr '\n' ' ' <"$OUT/$1.out")"
}

echo "exporting $TRACE ($N events) ..."
measure export "$A" export "$TRACE" -o "$EXPORT" --no-progress
ls -l "$TRACE" "$EXPORT" | awk '{print $5, $NF}'
# Page cache warm for both.
cat "$TRACE" "$EXPORT" >/dev/null

# Prints: rows, schema digest (the two must agree), then the table's bytes.
SHAPE='import hashlib; s = str(t.schema.remove_metadata()).encode()
print("rows", t.num_rows, "schema", hashlib.sha256(s).hexdigest()[:12]); print("bytes", t.nbytes)'
measure gsot env PYTHONPATH="$DIR/py" python3 -c "import sys, gsot; t = gsot.read(sys.argv[1])
$SHAPE" "$TRACE"
measure parquet python3 -c "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1])
$SHAPE" "$EXPORT"
if [ "$(head -n1 "$OUT/gsot.out")" != "$(head -n1 "$OUT/parquet.out")" ]; then
    echo "the two tables differ: gsot $(head -n1 "$OUT/gsot.out"), parquet $(head -n1 "$OUT/parquet.out")" >&2
    exit 1
fi
echo "same rows and schema: $(head -n1 "$OUT/gsot.out")"
