#!/usr/bin/env bash
# Builds (or restores from cache) Jaeger, the trace store the span tests and
# the tracing benchmark export to (its OTLP/HTTP receiver and query API):
#
#   JAEGER=$(tests/k8s-tools/jaeger/install.sh | tail -1)
#
# The version comes from go.mod beside this script. The binary lands in
#   ${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/jaeger-<version>/jaeger
# and its path is the last line of stdout; progress goes to stderr. Only Go
# is needed; modules come from the Go module proxy. A cold build takes a few
# minutes on 2 cores (Jaeger links every storage backend); a warm run is
# instant.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'jaeger: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=/dev/null
. "$HERE/../find-go.sh"

VERSION=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' "$HERE/go.mod")
[[ -n $VERSION ]] || die "cannot find the jaeger version in $HERE/go.mod"
DEST=${STRAIT_TOOLS_CACHE:-${HOME:?HOME is not set}/.cache/strait-tools}/jaeger-$VERSION
STAMP=$(cat "$HERE/go.mod" "$HERE/go.sum" | sha256sum | cut -d' ' -f1)

cache_ok() {
  [[ ${STRAIT_TOOLS_FORCE:-0} != 1 && -x $DEST/jaeger && -f $DEST/stamp &&
     $(cat "$DEST/stamp") == "$STAMP" ]]
}
if cache_ok; then printf '%s\n' "$DEST/jaeger"; exit 0; fi
mkdir -p "$DEST"
# Test binaries may ask at once: one builds, the others wait for it.
exec 9>"$DEST/.lock"; flock 9
if cache_ok; then printf '%s\n' "$DEST/jaeger"; exit 0; fi

command -v go >/dev/null 2>&1 || die "go not found on PATH"
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly
t0=$(date +%s)
log "building jaeger $VERSION (first use; cached afterwards) ..."
(cd "$HERE" && go mod download github.com/jaegertracing/jaeger &&
  go build -trimpath -ldflags='-s -w' -o "$DEST/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >&2 ||
  die "building jaeger failed"
mv -f "$DEST/jaeger.tmp" "$DEST/jaeger"
printf '%s\n' "$STAMP" >"$DEST/stamp"
log "built in $(( $(date +%s) - t0 ))s: $DEST/jaeger"
printf '%s\n' "$DEST/jaeger"
