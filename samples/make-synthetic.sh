#!/usr/bin/env bash
# Regenerates the synthetic sample traces in this folder from fixed seeds. The event streams
# are deterministic; the bytes depend on the writer and the zstd release, so regenerating
# after such a change gives different but equivalent files. The golden tests in
# format/tests/it/samples.rs pin what the committed files decode to.
#
# The first three were written by the format 1.0 writer and synthetic-mixed-1.1.gsot by the
# 1.1 writer; they are kept as they are (rerunning this writes 1.2 files with sockets under the
# same names: do not commit those over them). Later samples get new names.
set -euo pipefail
cd "$(dirname "$0")"
gen() { cargo run -q --release -p gsot-format --features synth --bin gen-trace -- "$@"; }

# A server's worth of mixed traffic, 5 blocks.
gen --seed 1 --events 5000 --block-events 1024 --workload mixed -o synthetic-mixed.gsot
# One thread calling SO_RCVBUF in a loop: the best case for compression.
gen --seed 1 --events 5000 --block-events 2048 --workload loop -o synthetic-loop.gsot
# A recorder killed mid-write: a finished file cut inside its third block, so it has no index,
# no trailer and a torn last block. Readers must recover the first two blocks (2048 events).
gen --seed 2 --events 4000 --block-events 1024 --workload mixed -o crashed.gsot.tmp
third_block=$(cargo run -q --release -p gsot-format --features synth --bin gen-trace -- --print-block-offsets crashed.gsot.tmp | sed -n 3p)
head -c $((third_block + 100)) crashed.gsot.tmp > crashed.gsot
rm crashed.gsot.tmp
# Format 1.1: the same mixed traffic as synthetic-mixed.gsot, with a block summary (BSUM) after
# each block.
gen --seed 1 --events 5000 --block-events 1024 --workload mixed -o synthetic-mixed-1.1.gsot
# Format 1.2: the same mixed traffic again, each event with the identity of its socket (the
# generator's default since 1.2; --no-sockets gives the events of the 1.1 sample).
gen --seed 1 --events 5000 --block-events 1024 --workload mixed -o synthetic-mixed-1.2.gsot
ls -l *.gsot
