#!/usr/bin/env bash
# Runs every test of the project on a machine of this kind, as root (the recorder's tests load
# eBPF programs into the running kernel). This is the README's test command and what CI runs.
#
#   scripts/test-all.sh            setup, lint, all tests, a short fuzz run
#   FUZZ_SECONDS=0 scripts/test-all.sh   skip the fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "setup (toolchain for the eBPF object, tracefs, test tools)"
bash scripts/setup.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The Python reader's crate is outside the workspace (see python/Cargo.toml).
cargo fmt --manifest-path python/Cargo.toml -- --check
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}" cargo clippy --manifest-path python/Cargo.toml \
    --all-targets --locked -- -D warnings

step "tests (format, recorder on the live kernel, analyze)"
# A live-kernel test that would skip (not root) fails instead: CI cannot pass by skipping.
GSOT_REQUIRE_ROOT=1 GSOT_REQUIRE_DOCKER=1 cargo test --workspace --locked

step "the recorder's live-kernel tests again, every recorder with perf buffers (--buffer perf)"
# The recorder reads --buffer from GSOT_BUFFER; tests that pass --buffer themselves keep theirs.
GSOT_REQUIRE_ROOT=1 GSOT_REQUIRE_DOCKER=1 GSOT_BUFFER=perf cargo test -p recorder --test it --locked

step "an independent reader written from FORMAT.md alone"
# Its container-table test reads a file gen-trace writes.
cargo build --locked -q -p analyze -p gsot-format --features gsot-format/synth --bins
python3 -m unittest discover -s format/tests/python -v

step "analyze export read back by pyarrow, DuckDB, polars and Spark (a fleet dataset)"
python3 -m unittest discover -s analyze/tests/python -v

step "the Python reader (python/): wheel built, installed, held to analyze export"
# Not a workspace member (an extension module is no test binary); it shares the target dir.
WHEELS=$(mktemp -d)
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}" maturin build --locked -q -m python/Cargo.toml -o "$WHEELS"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --force-reinstall --no-deps "$WHEELS"/gsot-*.whl
rm -rf "$WHEELS"
python3 -m pytest python/tests -q

step "the example notebook, executed (examples/tcp-info.ipynb; fails if a cell fails)"
NBOUT=$(mktemp -d)
jupyter nbconvert --to notebook --execute examples/tcp-info.ipynb --output "$NBOUT/tcp-info.ipynb"
rm -rf "$NBOUT"

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    step "fuzz the trace reader for ${FUZZ_SECONDS}s"
    mkdir -p fuzz/corpus/read
    (cd fuzz && cargo +nightly fuzz run read corpus/read seeds/read -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 -print_final_stats=1 2>&1 | tail -n 12)
    step "fuzz analyze's whole decode path (filters, decoders, output) for $((FUZZ_SECONDS / 2))s"
    mkdir -p fuzz/corpus/analyze_decode
    (cd fuzz && cargo +nightly fuzz run analyze_decode corpus/analyze_decode seeds/read -- \
        -max_total_time="$((FUZZ_SECONDS / 2))" -rss_limit_mb=1024 -print_final_stats=1 2>&1 | tail -n 6)
    # The --where parser and the header and process-table decoders, each on its own.
    for target in where_expr header processes; do
        step "fuzz $target for $((FUZZ_SECONDS / 3))s"
        mkdir -p "fuzz/corpus/$target"
        (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" "seeds/${target/_expr/}" -- \
            -max_total_time="$((FUZZ_SECONDS / 3))" -rss_limit_mb=1024 -print_final_stats=1 2>&1 | tail -n 6)
    done
fi
VMTEST=${VMTEST:-1}
if [ "$VMTEST" = 1 ]; then
    # Every attach mode on stock Debian kernels booted under qemu, plus this host's kernel;
    # kernels are cached in /var/cache/gsot-vmtest. The static recorder and analyze exactly
    # as scripts/release.sh builds them (the guests carry no libraries), then the matrix's
    # own binaries, static too. VMTEST=0 skips this step.
    step "attach modes on stock kernels (VM matrix, static binaries)"
    source scripts/static-build.sh
    static_build -p recorder -p analyze
    static_build -p gsot-vmtest
    "$STATIC_DIR/vmtest"
fi
step "all tests passed"
