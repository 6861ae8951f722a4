# Sourced (not run) by scripts/release.sh and scripts/test-all.sh: how a release builds its
# statically linked x86_64 binaries, in one place, so the VM matrix tests the very build that
# ships.
#
#   source scripts/static-build.sh
#   static_build -p recorder -p analyze      # into $STATIC_DIR

STATIC_TRIPLE=x86_64-unknown-linux-gnu
STATIC_DIR=${CARGO_TARGET_DIR:-target}/$STATIC_TRIPLE/release

static_build() {
    # With --target, RUSTFLAGS reach only the target's crates (build scripts and proc macros
    # stay dynamic, as cargo must load them) and the build has its own directory beside
    # target/release.
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --target "$STATIC_TRIPLE" "$@"
}
