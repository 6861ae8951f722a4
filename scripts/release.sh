#!/usr/bin/env bash
# Builds what a release ships, into target/release-dist/ (git-ignored):
#   gsotrace-VERSION-x86_64-linux.tar.gz  static recorder and analyze, their man pages and
#                                         bash/zsh/fish completions, laid out as a prefix
#                                         (bin/, share/...) to unpack into /usr/local or /opt
#   gsotrace-VERSION-x86_64-linux.tar.gz.sha256   for `sha256sum -c`
#   gsotrace-recorder_VERSION-1_amd64.deb, gsotrace-analyze_VERSION-1_amd64.deb   (cargo-deb)
# Both binaries link glibc statically, so they start on any x86_64 Linux whatever its libc;
# the script fails if either is dynamic, if a package lacks a file, or if a staged binary
# does not run (the recorder's demo is recorded and verified when run as root).
#
#   scripts/release.sh
#
# A release build in a target directory of its own: 16.5 min cold (9 CPU-min; 2 cores shared
# with other builds), 6.5 min when only the workspace's crates changed. Not in test-all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "release: $*"; }
fail() { echo "release: $*" >&2; exit 1; }

source scripts/static-build.sh
TRIPLE=$STATIC_TRIPLE
CARGO_DEB_VERSION=3.8.0
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BUILT=$STATIC_DIR
# Staged as cargo-deb's `target/release/dist/` (the assets in recorder's and analyze's
# Cargo.toml) and tarred as it is.
STAGE=$BUILT/dist
DIST=$TARGET_DIR/release-dist
TOOLS=(recorder analyze)

bash scripts/setup.sh >/dev/null   # the eBPF object's toolchain, as for any recorder build
if ! command -v file >/dev/null; then
    say "installing file (the static check asks it)"
    apt-get install -y -q file >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q file >/dev/null; }
fi

say "building static recorder and analyze for $TRIPLE"
static_build -p recorder -p analyze

static_check() {
    local bin=$1 file_says ldd_says
    file_says=$(file -b "$bin")
    case "$file_says" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) fail "$bin is not statically linked; file says: $file_says" ;;
    esac
    ldd_says=$(ldd "$bin" 2>&1 || true)
    case "$ldd_says" in
        *"not a dynamic executable"* | *"statically linked"*) ;;
        *) fail "$bin is dynamic; ldd says: $ldd_says" ;;
    esac
    say "$bin is static (file: ${file_says%%, BuildID*}; ldd: $(echo $ldd_says))"
}

VERSION=$("$BUILT/recorder" --version | awk '{print $2}')
[ "$("$BUILT/analyze" --version)" = "analyze $VERSION" ] \
    || fail "recorder is $VERSION but $("$BUILT/analyze" --version)"
NAME=gsotrace-$VERSION-x86_64-linux

say "staging $NAME in $STAGE"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/share/doc/gsotrace"
for tool in "${TOOLS[@]}"; do
    # Debug info (profile.release has debug = 1) stays out of what ships; the symbols stay,
    # so a backtrace still names functions.
    objcopy --strip-debug "$BUILT/$tool" "$STAGE/bin/$tool"
    static_check "$STAGE/bin/$tool"
    # The staged binaries write their own docs: that they run is the first check.
    "$STAGE/bin/$tool" generate man --out-dir "$STAGE/share/man/man1" >/dev/null
    "$STAGE/bin/$tool" generate complete-bash \
        --out-dir "$STAGE/share/bash-completion/completions" >/dev/null
    "$STAGE/bin/$tool" generate complete-zsh --out-dir "$STAGE/share/zsh/site-functions" >/dev/null
    "$STAGE/bin/$tool" generate complete-fish \
        --out-dir "$STAGE/share/fish/vendor_completions.d" >/dev/null
    bash -n "$STAGE/share/bash-completion/completions/$tool" \
        || fail "the bash completion of $tool does not parse"
done
# Compressed as Debian ships man pages; man reads them so from /usr/local too.
gzip -9n "$STAGE/share/man/man1/"*.1
cp README.md FORMAT.md "$STAGE/share/doc/gsotrace/"

say "smoke test of the staged binaries"
"$STAGE/bin/analyze" verify samples/synthetic-mixed.gsot >/dev/null
if [ "$(id -u)" = 0 ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$STAGE/bin/recorder" demo -o "$tmp/demo.gsot" >/dev/null 2>"$tmp/demo.err" \
        || fail "the static recorder's demo failed: $(cat "$tmp/demo.err")"
    "$STAGE/bin/analyze" verify "$tmp/demo.gsot" >/dev/null
    say "demo recorded and verified: $(grep -o '[0-9]* events captured, [0-9]* lost' "$tmp/demo.err")"
else
    say "not root: the recorder's demo is not run"
fi

# Reproducible archives: every timestamp is the last commit's. Set only now: the cc crate
# reads it, so during the build it would rebuild zstd and all above it.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
mkdir -p "$DIST"
rm -f "$DIST/$NAME.tar.gz" "$DIST/$NAME.tar.gz.sha256" "$DIST"/gsotrace-*.deb
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    --mode=u+rwX,go+rX,go-w --transform="s,^dist,$NAME," -C "$BUILT" -cf - dist \
    | gzip -9n >"$DIST/$NAME.tar.gz"
(cd "$DIST" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")
listing=$(tar -tzf "$DIST/$NAME.tar.gz")
for tool in "${TOOLS[@]}"; do
    for path in "bin/$tool" "share/man/man1/$tool.1.gz" "share/bash-completion/completions/$tool" \
        "share/zsh/site-functions/_$tool" "share/fish/vendor_completions.d/$tool.fish"; do
        grep -qx "$NAME/$path" <<<"$listing" || fail "$NAME.tar.gz lacks $NAME/$path"
    done
done

if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    say "installing cargo-deb $CARGO_DEB_VERSION (about 2 minutes on 2 cores)"
    cargo install cargo-deb --version "=$CARGO_DEB_VERSION" --locked
fi
for tool in "${TOOLS[@]}"; do
    # --no-strip: the .deb carries the very binary of the tarball, staged above.
    cargo deb -q -p "$tool" --target "$TRIPLE" --no-build --no-strip --output "$DIST/" >/dev/null
    deb=$DIST/gsotrace-${tool}_$VERSION-1_amd64.deb
    [ -f "$deb" ] || fail "cargo deb did not write $deb"
    [ -z "$(dpkg-deb --field "$deb" Depends)" ] || fail "$deb depends on something"
    # Installed by dpkg itself into a scratch root: the files land where they should.
    root=$(mktemp -d)
    mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
    touch "$root/var/lib/dpkg/status"
    dpkg --root="$root" --log=/dev/null -i "$deb" >/dev/null
    for path in "usr/bin/$tool" "usr/share/man/man1/$tool.1.gz" \
        "usr/share/bash-completion/completions/$tool" "usr/share/zsh/vendor-completions/_$tool" \
        "usr/share/fish/vendor_completions.d/$tool.fish"; do
        [ -f "$root/$path" ] || fail "$deb does not install /$path"
    done
    cmp -s "$root/usr/bin/$tool" "$STAGE/bin/$tool" || fail "$deb's $tool is not the tarball's"
    [ "$("$root/usr/bin/$tool" --version)" = "$tool $VERSION" ] || fail "$deb's $tool does not run"
    rm -rf "$root"
done

say "done:"
(cd "$DIST" && sha256sum -c "$NAME.tar.gz.sha256" >/dev/null && ls -l "$NAME.tar.gz"* gsotrace-*.deb)
