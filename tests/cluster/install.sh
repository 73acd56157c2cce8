#!/usr/bin/env bash
# Builds (or restores from cache) the node's parts of the test cluster:
#   kubelet, kube-controller-manager, kube-scheduler, kube-proxy
#     from the same pinned k8s.io/kubernetes release as kube-apiserver
#     (tests/k8s-tools/go.mod lists them as tools);
#   coredns from tests/k8s-tools/coredns (a main with the plugins we use).
# The control-plane half (kube-apiserver, etcd, helm) comes from
# tests/k8s-tools/install.sh; this script runs it too and puts every binary
# in one bin dir:
#
#   BIN=$(tests/cluster/install.sh | tail -1)
#
# Cached in ${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/node-<k8s>-<coredns>/bin,
# keyed by a stamp over the wrapper go.mod/go.sum files; a warm run costs
# well under a second. Progress and build times go to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$(cd "$HERE/../k8s-tools" && pwd)

log() { printf 'cluster-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=/dev/null
. "$TOOLS/find-go.sh"

CP_BIN=$("$TOOLS/install.sh" | tail -1)

modver() { awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }
                         $1 == "require" && $2 == m { print $3; exit }' "$1"; }
K8S_VERSION=$(modver "$TOOLS/go.mod" k8s.io/kubernetes)
COREDNS_VERSION=$(modver "$TOOLS/coredns/go.mod" github.com/coredns/coredns)
[[ -n $K8S_VERSION && -n $COREDNS_VERSION ]] || die "cannot read versions"

CACHE_ROOT=${STRAIT_TOOLS_CACHE:-${HOME:?HOME is not set}/.cache/strait-tools}
DEST=$CACHE_ROOT/node-$K8S_VERSION-$COREDNS_VERSION
BIN=$DEST/bin
NODE_TOOLS=(kubelet kube-controller-manager kube-scheduler kube-proxy coredns)

STAMP=$({ echo flags=1; cat "$TOOLS/go.mod" "$TOOLS/go.sum" \
  "$TOOLS/coredns/go.mod" "$TOOLS/coredns/go.sum" "$TOOLS/coredns/main.go"; } |
  sha256sum | cut -d' ' -f1)

cache_ok() {
  [[ ${STRAIT_TOOLS_FORCE:-0} != 1 && -f $DEST/stamp && $(cat "$DEST/stamp") == "$STAMP" ]] || return 1
  local t; for t in "${NODE_TOOLS[@]}"; do [[ -x $BIN/$t ]] || return 1; done
}
link_cp() { # the control-plane tools beside the node tools: one bin dir for everything
  local t; for t in kube-apiserver etcd helm; do ln -sf "$CP_BIN/$t" "$BIN/$t"; done
}

if cache_ok; then
  link_cp; log "cache hit: $BIN"; printf '%s\n' "$BIN"; exit 0
fi
mkdir -p "$BIN"
exec 9>"$DEST/.lock"; flock 9
if cache_ok; then link_cp; printf '%s\n' "$BIN"; exit 0; fi
rm -f "$DEST/stamp"

export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly
TMP=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
T0=$(date +%s)
(cd "$TOOLS" && go mod download && cd coredns && go mod download) >&2 || die "go mod download failed"
log "module download took $(( $(date +%s) - T0 ))s"

k8s_minor=${K8S_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
kv=k8s.io/component-base/version
t=$(date +%s)
log "building kubelet, kube-controller-manager, kube-scheduler, kube-proxy ($K8S_VERSION) ..."
# One `go build` for all four: they share most packages, so each is compiled once.
(cd "$TOOLS" && go build -trimpath -o "$TMP/" \
  -ldflags="-s -w -X $kv.gitVersion=$K8S_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$k8s_minor -X $kv.gitTreeState=clean" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy) >&2 || die "building the node tools failed"
log "built them in $(( $(date +%s) - t ))s"
t=$(date +%s)
log "building coredns ($COREDNS_VERSION) ..."
(cd "$TOOLS/coredns" && go build -trimpath -o "$TMP/coredns" \
  -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" .) >&2 || die "building coredns failed"
log "built coredns in $(( $(date +%s) - t ))s"
for n in "${NODE_TOOLS[@]}"; do mv -f "$TMP/$n" "$BIN/$n"; done
printf '%s\n' "$STAMP" >"$DEST/stamp"
link_cp
log "node tools built in $(( $(date +%s) - T0 ))s: $BIN"
printf '%s\n' "$BIN"
