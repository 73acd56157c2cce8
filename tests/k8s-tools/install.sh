#!/usr/bin/env bash
# Builds (or restores from cache) the real Kubernetes control-plane binaries
# used by Strait's tests: kube-apiserver, etcd and helm.
#
#   BIN=$(tests/k8s-tools/install.sh | tail -1)
#
# Versions come from the wrapper modules next to this script:
#   go.mod       -> k8s.io/kubernetes (kube-apiserver)
#   etcd/go.mod  -> go.etcd.io/etcd/server/v3 (etcd)
#   helm/go.mod  -> helm.sh/helm/v4 (helm)
# Binaries land in
#   ${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/<k8s>-<etcd>-<helm>/bin/
# and that directory is printed as the last line of stdout. Everything else
# (progress, build times) goes to stderr. Only Go is needed; the Go module
# cache may be empty (modules come from the Go module proxy).
#
# Environment:
#   STRAIT_TOOLS_CACHE  cache root (default $HOME/.cache/strait-tools)
#   STRAIT_TOOLS_FORCE=1  rebuild even if the cache looks valid
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'k8s-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Go -----------------------------------------------------------------
# shellcheck source=/dev/null
. "$HERE/find-go.sh"

# --- versions, read from the wrapper go.mod files -------------------------
modver() { # modver <go.mod> <module path>
  local v
  v=$(awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }
                     $1 == "require" && $2 == m { print $3; exit }' "$1")
  [[ -n $v ]] || die "cannot find $2 in $1"
  printf '%s\n' "$v"
}
K8S_VERSION=$(modver "$HERE/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(modver "$HERE/etcd/go.mod" go.etcd.io/etcd/server/v3)
HELM_VERSION=$(modver "$HERE/helm/go.mod" helm.sh/helm/v4)

CACHE_ROOT=${STRAIT_TOOLS_CACHE:-${HOME:?HOME is not set}/.cache/strait-tools}
DEST=$CACHE_ROOT/$K8S_VERSION-$ETCD_VERSION-$HELM_VERSION
BIN=$DEST/bin

# The stamp ties a cached bin dir to the exact wrapper modules and build
# flags: editing a go.mod/go.sum (e.g. a replace) or this script's flags
# invalidates it even if the three headline versions did not change.
BUILD_FLAGS_VERSION=1
stamp() {
  {
    echo "flags=$BUILD_FLAGS_VERSION"
    cat "$HERE/go.mod" "$HERE/go.sum" \
        "$HERE/etcd/go.mod" "$HERE/etcd/go.sum" \
        "$HERE/helm/go.mod" "$HERE/helm/go.sum"
  } | sha256sum | cut -d' ' -f1
}
STAMP=$(stamp)

cache_ok() {
  [[ ${STRAIT_TOOLS_FORCE:-0} != 1 ]] &&
  [[ -f $DEST/stamp && $(cat "$DEST/stamp") == "$STAMP" ]] &&
  [[ -x $BIN/kube-apiserver && -x $BIN/etcd && -x $BIN/helm ]]
}

if cache_ok; then
  log "cache hit: $BIN"
  printf '%s\n' "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 ||
  die "go not found on PATH (need Go >= $(awk '$1=="go"{print $2}' "$HERE/go.mod"))"

mkdir -p "$BIN"
# Serialise concurrent installs (parallel CI jobs, several test binaries).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DEST/.lock"
  flock 9
  if cache_ok; then # someone else finished the build while we waited
    log "cache hit (after waiting for lock): $BIN"
    printf '%s\n' "$BIN"
    exit 0
  fi
fi
# A stale or partial bin dir is rebuilt from scratch.
rm -f "$DEST/stamp" "$BIN/kube-apiserver" "$BIN/etcd" "$BIN/helm"

# Hermetic-ish Go settings: static, no go.work from parent dirs, go.sum is
# authoritative (a missing/mismatching entry is an error, not a silent edit).
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly
log "using $(go version) ($(command -v go))"

TMP=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

build() { # build <name> <module dir> <package> <ldflags>
  local name=$1 dir=$2 pkg=$3 ldflags=$4 t0 t1
  log "building $name from $pkg ..."
  t0=$(date +%s)
  (cd "$dir" && go build -trimpath -ldflags="-s -w $ldflags" -o "$TMP/$name" "$pkg") >&2 ||
    die "building $name failed"
  t1=$(date +%s)
  mv -f "$TMP/$name" "$BIN/$name"
  log "built $name in $((t1 - t0))s"
}

T_START=$(date +%s)

# Module downloads are logged separately so cold-cache time is visible.
t0=$(date +%s)
for d in "$HERE" "$HERE/etcd" "$HERE/helm"; do
  (cd "$d" && go mod download) >&2 || die "go mod download failed in $d"
done
log "module download took $(( $(date +%s) - t0 ))s"

k8s_minor=${K8S_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
kv=k8s.io/component-base/version
build kube-apiserver "$HERE" k8s.io/kubernetes/cmd/kube-apiserver \
  "-X $kv.gitVersion=$K8S_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$k8s_minor -X $kv.gitTreeState=clean"
build etcd "$HERE/etcd" go.etcd.io/etcd/server/v3 \
  "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
build helm "$HERE/helm" helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

printf '%s\n' "$STAMP" >"$DEST/stamp"
log "all tools built in $(( $(date +%s) - T_START ))s: $BIN"
printf '%s\n' "$BIN"
