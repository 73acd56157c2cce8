#!/usr/bin/env bash
# Runs a profile-instrumented strait-proxy through the traffic it is built
# for, so that scripts/build-dist.sh can optimise the shipped binary with the
# profile (PGO). Not a benchmark: nothing here is timed.
#
#   scripts/pgo-train.sh BIN PROFILE_DIR [CONTROLLER]
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
#   - with CONTROLLER (a strait-controller binary): two proxies with
#     certificates from its development CA, HTTP/1.1 through both over mesh
#     TLS (carried as HTTP/2 between them), as in bench/mtls.sh;
# with 1,000 endpoints known, as in bench/run.sh. Ports: PGO_PORT_BASE
# (default 23100) + 40..91, loopback only.
set -Eeuo pipefail

BIN="$1"
PROFILE_DIR="$2"
CONTROLLER="${3:-}"
BASE="${PGO_PORT_BASE:-23100}"
P_UP_H1=$((BASE + 80)) P_UP_H2=$((BASE + 81))
P_OUT=$((BASE + 40)) P_IN=$((BASE + 43)) P_ADMIN=$((BASE + 91))
P_CP=$((BASE + 60)) P_ID=$((BASE + 61)) P_CP_HEALTH=$((BASE + 62))
P_MC_OUT=$((BASE + 63)) P_MC_IN=$((BASE + 64)) P_MC_ADMIN=$((BASE + 65))
P_MS_OUT=$((BASE + 66)) P_MS_IN=$((BASE + 67)) P_MS_ADMIN=$((BASE + 68))
SECS="${PGO_SECONDS:-3}"
# shellcheck source=loopback-mesh.sh
. "$(dirname "$0")/loopback-mesh.sh"

for tool in nginx wrk h2load curl; do
    command -v "$tool" >/dev/null || { echo "pgo-train: needs $tool" >&2; exit 1; }
done
for p in $P_UP_H1 $P_UP_H2 $P_OUT $P_IN $P_ADMIN $P_CP $P_ID $P_CP_HEALTH \
    $P_MC_OUT $P_MC_IN $P_MC_ADMIN $P_MS_OUT $P_MS_IN $P_MS_ADMIN; do
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
stop() { # PID
    kill -TERM "$1"
    wait "$1" || { echo "pgo-train: proxy exited with $?" >&2; exit 1; }
    PIDS=("${PIDS[@]/$1/}")
}
stop "$PROXY"

if [ -n "$CONTROLLER" ]; then
    mkdir -p "$WORK/mesh"
    meshed_svc web-mtls "$P_MS_IN" web-0 web >"$WORK/mesh/web.yaml"
    "$CONTROLLER" --local "$WORK/mesh" --dev-ca-roots "$WORK/roots.pem" \
        --config-addr "127.0.0.1:$P_CP" --identity-addr "127.0.0.1:$P_ID" \
        --health-addr "127.0.0.1:$P_CP_HEALTH" --log warn >"$WORK/controller.log" 2>&1 &
    PIDS+=($!)
    mesh_proxy() { # POD SA OUT IN ADMIN [flags]
        local pod=$1 sa=$2 out=$3 in=$4 admin=$5; shift 5
        "$BIN" --local "$WORK/mesh" --identity-addr "127.0.0.1:$P_ID" --namespace shop \
            --pod "$pod" --service-account "$sa" --outbound-addr "127.0.0.1:$out" \
            --inbound-addr "127.0.0.1:$in" --admin-addr "127.0.0.1:$admin" --workers 1 \
            --log warn "$@" >"$WORK/$pod.log" 2>&1 &
        PIDS+=($!)
    }
    mesh_proxy web-0 web $P_MS_OUT $P_MS_IN $P_MS_ADMIN --inbound-forward "127.0.0.1:$P_UP_H1"
    SERVER=$!
    mesh_proxy client-0 client $P_MC_OUT $P_MC_IN $P_MC_ADMIN
    CLIENT=$!
    for admin in $P_MS_ADMIN $P_MC_ADMIN; do
        for _ in $(seq 100); do
            curl -sf "127.0.0.1:$admin/metrics" 2>/dev/null | grep -q 'strait_identity_renewals_total{result="success"} [1-9]' && break
            sleep 0.2
        done
    done
    mesh="http://127.0.0.1:$P_MC_OUT"
    curl -sf -H 'Host: web-mtls' "$mesh/" >/dev/null \
        || { echo "pgo-train: the mTLS pair is not serving" >&2; cat "$WORK"/*.log >&2; exit 1; }
    wrk -t1 -c50 -d"${SECS}s" -H 'Host: web-mtls' "$mesh/" >/dev/null
    for _ in $(seq 100); do curl -s -o /dev/null -H 'Host: web-mtls' "$mesh/"; done
    stop "$CLIENT"
    stop "$SERVER"
fi
ls "$PROFILE_DIR"/*.profraw >/dev/null 2>&1 || { echo "pgo-train: no profile written in $PROFILE_DIR" >&2; exit 1; }
