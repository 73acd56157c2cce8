#!/usr/bin/env bash
# The control plane at scale, in one command:
#
#   bench/control-plane/run.sh
#
# Builds strait-controller (release) and the bench binary, starts a real
# etcd + kube-apiserver (tests/k8s-tools), applies the CRDs, creates 100
# Services x 100 endpoints (one EndpointSlice each) plus a `web` Service
# with a TrafficRoute, starts strait-controller against it, connects 1,000
# simulated proxies (one config stream and one HTTP/2 connection each,
# ACKing every version at once), then patches the TrafficRoute and an
# EndpointSlice through the API server and times each change until all
# 1,000 streams have it. Prints a markdown table and adds it, with the date
# and the load, to the "Control plane at scale" section of
# docs/benchmarks.md. Everything it started is stopped on exit, also on
# failure or Ctrl-C; logs are kept in the work dir when it fails.
#
# Knobs (environment):
#   CP_BENCH_PROXIES=1000      simulated proxies (config streams)
#   CP_BENCH_CHANNELS=PROXIES  HTTP/2 connections they share (1000: one each)
#   CP_BENCH_SERVICES=100      filler Services (one EndpointSlice each)
#   CP_BENCH_ENDPOINTS=100     endpoints per filler EndpointSlice (<= 1000)
#   CP_BENCH_CHANGES=50        changes of each kind
#   CP_BENCH_INTERVAL_MS=300   pause between changes
#   CP_BENCH_BUILD=1           0: use the binaries already built
#   CP_BENCH_DOC=1             0: do not touch docs/benchmarks.md
#   CP_BENCH_TARGET_DIR=<repo>/target   cargo target dir (shared artifacts)
#   CP_BENCH_KEEP=0            1: keep the work dir (logs, raw JSON)
#   CP_BENCH_HEAPTRACK=FILE    attach heaptrack to the controller (profiling)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROXIES=${CP_BENCH_PROXIES:-1000}
CHANNELS=${CP_BENCH_CHANNELS:-$PROXIES}
SERVICES=${CP_BENCH_SERVICES:-100}
ENDPOINTS=${CP_BENCH_ENDPOINTS:-100}
CHANGES=${CP_BENCH_CHANGES:-50}
INTERVAL_MS=${CP_BENCH_INTERVAL_MS:-300}
BUILD=${CP_BENCH_BUILD:-1}
DOC=${CP_BENCH_DOC:-1}
KEEP=${CP_BENCH_KEEP:-0}
export CARGO_TARGET_DIR=${CP_BENCH_TARGET_DIR:-$ROOT/target}
TOOLS=$ROOT/tests/k8s-tools

