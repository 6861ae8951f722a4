#!/usr/bin/env bash
# The main job on a fresh machine, as root: set up, build, record the built-in demo workload
# on the live kernel, and show what the analysis makes of it.
#
#   scripts/demo.sh [OUTPUT.gsot]      (default: demo.gsot in the current directory)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$PWD/demo.gsot}"
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n== %s\n' "$*"; }

step "setup"
bash "$repo/scripts/setup.sh"

step "build (release)"
cargo build --release --locked --manifest-path "$repo/Cargo.toml" -p recorder -p analyze
bin="$repo/target/release"

step "record the demo workload (TCP, UDP, IPv6, Unix sockets; some calls fail on purpose)"
"$bin/recorder" demo -o "$out"

step "analyze info $out"
"$bin/analyze" info "$out"

step "analyze events $out (strace style)"
"$bin/analyze" events "$out"

step "analyze stats $out --by comm,optname"
"$bin/analyze" stats "$out" --by comm,optname
