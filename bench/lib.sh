# Sourced by the bench scripts: the one release build of analyze and gen-trace they time, the
# one generated trace they read, and the one way they time a command. Needs CARGO_TARGET_DIR and OUT set by the script.

# Builds analyze and gen-trace; sets A and GEN to them.
bench_build() {
    cargo build --release -q -p analyze -p gsot-format --features gsot-format/synth \
        --bin analyze --bin gen-trace
    A="$CARGO_TARGET_DIR/release/analyze"
    GEN="$CARGO_TARGET_DIR/release/gen-trace"
}

# Runs a command under GNU time -v, its stdout into $OUT/NAME.out; sets WALL (as time prints
# it), CPU (user + system seconds: steadier than wall time on a shared machine) and RSS_MIB
# (peak resident set, MiB).
time_run() { # name, command...
    local name=$1
    shift
    /usr/bin/time -v "$@" >"$OUT/$name.out" 2>"$OUT/$name.time"
    WALL=$(grep 'Elapsed (wall clock)' "$OUT/$name.time" | awk '{print $NF}')
    CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f s", s}' "$OUT/$name.time")
    RSS_MIB=$(grep 'Maximum resident' "$OUT/$name.time" | awk '{printf "%.1f", $NF / 1024}')
}

# The generator's trace of N events under DIR, made once (gen-trace --seed 1); sets TRACE. Its
# name is keyed by what changes the bytes: format 1.2 with sockets (the generator's default),
# 1.1 block summaries, the writer's default zstd parameters (fast_compression) and block size,
# so a cached file of older defaults is not reused.
bench_trace() { # events, dir
    TRACE="$2/big-$1-f1.2-sockets-fastz-rawsum-b128k.gsot"
    if [ ! -f "$TRACE" ]; then
        echo "generating $TRACE ..."
        "$GEN" --seed 1 --events "$1" -o "$TRACE.tmp" && mv "$TRACE.tmp" "$TRACE"
    fi
}
