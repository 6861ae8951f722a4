# Sourced by the bench scripts: the one release build of analyze and gen-trace they time, and
# the one way they time a command. Needs CARGO_TARGET_DIR and OUT set by the script.

# Builds analyze and gen-trace; sets A and GEN to them.
bench_build() {
    cargo build --release -q -p analyze -p gsot-format --features gsot-format/synth \
        --bin analyze --bin gen-trace
    A="$CARGO_TARGET_DIR/release/analyze"
    GEN="$CARGO_TARGET_DIR/release/gen-trace"
}

# Runs a command under GNU time -v, its stdout into $OUT/NAME.out; sets WALL (as time prints
# it) and RSS_MIB (peak resident set, MiB).
time_run() { # name, command...
    local name=$1
    shift
    /usr/bin/time -v "$@" >"$OUT/$name.out" 2>"$OUT/$name.time"
    WALL=$(grep 'Elapsed (wall clock)' "$OUT/$name.time" | awk '{print $NF}')
    RSS_MIB=$(grep 'Maximum resident' "$OUT/$name.time" | awk '{printf "%.1f", $NF / 1024}')
}