log() { printf 'cp-bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strait-cp-bench.XXXXXX")
CP_PID=
BENCH_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in $BENCH_PID $CP_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  "$TOOLS/stop-apiserver.sh" "$WORK/api" >/dev/null 2>&1 || log "stop-apiserver.sh failed (see $WORK)"
  if [[ $rc -ne 0 || $KEEP == 1 ]]; then
    log "logs kept in $WORK (controller.log, api/logs/, result.json)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# 1. Build.
if [[ $BUILD == 1 ]]; then
  log "building strait-controller and strait-cp-bench (release, target $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release -p strait-control-plane --bin strait-controller)
  cargo build --release --manifest-path "$HERE/Cargo.toml"
fi
CONTROLLER=$CARGO_TARGET_DIR/release/strait-controller
BENCH=$CARGO_TARGET_DIR/release/strait-cp-bench
[[ -x $CONTROLLER && -x $BENCH ]] || die "missing $CONTROLLER or $BENCH (run with CP_BENCH_BUILD=1)"
BUILT=$SECONDS

# 2. A real API server with the CRDs and the objects.
command -v kubectl >/dev/null || die "kubectl is not on PATH"
K8S_BIN=$("$TOOLS/install.sh" | tail -n 1)
mkdir -p "$WORK/api"
STRAIT_K8S_BIN=$K8S_BIN "$TOOLS/start-apiserver.sh" "$WORK/api" >/dev/null
export KUBECONFIG=$WORK/api/kubeconfig
kc() { kubectl --cache-dir "$WORK/kube-cache" "$@"; }
kc apply -f "$ROOT/crds" >/dev/null
kc wait --for=condition=established --timeout=60s \
  crd/trafficroutes.strait.dev crd/destinationpolicies.strait.dev >/dev/null
OBJ_ARGS=(--namespace bench --lease-namespace strait-system
          --services "$SERVICES" --endpoints "$ENDPOINTS")
"$BENCH" setup "${OBJ_ARGS[@]}"
SETUP_DONE=$SECONDS

# 3. The controller, on a port the kernel picks (read back from its log).
"$CONTROLLER" --config-addr 127.0.0.1:0 --replica cp-bench \
  --lease-namespace strait-system 2>"$WORK/controller.log" >/dev/null &
CP_PID=$!
ADDR=
for _ in $(seq 300); do
  ADDR=$(sed -n 's/.*config stream listening.*addr=\([0-9.:]*\).*/\1/p' "$WORK/controller.log" | head -n 1)
  [[ -n $ADDR ]] && break
  kill -0 "$CP_PID" 2>/dev/null || { tail -n 20 "$WORK/controller.log" >&2; die "strait-controller exited"; }
  sleep 0.1
done
[[ -n $ADDR ]] || die "strait-controller did not start listening (see $WORK/controller.log)"
log "strait-controller pid $CP_PID on $ADDR"
# Memory profiling: CP_BENCH_HEAPTRACK=FILE attaches heaptrack (allocations
# from here on: the streams and the changes; RSS figures then include it).
if [[ -n ${CP_BENCH_HEAPTRACK:-} ]]; then
  heaptrack -p "$CP_PID" -o "$CP_BENCH_HEAPTRACK" >"$WORK/heaptrack.log" 2>&1 &
  sleep 3
fi

# 4-6. Measure.
"$BENCH" run "${OBJ_ARGS[@]}" --addr "$ADDR" --controller-pid "$CP_PID" \
  --controller-log "$WORK/controller.log" --proxies "$PROXIES" --channels "$CHANNELS" \
  --changes "$CHANGES" --interval-ms "$INTERVAL_MS" \
  --out "$WORK/result.md" --json "$WORK/result.json" &
BENCH_PID=$!
wait "$BENCH_PID" || die "the benchmark failed"
BENCH_PID=
kill -0 "$CP_PID" 2>/dev/null || die "strait-controller died during the run"
TOTAL=$((SECONDS - START))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
log "done in ${TOTAL}s (build $((BUILT - START))s, API server + objects $((SETUP_DONE - BUILT))s, measuring $((SECONDS - SETUP_DONE))s)"

# 7. Into docs/benchmarks.md, at the end of its "Control plane at scale" section.
if [[ $DOC == 1 ]]; then
  DOCF=$ROOT/docs/benchmarks.md
  COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  DIRTY=$(git -C "$ROOT" status --porcelain -- api control-plane 2>/dev/null | grep -q . && echo ", uncommitted changes in api/ or control-plane/" || true)
  {
    printf '\n### Run of %s (commit %s%s)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$COMMIT" "$DIRTY"
    printf '%s cores; load average (1/5/15 min) before %s, after %s; `uptime`: %s. ' \
      "$(nproc)" "$LOAD_BEFORE" "$LOAD_AFTER" "$(uptime | sed 's/^ *//')"
    printf 'run.sh took %s s (build %s s).\n\n' "$TOTAL" "$((BUILT - START))"
    cat "$WORK/result.md"
  } >"$WORK/section.md"
  touch "$DOCF"
  if ! grep -q '^## Control plane at scale' "$DOCF"; then
    printf '\n## Control plane at scale\n\nResults of `bench/control-plane/run.sh`, newest last.\n' >>"$DOCF"
  fi
  # Insert before the heading that follows the section, or at the end.
  awk -v add="$WORK/section.md" '
    function emit() { while ((getline l < add) > 0) print l; close(add); done = 1 }
    /^## / { if (insec && !done) emit(); insec = ($0 ~ /^## Control plane at scale/) }
    { print }
    END { if (!done) emit() }
  ' "$DOCF" >"$WORK/doc.new"
  cat "$WORK/doc.new" >"$DOCF"
  log "results added to $DOCF"
fi
