#!/usr/bin/env bash
# Installs what building and running the recorder needs on a machine of this project's kind
# (Debian, x86_64, root). Idempotent: every step checks first, so a second run takes a second.
# `format` and `analyze` need none of this: stable cargo alone builds them.
#
#   scripts/setup.sh            toolchain for the eBPF object + tracefs mount
#   scripts/setup.sh --no-mount skip mounting tracefs/debugfs (e.g. when not root)
set -euo pipefail

MOUNT=1
for arg in "$@"; do
    case "$arg" in
        --no-mount) MOUNT=0 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "setup: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*"; }

BPF_LINKER_VERSION=0.13.0
export PATH="$HOME/.cargo/bin:$PATH"

# 1. nightly rust-src: the eBPF crate is built with -Z build-std=core for bpfel-unknown-none.
if ! command -v rustup >/dev/null; then
    echo "setup: rustup not found; install rustup with the stable and nightly toolchains first" >&2
    exit 1
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    say "installing the nightly toolchain (minimal profile)"
    rustup toolchain install nightly --profile minimal
fi
SYSROOT=$(rustc +nightly --print sysroot)
if [ -d "$SYSROOT/lib/rustlib/src/rust/library/core" ]; then
    say "nightly rust-src present"
else
    say "adding rust-src to the nightly toolchain"
    rustup component add rust-src --toolchain nightly
fi

# 2. bpf-linker, linked against the nightly rustc's own libLLVM so the bitcode versions match
#    (no Debian LLVM package has the same major version as the nightly's LLVM).
SO=$(ls "$SYSROOT"/lib/libLLVM.so.* 2>/dev/null | head -n1 || true)
if [ -z "$SO" ]; then
    echo "setup: no libLLVM.so.* in $SYSROOT/lib; this nightly does not ship its LLVM as a shared library" >&2
    exit 1
fi
MAJOR=$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
LLVM_DIR="$HOME/.local/share/rustc-llvm"
mkdir -p "$LLVM_DIR/lib"
# Both names: libLLVM.so for the link step, the soname for the loader (bpf-linker's RUNPATH).
ln -sf "$SO" "$LLVM_DIR/lib/libLLVM.so"
ln -sf "$SO" "$LLVM_DIR/lib/$(basename "$SO")"
STAMP="$LLVM_DIR/bpf-linker.built-against"
if command -v bpf-linker >/dev/null \
    && bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION" \
    && [ "$(cat "$STAMP" 2>/dev/null)" = "$(basename "$SO")" ]; then
    say "bpf-linker $BPF_LINKER_VERSION present (LLVM $MAJOR from $(basename "$SO"))"
else
    say "building bpf-linker $BPF_LINKER_VERSION against $(basename "$SO") (about 2 minutes on 2 cores)"
    LLVM_PREFIX="$LLVM_DIR" cargo install bpf-linker --version "$BPF_LINKER_VERSION" --locked \
        --force --no-default-features --features "llvm-$MAJOR"
    basename "$SO" >"$STAMP"
fi

# 3. tracefs: aya reads tracepoint ids from /sys/kernel/tracing/events/...; a fresh machine
#    does not mount it. debugfs too, as older tools look for tracing under it.
if [ "$MOUNT" = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "not root: skipping tracefs/debugfs mounts (the recorder must run as root anyway)"
    else
        if [ -e /sys/kernel/tracing/events ]; then
            say "tracefs mounted at /sys/kernel/tracing"
        else
            say "mounting tracefs at /sys/kernel/tracing"
            mount -t tracefs nodev /sys/kernel/tracing
        fi
        if mountpoint -q /sys/kernel/debug 2>/dev/null; then
            say "debugfs mounted at /sys/kernel/debug"
        elif mount -t debugfs nodev /sys/kernel/debug 2>/dev/null; then
            say "mounted debugfs at /sys/kernel/debug"
        else
            say "debugfs not mountable here (not needed: tracefs is enough)"
        fi
    fi
fi

# 4. RLIMIT_MEMLOCK: kernels >= 5.11 account BPF maps to memcg, so the limit no longer matters
#    there; the recorder raises its own soft limit to the hard limit at start anyway.
say "RLIMIT_MEMLOCK soft limit here: $(ulimit -l) KiB (the recorder raises it itself; on kernels older than 5.11 run 'ulimit -l unlimited' first)"

# 5. Test tools: cargo-fuzz for the fuzz smoke runs, Python packages for the checks written in
#    Python (the spec-only reader of FORMAT.md; the Parquet checks).
CARGO_FUZZ_VERSION=0.13.2
if cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    say "cargo-fuzz $CARGO_FUZZ_VERSION present"
else
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (about a minute)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi
REQS="$(dirname "$0")/requirements-test.txt"
say "Python test packages: $(tr '\n' ' ' < <(grep -v '^#' "$REQS"))"
# pip is quick when everything is already satisfied.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r "$REQS"

# 6. The VM kernel matrix (vmtest/, run by test-all.sh): qemu boots stock Debian kernels under
#    software emulation; busybox-static is the guests' shell; cpio packs their initramfs;
#    zstd/xz/lz4 unpack the kernels' ELF images (booting those skips seconds of emulated
#    decompression). --no-install-recommends keeps qemu's GUI stack out. GNU time: the
#    hostile-file test reads analyze's peak RSS with `/usr/bin/time -f %M`.
VM_PKGS="qemu-system-x86 busybox-static cpio zstd xz-utils lz4 time"
VM_MISSING=""
for p in $VM_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || VM_MISSING="$VM_MISSING $p"
done
if [ -z "$VM_MISSING" ]; then
    say "VM test packages present ($VM_PKGS)"
elif [ "$(id -u)" != 0 ]; then
    say "not root: cannot install the VM test packages:$VM_MISSING"
else
    say "installing the VM test packages:$VM_MISSING"
    # A fresh machine has no package lists yet.
    apt-get install -y -q --no-install-recommends $VM_MISSING >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $VM_MISSING >/dev/null; }
fi

# 7. Docker, for the recorder's container test (a real container, its id and names): dockerd
#    from Debian's docker.io, started in the background where it is not running. The test
#    imports its own one-binary image (no registry is reachable) and runs it with no network.
if [ "$(id -u)" != 0 ]; then
    say "not root: not installing or starting Docker"
else
    if ! command -v dockerd >/dev/null; then
        say "installing docker.io"
        apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends docker.io >/dev/null; }
    fi
    if docker info >/dev/null 2>&1; then
        say "dockerd running"
    else
        say "starting dockerd"
        nohup dockerd >/tmp/gsotrace-dockerd.log 2>&1 &
        for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || say "dockerd did not start: see /tmp/gsotrace-dockerd.log"
    fi
fi

# 8. Java for Apache Spark (the fleet test runs pyspark in local mode; pyspark itself is in
#    requirements-test.txt, and pip keeps its download in its cache).
if command -v java >/dev/null; then
    say "Java present ($(java -version 2>&1 | head -n1))"
elif [ "$(id -u)" != 0 ]; then
    say "not root: cannot install Java (openjdk-17-jre-headless) for the Spark test"
else
    say "installing Java for the Spark test: openjdk-17-jre-headless"
    apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null; }
fi

say "done"
