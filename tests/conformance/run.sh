#!/usr/bin/env bash
# Runs the upstream Gateway API conformance suite's mesh profiles (MESH-HTTP,
# MESH-GRPC) against Strait on the test cluster (tests/cluster/up.sh), with
# Strait installed by its chart with gatewayAPI.installCRDs=true (the Rust
# test tests/cluster/tests/conformance.rs does both, then reads the report).
#
#   tests/conformance/run.sh REPORT.yaml [extra suite flags...]
#
# 1. builds the suite and the echo app from source (install.sh);
# 2. builds the `echo-advanced` image the suite's manifests name from them
#    and imports it into the cluster's containerd (no registry here);
# 3. runs the suite with options.yaml; its log goes to stderr, its report
#    to REPORT.yaml. The exit status is the suite's.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=/dev/null
. "$ROOT/tests/cluster/common.sh"
log() { printf 'conformance: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

REPORT=${1:?usage: run.sh REPORT.yaml [suite flags]}; shift
[[ -s $DIR/kubeconfig ]] || die "the cluster is not up (tests/cluster/up.sh)"
BIN=$("$HERE/install.sh" | tail -1)

# --- the echo image ----------------------------------------------------------
IMAGE=registry.k8s.io/gateway-api/echo-advanced:v1.5.1   # as conformance/mesh/manifests.yaml names it
# Its own cache dir: tests/cluster/images.sh prunes images/ to what it built.
CACHE=${STRAIT_TOOLS_CACHE:-$HOME/.cache/strait-tools}/conformance-images
mkdir -p "$CACHE"
CTX=$(mktemp -d /tmp/strait-echo.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
cp "$BIN/server" "$BIN/client" "$CTX/"
cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
COPY server client /usr/local/bin/
COPY cert.crt cert.key /
ENV PATH=/usr/local/bin
ENTRYPOINT ["/usr/local/bin/server"]
EOF
key=$(cat "$CTX/Dockerfile" "$CTX/server" "$CTX/client" | sha256sum | cut -c1-16)
TAR=$CACHE/echo-advanced-$key.tar
if [[ ! -s $TAR ]]; then
  # The suite's echo serves TLS on 8443 with /cert.crt and /cert.key.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj /CN=echo -keyout "$CTX/cert.key" -out "$CTX/cert.crt" 2>/dev/null
  B=(buildah --storage-driver vfs --root "$CTX/storage" --runroot "$CTX/run")
  log "buildah: $IMAGE"
  "${B[@]}" bud --isolation chroot --layers=false -t "$IMAGE" "$CTX" >"$CTX/bud.log" 2>&1 ||
    { tail -n 30 "$CTX/bud.log" >&2; die "buildah bud failed"; }
  "${B[@]}" push "$IMAGE" "docker-archive:$TAR.tmp:$IMAGE" >"$CTX/push.log" 2>&1 ||
    { tail -n 30 "$CTX/push.log" >&2; die "buildah push failed"; }
  mv -f "$TAR.tmp" "$TAR"
  find "$CACHE" -name 'echo-advanced-*.tar' ! -name "$(basename "$TAR")" -delete
fi
ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$TAR" >/dev/null ||
  die "ctr images import $TAR failed"

# --- the suite -----------------------------------------------------------------
OPTS=$CTX/options.yaml
{ cat "$HERE/options.yaml"; printf 'reportOutputPath: %s\n' "$REPORT"; } >"$OPTS"
log "running the suite (MESH-HTTP, MESH-GRPC)"
cd "$CTX"   # the suite writes nothing else, but keep the checkout clean
KUBECONFIG=$DIR/kubeconfig "$BIN/gateway-conformance.test" \
  -test.run '^TestConformance$' -test.v -test.timeout 40m \
  --conformance-options-file "$OPTS" "$@" >&2
