#!/usr/bin/env bash
# Builds the cluster's container images and writes them as docker-archive
# tarballs that `ctr images import` loads (tests/cluster/up.sh does):
#
#   docker.io/strait/strait-proxy:<version>       } from the repository's Dockerfile,
#   docker.io/strait/strait-controller:<version>  } targets proxy, controller and
#   docker.io/strait/strait-testapp:<version>     } testapp (the Helm chart's defaults)
#   registry.k8s.io/pause:3.10                    the pod sandbox (tests/cluster/pause)
#   strait.test/coredns:<coredns version>         the cluster DNS (tests/k8s-tools/coredns)
#
#   DIR=$(tests/cluster/images.sh | tail -1)     # the directory with the tarballs
#
# No Docker daemon: Debian's buildah builds straight from the Dockerfiles
# (vfs storage, chroot isolation, in a throw-away root). No registry is
# reachable here, so the Strait binaries are compiled on the host and the
# Dockerfile's `prebuilt` stage takes them (`--build-arg BINARIES=prebuilt`);
# the final stages are the ones users build.
#
# Which build goes in (STRAIT_IMAGE_PROFILE):
#   release (default)  the plain release profile, glibc static: what CI builds
#                      (in a target dir kept in the tools cache, so a fresh
#                      checkout rebuilds only what changed)
#   dist               the shipped build: scripts/build-dist.sh (profile
#                      `dist`, static, profile-guided), the binary bench/run.sh
#                      measures, and profile `dist` for the others
# Tarballs are cached by content in ${STRAIT_TOOLS_CACHE:-~/.cache/strait-tools}/images.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v buildah >/dev/null || {
  log "installing buildah"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah; } >&2 ||
    die "cannot install buildah"
}

PROFILE=${STRAIT_IMAGE_PROFILE:-release}
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
HOST=$(rustc -vV | sed -n 's/^host: //p')
CACHE=${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/images
mkdir -p "$CACHE"
TOOLS_BIN=$("$HERE/install.sh" | tail -1)

CTX=$(mktemp -d /tmp/strait-images.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
OUT=$CTX/target/image
mkdir -p "$OUT"

# --- binaries ----------------------------------------------------------------
t0=$(date +%s)
case $PROFILE in
  release)
    # A target dir of its own in the tools cache: a fresh checkout (CI)
    # then rebuilds only what changed instead of every crate.
    T=${STRAIT_IMAGE_TARGET_DIR:-${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/image-target}
    log "building strait-proxy, strait-controller, strait-testapp (release, static, target dir $T)"
    (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" CARGO_TARGET_DIR=$T \
      cargo build --locked --release --target "$HOST" \
        -p strait-proxy -p strait-control-plane -p strait-testapp >&2)
    for b in strait-proxy strait-controller strait-testapp; do
      cp "$T/$HOST/release/$b" "$OUT/"
    done ;;
  dist)
    log "building the shipped strait-proxy (scripts/build-dist.sh) and the others (dist, static)"
    cp "$("$ROOT/scripts/build-dist.sh" | tail -1)" "$OUT/"
    (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
      cargo build --locked --profile dist --target "$HOST" -p strait-control-plane -p strait-testapp >&2)
    for b in strait-controller strait-testapp; do
      cp "${CARGO_TARGET_DIR:-$ROOT/target}/$HOST/dist/$b" "$OUT/"
    done ;;
  *) die "STRAIT_IMAGE_PROFILE must be release or dist, not $PROFILE" ;;
esac
cp /etc/ssl/certs/ca-certificates.crt "$OUT/" 2>/dev/null || die "no /etc/ssl/certs/ca-certificates.crt (install ca-certificates)"
command -v xtables-nft-multi >/dev/null || [[ -x /usr/sbin/xtables-nft-multi ]] || {
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables; } >&2 || die "cannot install iptables"
}
"$ROOT/scripts/iptables-rootfs.sh" "$OUT/iptables"
log "binaries ready in $(( $(date +%s) - t0 ))s"
for b in "$OUT"/strait-*; do
  file "$b" 2>/dev/null | grep -q 'dynamically linked' && die "$b is dynamically linked"
done

(cd "$HERE/pause" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o "$CTX/pause" .) >&2 ||
  die "building pause failed"
cp "$TOOLS_BIN/coredns" "$CTX/coredns"

# --- images ------------------------------------------------------------------
B=(buildah --storage-driver vfs --root "$CTX/storage" --runroot "$CTX/run")
build() { # build <name:tag> <tarball> <buildah bud args...>
  local name=$1 tar=$2; shift 2
  if [[ -s $CACHE/$tar ]]; then log "cached: $name"; return; fi
  log "buildah: $name"
  "${B[@]}" bud --isolation chroot --layers=false -t "$name" "$@" >"$CTX/bud.log" 2>&1 ||
    { tail -n 30 "$CTX/bud.log" >&2; die "buildah bud $name failed"; }
  rm -f "$CACHE/$tar.tmp"
  "${B[@]}" push "$name" "docker-archive:$CACHE/$tar.tmp:$name" >"$CTX/push.log" 2>&1 ||
    { tail -n 30 "$CTX/push.log" >&2; die "buildah push $name failed"; }
  mv -f "$CACHE/$tar.tmp" "$CACHE/$tar"
}
sum() { cat "$@" | sha256sum | cut -c1-16; }

# Strait's images, from the repository's Dockerfile (the context holds only
# the prebuilt binaries: the `build` stage is skipped).
for t in proxy controller testapp; do
  bin=$OUT/strait-$t; [[ $t == controller ]] && bin=$OUT/strait-controller
  key=$(sum "$ROOT/Dockerfile" "$bin" "$OUT/ca-certificates.crt" $([[ $t == proxy ]] && find "$OUT/iptables" -type f | sort))
  build "docker.io/strait/strait-$t:$VERSION" "strait-$t-$key.tar" \
    -f "$ROOT/Dockerfile" --target "$t" --build-arg BINARIES=prebuilt "$CTX"
  ln -sf "strait-$t-$key.tar" "$CACHE/current-strait-$t.tar"
done

printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$CTX/Dockerfile.pause"
key=$(sum "$CTX/Dockerfile.pause" "$CTX/pause")
build registry.k8s.io/pause:3.10 "pause-$key.tar" -f "$CTX/Dockerfile.pause" "$CTX"
ln -sf "pause-$key.tar" "$CACHE/current-pause.tar"

COREDNS_VERSION=$("$TOOLS_BIN/coredns" -version 2>/dev/null | sed -n 's/^CoreDNS-\([0-9.]*\).*/v\1/p' | head -1)
printf 'FROM scratch\nCOPY coredns /coredns\nUSER 65532:65532\nENTRYPOINT ["/coredns"]\n' >"$CTX/Dockerfile.coredns"
key=$(sum "$CTX/Dockerfile.coredns" "$CTX/coredns")
build "strait.test/coredns:${COREDNS_VERSION:-dev}" "coredns-$key.tar" -f "$CTX/Dockerfile.coredns" "$CTX"
ln -sf "coredns-$key.tar" "$CACHE/current-coredns.tar"

# Tarballs of earlier builds, which no current-* link names, go.
keep=$(for l in "$CACHE"/current-*.tar; do readlink "$l"; done)
for f in "$CACHE"/*.tar; do
  [[ -L $f ]] && continue
  grep -qxF "$(basename "$f")" <<<"$keep" || rm -f "$f"
done
printf '%s\n' "$CACHE"
