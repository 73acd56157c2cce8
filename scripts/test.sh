#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the system tools the tests
# use, checks formatting, lints and CRD drift, then runs every test in the
# workspace (the control-plane tests build kube-apiserver and etcd on first use),
# runs the README's quick tour, then brings up the real single-node cluster
# and runs the tests on it.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v openssl >/dev/null || need+=(openssl)
command -v setpriv >/dev/null || need+=(util-linux)
[ -x /usr/bin/python3 ] || need+=(python3)
# Prometheus and promtool: the dashboards' queries run against a real one
# (control-plane/tests/dashboards.rs).
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== CRD drift (crds/ against the Rust types, helm/strait/crds/ against crds/)"
cargo run --locked -q -p strait-control-plane --bin crdgen -- --check
diff -r crds helm/strait/crds || { echo "helm/strait/crds/ differs from crds/: cp crds/*.yaml helm/strait/crds/"; exit 1; }
echo "== import cycles (scripts/check-cycles.py)"
python3 scripts/check-cycles.py
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace --exclude strait-cluster-tests 2>&1 | tee "$log"
echo "== the README's quick tour, run as written (scripts/check-tour.sh)"
tour_log=$(mktemp)
scripts/check-tour.sh >"$tour_log" 2>&1 || { cat "$tour_log"; exit 1; }
tail -1 "$tour_log"; rm -f "$tour_log"

# The real single-node cluster (tests/cluster): its tools and images are
# built on first use and cached; the node tests run on it, then the mesh
# test (helm install, injection, routing, the controller scaled to 0,
# upgrade, uninstall), then the teardown test takes it down and checks that
# nothing is left.
echo "== the cluster (tests/cluster/up.sh)"
trap 'rm -f "$log"; tests/cluster/down.sh >/dev/null 2>&1' EXIT
t0=$(date +%s)
tests/cluster/up.sh >/dev/null
echo "cluster up in $(( $(date +%s) - t0 ))s (tools and images included)"
cargo build --locked -q -p strait-cli
cargo test --locked -p strait-cluster-tests --test node 2>&1 | tee -a "$log"
cargo test --locked -p strait-cluster-tests --test mesh 2>&1 | tee -a "$log"
cargo test --locked -p strait-cluster-tests --test conformance -- --nocapture 2>&1 | tee -a "$log"
cargo test --locked -p strait-cluster-tests --test teardown 2>&1 | tee -a "$log"

# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
