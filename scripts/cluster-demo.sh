#!/usr/bin/env bash
# The README's A/B story on a real cluster: brings up the local single-node
# cluster (tests/cluster/up.sh), installs Strait with Helm, deploys two
# versions of an app and a client, meshes them with one annotation, applies
# a sticky 90/10 TrafficRoute with kubectl, sends load from the client pod,
# and prints the split from the client proxy's metrics and `strait check`.
#
#   scripts/cluster-demo.sh            # needs root; ~1 min with warm caches
#   scripts/cluster-demo.sh --down     # also take the cluster down at the end
#
# The first run builds the cluster's tools and images (see docs/testing.md
# for the times). The cluster stays up afterwards, so you can look around:
#   export KUBECONFIG=/tmp/strait-cluster/kubeconfig; kubectl get pods -A
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
T0=$(date +%s)

say "the cluster (tests/cluster/up.sh)"
KUBECONFIG=$(tests/cluster/up.sh | tail -1)
export KUBECONFIG
BIN=$(tests/cluster/install.sh 2>/dev/null | tail -1)
cargo build -q --release -p strait-cli
STRAIT=$ROOT/target/release/strait
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

say "helm install strait helm/strait"
"$BIN/helm" upgrade --install strait helm/strait -n strait-system --create-namespace --wait --timeout 4m
"$STRAIT" check || true

say "two versions of web and a client, meshed by one annotation"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl annotate namespace demo strait.dev/inject=enabled --overwrite
app() { # app <name> <version>
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1, service: web, version: "$2"}}
    spec:
      containers:
        - name: app
          image: docker.io/strait/strait-testapp:$VERSION
          env:
            - {name: VERSION, value: "$2"}
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
EOF
}
svc() { # svc <name> <selector>
  printf 'apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: demo}\nspec: {selector: {%s}, ports: [{name: http, port: 80, targetPort: 8080}]}\n---\n' "$1" "$2"
}
{ app web-v1 v1; app web-v2 v2; app client client
  svc web "service: web"; svc web-v1 "version: v1"; svc web-v2 "version: v2"; } | kubectl apply -f -
for d in web-v1 web-v2 client; do kubectl -n demo rollout status "deploy/$d" --timeout=180s; done
kubectl -n demo get pods -o custom-columns='POD:.metadata.name,PROXY:.spec.initContainers[?(@.name=="strait-proxy")].image,IP:.status.podIP'

say "the sticky 90/10 TrafficRoute, with kubectl"
kubectl apply -f - <<'EOF'
apiVersion: strait.dev/v1alpha1
kind: TrafficRoute
metadata: {name: web, namespace: demo}
spec:
  parentRef: {name: web, port: 80}
  rules:
    - name: canary-by-header
      matches:
        - headers: [{name: x-canary, value: "true"}]
      backends: [{name: web-v2, port: 80}]
    - name: ab-test
      backends:
        - {name: web-v1, port: 80, weight: 90}
        - {name: web-v2, port: 80, weight: 10}
      sessionAffinity: {header: x-user-id}
EOF
kubectl -n demo get trafficroutes
sleep 2

say "load from the client pod: 3,000 requests, 500 users"
CLIENT=$(kubectl -n demo get pod -l app=client -o jsonpath='{.items[0].metadata.name}')
CLIENT_IP=$(kubectl -n demo get pod "$CLIENT" -o jsonpath='{.status.podIP}')
kubectl -n demo exec "$CLIENT" -c app -- strait-testapp load http://web/ --requests 3000 --concurrency 8 \
  --user-header x-user-id --users 500 | python3 -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
print("  answers by version:", r["version"], " statuses:", r["status"])
print("  users: %d; users who saw more than one version: %d" % (r["users"], r["users_seeing_several_versions"]))'

say "what the client's proxy measured (its /metrics)"
curl -fsS "http://$CLIENT_IP:4191/metrics" | python3 -c '
import re, sys
rows = {}
for line in sys.stdin:
    m = re.match(r"strait_requests_total\{(.*)\} (\S+)", line)
    if not m: continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", m.group(1)))
    if labels.get("direction") != "outbound" or "demo/web" not in labels.get("service", ""): continue
    key = (labels["route"], labels["backend"])
    rows[key] = rows.get(key, 0) + float(m.group(2))
total = sum(v for (r, _), v in rows.items() if r.endswith("ab-test")) or 1
print("  %-24s %-22s %9s %7s" % ("route", "backend", "requests", "share"))
for (route, backend), n in sorted(rows.items()):
    share = "%.1f%%" % (100 * n / total) if route.endswith("ab-test") else "-"
    print("  %-24s %-22s %9d %7s" % (route, backend, n, share))'

say "strait check --proxies"
"$STRAIT" check --proxies || true
echo
echo "cluster demo done in $(( $(date +%s) - T0 ))s; the cluster stays up (KUBECONFIG=$KUBECONFIG)."
if [[ ${1:-} == --down ]]; then tests/cluster/down.sh; fi
