#!/usr/bin/env bash
# analyze vs DuckDB on the same events, measured in one run.
#
#   bench/analyze-vs-duckdb.sh [EVENTS]      (default 100000000)
#
# Installs: the `duckdb` Python package from PyPI (pip install duckdb), if missing.
# Generates, once, under .cache/bench-analyze/ (gitignored):
#   big-N-<writer defaults>.gsot  gen-trace --seed 1 --events N (the format crate's
#                  deterministic generator)
#   big-N.parquet  the same events, written by DuckDB (zstd) from `analyze events --format csv`.
#                  DuckDB's own writer, so its side is not slowed by another tool's file layout
#                  (bench/export-vs-duckdb.sh compares the writers); the columns are the scalar fields
#                  the two questions need plus the usual ids and the socket columns (format 1.2;
#                  value bytes are left out: neither question reads them, and DuckDB reads only
#                  the columns a query names).
# Then asks both tools, each with 2 threads, the same two questions:
#   Q1  per (comm, option): count, errors, p50/p90/p99 and max latency     (stats --by comm,optname)
#   Q2  a filtered count: comm == nginx && TCP_INFO && duration > 1us || errno == EINVAL
# and reports wall time and peak RSS (/usr/bin/time -v) of each, and checks the answers agree.
# DuckDB runs Q1 twice: exact quantiles (quantile_disc) and approximate (approx_quantile);
# analyze's percentiles are within 0.4% (see `analyze stats --help`).
set -euo pipefail

