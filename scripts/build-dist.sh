#!/usr/bin/env bash
# Builds strait-proxy as it ships and prints the binary's path.
#
#   scripts/build-dist.sh          build, then print the path
#   scripts/build-dist.sh --path   print the path only
#   STRAIT_PGO=0 scripts/build-dist.sh   the same without the profile step
#
# What ships:
# - `profile.dist`: fat LTO, one codegen unit, start-up-only crates
#   optimised for size (Cargo.toml).
# - relative relocations packed (DT_RELR; see STATIC below).
# - glibc linked statically (`-C target-feature=+crt-static`, a static-pie
#   binary): no libc, libm, libgcc_s or dynamic loader in the process, no
#   symbol resolution at start, ~1.2 MB less RSS per proxy, the same
#   request-path speed. Name resolution (the control plane's address) still
#   works: glibc's files and DNS lookups are built into libc itself.
# - profile-guided optimisation: an instrumented build is run through
#   scripts/pgo-train.sh (plain, routed and HTTP/2 traffic through nginx on
#   loopback, and a pair of proxies over mesh TLS with certificates from
#   the release strait-controller, built here), and the final build is optimised with that profile, all
#   dependencies included. +11-13 % HTTP/1.1 req/s in A/B rounds
#   (docs/benchmarks.md). It needs `llvm-profdata` of rustc's LLVM version
#   (Debian package `llvm-N`, installed here if missing) and nginx, wrk,
#   h2load and curl for the training run.
#
# `--target` is given explicitly so the flags apply to the proxy and its
# dependencies only, not to build scripts and proc-macros.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/$HOST/dist/strait-proxy"
if [ "${1:-}" = --path ]; then
    echo "$BIN"
    exit 0
fi
log() { echo "build-dist: $*" >&2; }
# Relative relocations packed (DT_RELR, glibc 2.36+, binutils 2.38+): the
# static-pie's ~17,000 R_X86_64_RELATIVE entries (409 KiB that start-up
# reads once, and that then stay mapped in every proxy's RSS) become a few
# KiB of bitmaps. Still position-independent, ASLR unchanged.
STATIC="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs"
build() { # extra RUSTFLAGS, target dir
    (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} $STATIC $1" CARGO_TARGET_DIR="$2" \
        cargo build --profile dist --target "$HOST" -p strait-proxy >&2)
}

if [ "${STRAIT_PGO:-1}" = 0 ]; then
    build "" "$TARGET_DIR"
    echo "$BIN"
    exit 0
fi

LLVM_MAJOR="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
find_profdata() {
    local c
    for c in "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata" \
        "/usr/lib/llvm-$LLVM_MAJOR/bin/llvm-profdata" "$(command -v "llvm-profdata-$LLVM_MAJOR" || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }
    done
}
pkgs=()
[ -n "$(find_profdata)" ] || pkgs+=("llvm-$LLVM_MAJOR")
command -v nginx >/dev/null || pkgs+=(nginx-light)
command -v wrk >/dev/null || pkgs+=(wrk)
command -v h2load >/dev/null || pkgs+=(nghttp2-client)
command -v curl >/dev/null || pkgs+=(curl)
command -v ss >/dev/null || pkgs+=(iproute2)
if ((${#pkgs[@]})); then
    log "installing ${pkgs[*]} (for the profile step; STRAIT_PGO=0 skips it)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; } \
        || { log "cannot install ${pkgs[*]}; STRAIT_PGO=0 builds without the profile"; exit 1; }
fi
PROFDATA="$(find_profdata)"
[ -n "$PROFDATA" ] || { log "no llvm-profdata for LLVM $LLVM_MAJOR; STRAIT_PGO=0 builds without the profile"; exit 1; }

PROFILES="$TARGET_DIR/pgo-profiles"
rm -rf "$PROFILES"
mkdir -p "$PROFILES"
log "1/3 instrumented build (target dir $TARGET_DIR/pgo-generate)"
build "-Cprofile-generate=$PROFILES" "$TARGET_DIR/pgo-generate"
# The training's mTLS pair takes its certificates from a controller: the
# everyday release build (not measured, not profiled).
log "2/3 training run (scripts/pgo-train.sh), with the release strait-controller"
(cd "$ROOT" && cargo build -q --release --locked -p strait-control-plane --bin strait-controller >&2)
"$ROOT/scripts/pgo-train.sh" "$TARGET_DIR/pgo-generate/$HOST/dist/strait-proxy" "$PROFILES" \
    "$TARGET_DIR/release/strait-controller"
"$PROFDATA" merge -o "$PROFILES/merged.profdata" "$PROFILES"/*.profraw
# The profile's hash is in its path, so a new profile changes RUSTFLAGS and
# cargo rebuilds everything with it instead of keeping stale objects.
SUM="$(sha256sum "$PROFILES/merged.profdata" | cut -c1-16)"
PROFILE="$TARGET_DIR/pgo-$SUM.profdata"
rm -f "$TARGET_DIR"/pgo-*.profdata
cp "$PROFILES/merged.profdata" "$PROFILE"
log "3/3 optimised build with $PROFILE"
build "-Cprofile-use=$PROFILE" "$TARGET_DIR"
echo "$BIN"
