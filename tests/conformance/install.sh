#!/usr/bin/env bash
# Builds (or restores from cache) what the Gateway API mesh conformance run
# needs, from source through the Go module proxy:
#   gateway-conformance.test   the upstream suite (sigs.k8s.io/gateway-api/
#                              conformance, version in suite/go.mod), as a
#                              Go test binary
#   server, client             the echo app of its `echo-advanced` image
#                              (Istio's echo; commit in echo/go.mod)
#
#   BIN=$(tests/conformance/install.sh | tail -1)
#
# Cached in ${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/conformance-<stamp>
# over both wrapper modules; progress and build times go to stderr. A cold
# build takes a few minutes on 2 cores; a warm run is instant.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'conformance-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=/dev/null
. "$HERE/../k8s-tools/find-go.sh"

STAMP=$(cat "$HERE"/echo/go.mod "$HERE"/echo/go.sum "$HERE"/suite/go.mod "$HERE"/suite/go.sum |
  sha256sum | cut -c1-16)
DEST=${STRAIT_TOOLS_CACHE:-${HOME:?HOME is not set}/.cache/strait-tools}/conformance-$STAMP
BIN=$DEST/bin
TOOLS=(gateway-conformance.test server client)

cache_ok() {
  [[ ${STRAIT_TOOLS_FORCE:-0} != 1 ]] || return 1
  local t; for t in "${TOOLS[@]}"; do [[ -x $BIN/$t ]] || return 1; done
}
if cache_ok; then printf '%s\n' "$BIN"; exit 0; fi
mkdir -p "$BIN"
exec 9>"$DEST/.lock"; flock 9
if cache_ok; then printf '%s\n' "$BIN"; exit 0; fi

command -v go >/dev/null 2>&1 || die "go not found on PATH"
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly
t0=$(date +%s)
log "building the Gateway API conformance suite (first use; cached afterwards) ..."
(cd "$HERE/suite" && go test -c -trimpath -o "$BIN/gateway-conformance.test.tmp" \
  sigs.k8s.io/gateway-api/conformance) >&2 || die "building the conformance suite failed"
log "building the echo app ..."
(cd "$HERE/echo" && go build -trimpath -ldflags='-s -w' -o "$BIN/tmp/" \
  istio.io/istio/pkg/test/echo/cmd/server istio.io/istio/pkg/test/echo/cmd/client) >&2 ||
  die "building the echo app failed"
mv -f "$BIN/tmp/server" "$BIN/tmp/client" "$BIN/" && rmdir "$BIN/tmp"
mv -f "$BIN/gateway-conformance.test.tmp" "$BIN/gateway-conformance.test"
log "built in $(( $(date +%s) - t0 ))s: $BIN"
printf '%s\n' "$BIN"