N=${1:-100000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.cache/bench-analyze"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-analyze}"
mkdir -p "$DIR"
cd "$ROOT"

source bench/lib.sh
bench_build
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb

bench_trace "$N" "$DIR"
PARQUET="$DIR/big-$N-sockets-containers.parquet"
if [ ! -f "$PARQUET" ]; then
    echo "converting to $PARQUET (once) ..."
    "$A" events "$TRACE" --format csv --fields ts_ns,duration_ns,pid,tid,uid,comm,fd,level,optname,ret,sock_family,sock_type,tcp_state,local_addr,local_port,remote_addr,remote_port,sock_ino,netns,container_runtime,container_id,container_name,image,pod_uid,pod_name,pod_namespace,k8s_container,qos_class,systemd_unit |
        python3 -c "
import duckdb
con = duckdb.connect()
con.sql('SET threads=2')
con.sql('SET enable_progress_bar=false')
con.sql('''COPY (SELECT * FROM read_csv('/dev/stdin', header=true, columns={
    'ts_ns':'UBIGINT','duration_ns':'UBIGINT','pid':'UINTEGER','tid':'UINTEGER','uid':'UINTEGER',
    'comm':'VARCHAR','fd':'INTEGER','level':'INTEGER','optname':'INTEGER','ret':'INTEGER',
    'sock_family':'VARCHAR','sock_type':'VARCHAR','tcp_state':'VARCHAR','local_addr':'VARCHAR',
    'local_port':'USMALLINT','remote_addr':'VARCHAR','remote_port':'USMALLINT',
    'sock_ino':'UBIGINT','netns':'UINTEGER','container_runtime':'VARCHAR',
    'container_id':'VARCHAR','container_name':'VARCHAR','image':'VARCHAR','pod_uid':'VARCHAR',
    'pod_name':'VARCHAR','pod_namespace':'VARCHAR','k8s_container':'VARCHAR',
    'qos_class':'VARCHAR','systemd_unit':'VARCHAR'}))
    TO '$PARQUET.tmp' (FORMAT parquet, COMPRESSION zstd)''')
" && mv "$PARQUET.tmp" "$PARQUET"
fi

WHERE_A='comm == "nginx" && optname == TCP_INFO && duration > 1us || errno == EINVAL'
WHERE_D="(comm = 'nginx' AND level = 6 AND optname = 11 AND duration_ns > 1000) OR ret = -22"
Q1_EXACT="SELECT comm, level, optname, count(*) AS n, count(*) FILTER (WHERE ret < 0) AS errors,
  quantile_disc(duration_ns, [0.5, 0.9, 0.99]) AS q, max(duration_ns) AS mx
  FROM '$PARQUET' GROUP BY ALL ORDER BY n DESC"
Q1_APPROX="SELECT comm, level, optname, count(*) AS n, count(*) FILTER (WHERE ret < 0) AS errors,
  approx_quantile(duration_ns, [0.5, 0.9, 0.99]) AS q, max(duration_ns) AS mx
  FROM '$PARQUET' GROUP BY ALL ORDER BY n DESC"
Q2="SELECT count(*) FROM '$PARQUET' WHERE $WHERE_D"

OUT="$DIR/out"
mkdir -p "$OUT"
# Page cache warm for both: each tool's input read once before timing.
cat "$TRACE" "$PARQUET" >/dev/null

measure() { # name, command...
    time_run "$@"
    printf '%-28s wall %8s  peak RSS %7s MiB\n' "$1" "$WALL" "$RSS_MIB"
}

duck() { # query -> csv on stdout
    python3 -c "
import duckdb, sys
con = duckdb.connect()
con.sql('SET threads=2')
con.sql('SET enable_progress_bar=false')
for row in con.sql(sys.argv[1]).fetchall():
    print(','.join(str(x) for x in row))
" "$1"
}
export -f duck

echo "events: $N; trace $(du -h "$TRACE" | cut -f1), parquet $(du -h "$PARQUET" | cut -f1); 2 threads each"
measure "analyze Q1 stats" "$A" --threads 2 stats "$TRACE" --by comm,optname --format csv
measure "duckdb  Q1 exact quantiles" bash -c "duck \"$Q1_EXACT\""
measure "duckdb  Q1 approx quantiles" bash -c "duck \"$Q1_APPROX\""
measure "analyze Q2 filtered count" "$A" --threads 2 stats "$TRACE" --by '' --where "$WHERE_A" --format csv
measure "duckdb  Q2 filtered count" bash -c "duck \"$Q2\""

# The answers must agree: counts, errors and max exactly, percentiles within 0.4% of exact.
python3 - "$OUT" <<'EOF'
import csv, sys
out = sys.argv[1]
a = {}
for r in csv.DictReader(open(f"{out}/analyze Q1 stats.out")):
    a[(r["comm"], r["optname"])] = r
d = {}
import ast
for line in open(f"{out}/duckdb  Q1 exact quantiles.out"):
    comm, level, opt, rest = line.split(",", 3)
    n, errors, rest = rest.split(",", 2)
    q, mx = rest.rsplit(",", 1)
    d[(comm, int(level), int(opt))] = (int(n), int(errors), ast.literal_eval(q), int(mx))
assert len(a) == len(d), (len(a), len(d))
tot_a = sum(int(r["count"]) for r in a.values())
tot_d = sum(v[0] for v in d.values())
assert tot_a == tot_d, (tot_a, tot_d)
counts_a = sorted((int(r["count"]), int(r["errors"]), int(r["max_ns"])) for r in a.values())
counts_d = sorted((v[0], v[1], v[3]) for v in d.values())
assert counts_a == counts_d, "count/errors/max differ"
worst = 0.0
compared = 0
by_count = {}
for r in a.values():
    by_count.setdefault((int(r["count"]), int(r["errors"]), int(r["max_ns"])), []).append(r)
# Groups are matched by (count, errors, max); percentiles are compared where that is unique.
for v in d.values():
    rows = by_count[(v[0], v[1], v[3])]
    if len(rows) != 1:
        continue
    compared += 1
    r = rows[0]
    for got, exact in zip((int(r["p50_ns"]), int(r["p90_ns"]), int(r["p99_ns"])), v[2]):
        worst = max(worst, abs(got - exact) / max(exact, 1))
assert worst <= 0.004, worst
print(f"Q1 agree: {len(a)} groups, {tot_a} events; counts, errors, max identical; percentiles of {compared} groups within {worst*100:.2f}% of exact")
qa = open(f"{out}/analyze Q2 filtered count.out").read().splitlines()[1].split(",")[0]
qd = open(f"{out}/duckdb  Q2 filtered count.out").read().strip()
assert qa == qd, (qa, qd)
print(f"Q2 agree: {qa} events")
EOF
