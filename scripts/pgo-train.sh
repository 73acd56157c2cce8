#!/usr/bin/env bash
# Runs a profile-instrumented strait-proxy through the traffic it is built
# for, so that scripts/build-dist.sh can optimise the shipped binary with the
# profile (PGO). Not a benchmark: nothing here is timed.
#
#   scripts/pgo-train.sh BIN PROFILE_DIR
#
# BIN must be built with `-Cprofile-generate=PROFILE_DIR`; it writes its
# `.profraw` there when it exits (on SIGTERM, after draining).
#
# The mix, against nginx on loopback (HTTP/1.1 and h2c ports):
#   - HTTP/1.1 keep-alive to a Service without routes (the plain path);
#   - HTTP/1.1 through a TrafficRoute: a header-matched canary rule, then a
#     sticky 90/10 split with a route timeout, a retry policy (bodies
#     buffered for replay) and request-header rules;
#   - HTTP/2 (h2c) end to end, many streams per connection;
#   - single requests on new connections (accept, protocol detection);
# with 1,000 endpoints known, as in bench/run.sh. Ports: PGO_PORT_BASE
# (default 23100) + 40..91, loopback only.
set -Eeuo pipefail

BIN="$1"
PROFILE_DIR="$2"
BASE="${PGO_PORT_BASE:-23100}"
P_UP_H1=$((BASE + 80)) P_UP_H2=$((BASE + 81))
P_OUT=$((BASE + 40)) P_IN=$((BASE + 43)) P_ADMIN=$((BASE + 91))
SECS="${PGO_SECONDS:-3}"
# shellcheck source=loopback-mesh.sh
. "$(dirname "$0")/loopback-mesh.sh"

for tool in nginx wrk h2load curl; do
    command -v "$tool" >/dev/null || { echo "pgo-train: needs $tool" >&2; exit 1; }
done
for p in $P_UP_H1 $P_UP_H2 $P_OUT $P_IN $P_ADMIN; do
    [ -z "$(ss -Hltn "sport = :$p")" ] || { echo "pgo-train: port $p in use; set PGO_PORT_BASE" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/strait-pgo.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
mkdir -p "$WORK/manifests" "$WORK/nginx"

nginx_conf "$WORK/nginx" "$P_UP_H1" "$P_UP_H2" >"$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>/dev/null &
PIDS+=($!)

{
    svc web "$P_UP_H1" 127.0.0.1
    svc web-h2 "$P_UP_H2" 127.0.0.1
    svc shop "$P_UP_H1" 127.0.0.1
    svc shop-v1 "$P_UP_H1" 127.0.0.1
    svc shop-v2 "$P_UP_H1" 127.0.0.1
    cat <<'EOF'
---
apiVersion: strait.dev/v1alpha1
kind: TrafficRoute
metadata: {name: shop, namespace: default}
spec:
  parentRef: {name: shop, port: 80}
  rules:
    - name: canary
      matches:
        - path: {type: PathPrefix, value: /api}
          headers: [{name: x-canary, value: "true"}]
      backends: [{name: shop-v2, port: 80}]
    - name: ab-test
      backends:
        - {name: shop-v1, port: 80, weight: 90}
        - {name: shop-v2, port: 80, weight: 10}
      sessionAffinity: {header: x-user-id}
      timeout: 2s
      retry: {attempts: 2, perTryTimeout: 500ms, "on": [gateway-error, connect-failure, reset]}
      requestHeaders: {set: {x-route: ab}, remove: [x-debug]}
EOF
} >"$WORK/manifests/services.yaml"
filler_services 995 >"$WORK/manifests/filler.yaml"

"$BIN" --local "$WORK/manifests" --outbound-addr "127.0.0.1:$P_OUT" --inbound-addr "127.0.0.1:$P_IN" \
    --admin-addr "127.0.0.1:$P_ADMIN" --workers 1 --log warn >"$WORK/proxy.log" 2>&1 &
PROXY=$!
PIDS+=($PROXY)
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$P_ADMIN/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf -H 'Host: web' "127.0.0.1:$P_OUT/" >/dev/null || { echo "pgo-train: proxy not serving" >&2; cat "$WORK/proxy.log" >&2; exit 1; }

url="http://127.0.0.1:$P_OUT"
wrk -t1 -c50 -d"${SECS}s" -H 'Host: web' "$url/" >/dev/null
wrk -t1 -c50 -d"${SECS}s" -H 'Host: shop' -H 'x-user-id: alice' "$url/api/items" >/dev/null
wrk -t1 -c20 -d1s -H 'Host: shop' -H 'x-canary: true' "$url/api/items" >/dev/null
h2load -t1 -c10 -m10 -D "$SECS" -H ':authority: web-h2' "$url/" >/dev/null
# One request per connection, one at a time: accept, detect, a cold pool.
for _ in $(seq 200); do curl -s -o /dev/null -H 'Host: web' "$url/"; done

# SIGTERM: the proxy drains and exits 0, which writes the profile.
kill -TERM "$PROXY"
wait "$PROXY" || { echo "pgo-train: proxy exited with $?" >&2; exit 1; }
PIDS=("${PIDS[@]/$PROXY/}")
ls "$PROFILE_DIR"/*.profraw >/dev/null 2>&1 || { echo "pgo-train: no profile written in $PROFILE_DIR" >&2; exit 1; }
