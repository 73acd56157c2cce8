#!/usr/bin/env bash
# How reading a directory of manifests scales, in one command:
#
#   bench/local-scale.sh            # 10,000 / 20,000 / 40,000 documents
#   LOCAL_SCALE_SIZES="1000 5000" bench/local-scale.sh
#
# For each size it writes that many documents (half Services, half their
# EndpointSlices, in 10 files), then times, side by side on the same files,
# `strait-controller --local` until its first version is published and
# `strait-proxy --local` until its config is applied, and reads each one's
# peak RSS. Linear reading shows as a constant time per 1,000 documents
# down each column. Release binaries (cargo build --release); prints a
# markdown table.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${LOCAL_SCALE_SIZES:-"10000 20000 40000"}
cd "$ROOT"
cargo build --locked --release -q -p strait-proxy -p strait-control-plane
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d /tmp/strait-local-scale.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

write_docs() { # write_docs DIR N
  python3 - "$1" "$2" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
services = n // 2
files = [open(os.path.join(d, f"m{i}.yaml"), "w") for i in range(10)]
for i in range(services):
    f = files[i % 10]
    f.write(f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: scale}}\n"
            f"spec: {{clusterIP: 10.{96 + i // 65536 % 64}.{i // 256 % 256}.{i % 256}, ports: [{{name: http, port: 80}}]}}\n---\n")
    f.write(f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: svc-{i}-1, namespace: scale, labels: {{kubernetes.io/service-name: svc-{i}}}}}\n"
            f"addressType: IPv4\nports: [{{name: http, port: 8080}}]\n"
            f"endpoints: [{{addresses: [\"10.244.{i // 256 % 256}.{i % 256}\"]}}]\n---\n")
for f in files:
    f.close()
EOF
}

wait_for() { # wait_for URL NEEDLE TIMEOUT_S
  local deadline=$(( $(date +%s) + $3 ))
  until curl -s -m 2 "$1" 2>/dev/null | grep -q "$2"; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.05
  done
}

echo "| documents | controller: first version published | per 1,000 | peak RSS | proxy: config applied | per 1,000 | peak RSS |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $SIZES; do
  dir=$WORK/docs-$n
  mkdir -p "$dir"
  write_docs "$dir" "$n"

  cp_port=$(free_port); health=$(free_port)
  t0=$(now_ms)
  "$BIN/strait-controller" --local "$dir" --config-addr "127.0.0.1:$cp_port" \
    --health-addr "127.0.0.1:$health" --log warn &
  cp=$!; pids+=("$cp")
  wait_for "http://127.0.0.1:$health/metrics" "strait_controller_config_version 1" 600 ||
    { echo "controller did not publish $n documents in 600 s" >&2; exit 1; }
  t_cp=$(( $(now_ms) - t0 )); rss_cp=$(peak_kib "$cp")
  kill "$cp"; wait "$cp" 2>/dev/null || true

  admin=$(free_port)
  t0=$(now_ms)
  "$BIN/strait-proxy" --local "$dir" --namespace scale --log warn \
    --outbound-addr "127.0.0.1:$(free_port)" --inbound-addr "127.0.0.1:$(free_port)" \
    --admin-addr "127.0.0.1:$admin" &
  px=$!; pids+=("$px")
  wait_for "http://127.0.0.1:$admin/ready" "^ready" 600 ||
    { echo "proxy did not apply $n documents in 600 s" >&2; exit 1; }
  t_px=$(( $(now_ms) - t0 )); rss_px=$(peak_kib "$px")
  kill "$px"; wait "$px" 2>/dev/null || true

  awk -v n="$n" -v c="$t_cp" -v cr="$rss_cp" -v p="$t_px" -v pr="$rss_px" 'BEGIN {
    printf "| %d | %.2f s | %.0f ms | %.0f MiB | %.2f s | %.0f ms | %.0f MiB |\n",
      n, c / 1000, c / (n / 1000), cr / 1024, p / 1000, p / (n / 1000), pr / 1024 }'
  rm -rf "$dir"
done
