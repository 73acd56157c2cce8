#!/usr/bin/env bash
# Starts a real etcd + kube-apiserver on loopback for tests.
#
#   tests/k8s-tools/start-apiserver.sh WORKDIR
#   ... kubectl --kubeconfig WORKDIR/kubeconfig ...
#   tests/k8s-tools/stop-apiserver.sh WORKDIR
#
# Every start is a fresh, empty cluster: WORKDIR/{pki,etcd-data,logs} are
# recreated (other files in WORKDIR are left alone). Ports are chosen at run
# time. What it writes into WORKDIR:
#   kubeconfig   admin (CN=admin, O=system:masters) client cert, embedded
#   env          shell-sourceable: KUBECONFIG, STRAIT_APISERVER_URL,
#                STRAIT_ETCD_URL, STRAIT_CA_FILE, STRAIT_SA_ISSUER, ports
#   pids         one pid per line (etcd, kube-apiserver)
#   pki/         ca.{crt,key} apiserver.{crt,key} admin.{crt,key} sa.{key,pub}
#   logs/        etcd.log kube-apiserver.log
# Last line of stdout: KUBECONFIG=<WORKDIR>/kubeconfig. Progress -> stderr.
#
# Environment:
#   STRAIT_K8S_BIN              dir with etcd + kube-apiserver (default: run
#                               install.sh, which builds or reuses the cache)
#   STRAIT_APISERVER_TIMEOUT    seconds to wait for readiness (default 120)
#   STRAIT_APISERVER_EXTRA_ARGS extra kube-apiserver flags (word-split)
#   STRAIT_ETCD_EXTRA_ARGS      extra etcd flags (word-split)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'start-apiserver: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 WORKDIR"
mkdir -p "$1"
W=$(cd "$1" && pwd -P)
TIMEOUT=${STRAIT_APISERVER_TIMEOUT:-120}
SA_ISSUER=https://kubernetes.default.svc.cluster.local
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1 # first IP of SERVICE_CIDR: the `kubernetes` Service

for t in openssl curl base64 setsid; do
  command -v "$t" >/dev/null 2>&1 || die "$t is required but not installed"
done

# Refuse to start twice in one workdir (would orphan the first pair).
if [[ -f $W/pids ]]; then
  while read -r pid; do
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
       tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$W/"; then
      die "already running in $W (pid $pid); run $HERE/stop-apiserver.sh $W first"
    fi
  done <"$W/pids"
  rm -f "$W/pids"
fi

if [[ -n ${STRAIT_K8S_BIN:-} ]]; then
  BIN=$STRAIT_K8S_BIN
else
  BIN=$("$HERE/install.sh" | tail -n 1)
fi
[[ -x $BIN/etcd && -x $BIN/kube-apiserver ]] || die "no etcd/kube-apiserver in '$BIN'"

rm -rf "$W/pki" "$W/etcd-data" "$W/logs" "$W/kubeconfig" "$W/env"
mkdir -p "$W/pki" "$W/logs"
mkdir -m 700 "$W/etcd-data"

STARTED=()
cleanup_on_error() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    for pid in "${STARTED[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
    rm -f "$W/pids"
  fi
}
trap cleanup_on_error EXIT

# --- certificates and keys -------------------------------------------------
log "generating certificates in $W/pki"
P=$W/pki
(
  umask 077
  cd "$P"
  exec 2>"$P/openssl.log" >&2
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
    -keyout ca.key -out ca.crt -subj "/CN=strait-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  leaf() { # leaf <name> <subject> <extensions>
    openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf '%b' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 3650 -out "$1.crt" -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
  }
  leaf apiserver "/CN=kube-apiserver" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
  leaf admin "/O=system:masters/CN=admin" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
  openssl pkey -in sa.key -pubout -out sa.pub
  chmod 644 ca.crt apiserver.crt admin.crt sa.pub
) || die "openssl failed: $(tail -n 20 "$P/openssl.log")"

# --- ports -------------------------------------------------------------------
# Pick ports below the kernel's ephemeral range (32768+ by default) so an
# outgoing connection cannot grab one between choosing and binding it, and
# skip every port that already appears in /proc/net/tcp{,6}. A bind race is
# still possible; startup is retried with new ports if it happens.
declare -A TAKEN=()
pick_port() { # sets PORT (not via $(...): TAKEN must persist across calls)
  local hex
  while read -r _ addr _; do
    hex=${addr##*:}
    [[ $hex =~ ^[0-9A-Fa-f]+$ ]] && TAKEN[$((16#$hex))]=1
  done < <(tail -q -n +2 /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  for _ in $(seq 200); do
    PORT=$((20000 + RANDOM % 12000))
    if [[ -z ${TAKEN[$PORT]:-} ]]; then TAKEN[$PORT]=1; return; fi
  done
  die "no free port found"
}

tail_log() { log "---- last lines of $1 ----"; tail -n "${2:-40}" "$1" >&2 || true; log "----"; }

# start_bg <logfile> <cmd...>: own session + process group, no inherited
# stdio (so `$(start-apiserver.sh ...)` callers do not hang on our pipes).
start_bg() {
  local logf=$1; shift
  setsid "$@" </dev/null >"$logf" 2>&1 9>&- &
  LAST_PID=$!
  disown "$LAST_PID" # no "Killed" job notices from this shell
  STARTED+=("$LAST_PID")
}

# wait_ready <pid> <probe cmd...>: 0 ready, 1 process died, 2 timeout
wait_ready() {
  local pid=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 2
}

addr_in_use() { grep -qiE 'address already in use' "$1"; }

# --- etcd --------------------------------------------------------------------
ETCD_LOG=$W/logs/etcd.log
for attempt in 1 2 3; do
  pick_port; ETCD_PORT=$PORT; pick_port; ETCD_PEER_PORT=$PORT
  ETCD_URL=http://127.0.0.1:$ETCD_PORT
  rm -rf "$W/etcd-data"; mkdir -m 700 "$W/etcd-data"
  log "starting etcd on $ETCD_URL (attempt $attempt)"
  # shellcheck disable=SC2086
  start_bg "$ETCD_LOG" "$BIN/etcd" \
    --name=strait-test \
    --data-dir="$W/etcd-data" \
    --listen-client-urls="$ETCD_URL" \
    --advertise-client-urls="$ETCD_URL" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="strait-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --unsafe-no-fsync=true \
    ${STRAIT_ETCD_EXTRA_ARGS:-}
  ETCD_PID=$LAST_PID
  rc=0; wait_ready "$ETCD_PID" curl -fsS "$ETCD_URL/health" || rc=$?
  [[ $rc -eq 0 ]] && break
  if [[ $rc -eq 1 ]] && addr_in_use "$ETCD_LOG" && [[ $attempt -lt 3 ]]; then
    log "etcd port clash, retrying with other ports"; continue
  fi
  tail_log "$ETCD_LOG"
  [[ $rc -eq 1 ]] && die "etcd exited during startup (log: $ETCD_LOG)"
  die "etcd not healthy after ${TIMEOUT}s (log: $ETCD_LOG)"
done
printf '%s\n' "$ETCD_PID" >"$W/pids"

# --- kube-apiserver ----------------------------------------------------------
API_LOG=$W/logs/kube-apiserver.log
CURL_TLS=(--cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key")
api_ready() {
  curl -fsS "${CURL_TLS[@]}" "$API_URL/readyz" &&
  curl -fsS "${CURL_TLS[@]}" "$API_URL/api/v1/namespaces/default"
}
for attempt in 1 2 3; do
  pick_port; API_PORT=$PORT
  API_URL=https://127.0.0.1:$API_PORT
  log "starting kube-apiserver on $API_URL (attempt $attempt)"
  # shellcheck disable=SC2086
  start_bg "$API_LOG" "$BIN/kube-apiserver" \
    --etcd-servers="$ETCD_URL" \
    --bind-address=127.0.0.1 \
    --secure-port="$API_PORT" \
    --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --cert-dir="$W/pki" \
    --tls-cert-file="$P/apiserver.crt" \
    --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer="$SA_ISSUER" \
    --api-audiences="$SA_ISSUER" \
    --service-account-key-file="$P/sa.pub" \
    --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --allow-privileged=true \
    ${STRAIT_APISERVER_EXTRA_ARGS:-}
  API_PID=$LAST_PID
  rc=0; wait_ready "$API_PID" api_ready || rc=$?
  [[ $rc -eq 0 ]] && break
  if [[ $rc -eq 1 ]] && addr_in_use "$API_LOG" && [[ $attempt -lt 3 ]]; then
    log "kube-apiserver port clash, retrying with another port"; continue
  fi
  tail_log "$API_LOG" 60
  if [[ $rc -eq 2 ]]; then
    log "readyz: $(curl -sS "${CURL_TLS[@]}" "$API_URL/readyz?verbose" 2>&1 | grep -v '^\[+\]' | tail -n 20)"
    die "kube-apiserver not ready after ${TIMEOUT}s (log: $API_LOG)"
  fi
  die "kube-apiserver exited during startup (log: $API_LOG)"
done
printf '%s\n' "$API_PID" >>"$W/pids"

# --- kubeconfig + env --------------------------------------------------------
b64() { base64 -w0 <"$1"; }
(
  umask 077
  cat >"$W/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: strait-test
  cluster:
    server: $API_URL
    certificate-authority-data: $(b64 "$P/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$P/admin.crt")
    client-key-data: $(b64 "$P/admin.key")
contexts:
- name: strait-test
  context:
    cluster: strait-test
    user: admin
current-context: strait-test
EOF
  cat >"$W/env" <<EOF
KUBECONFIG=$W/kubeconfig
STRAIT_APISERVER_URL=$API_URL
STRAIT_APISERVER_PORT=$API_PORT
STRAIT_ETCD_URL=$ETCD_URL
STRAIT_CA_FILE=$P/ca.crt
STRAIT_SA_ISSUER=$SA_ISSUER
STRAIT_K8S_BIN=$BIN
EOF
)

trap - EXIT
log "ready: kube-apiserver $API_URL (pid $API_PID), etcd $ETCD_URL (pid $ETCD_PID)"
printf 'KUBECONFIG=%s\n' "$W/kubeconfig"
