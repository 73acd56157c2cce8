#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this machine, for the
# cluster tests and the cluster demo:
#
#   KUBECONFIG=$(tests/cluster/up.sh | tail -1)
#   tests/cluster/down.sh          # removes everything up.sh made
#
# What runs (every binary from the pinned release in tests/k8s-tools, built
# and cached by tests/cluster/install.sh; containerd, runc and the CNI
# plugins from Debian):
#   etcd, kube-apiserver (admission webhooks on, service-account issuer and
#   signing keys: projected tokens and TokenReview work), kube-controller-
#   manager, kube-scheduler, containerd (CRI), kubelet (node `strait-node`),
#   kube-proxy (iptables mode), and CoreDNS as a Deployment behind the
#   `kube-dns` Service. Images (Strait's, the test app, pause, CoreDNS) are
#   built by tests/cluster/images.sh and imported into containerd, so
#   `helm install strait helm/strait` needs no registry.
#
# Network (all on this machine; nothing is routed off it):
#   bridge strait0 10.244.0.1/24: the node's address and the pods' gateway
#   pods 10.244.0.0/24 (CNI bridge + host-local), Services 10.96.0.0/16
#   (routed to strait0 so an address kube-proxy does not translate dies on
#   the bridge), kube-apiserver https://10.244.0.1:6443, DNS 10.96.0.10.
#   A filter chain drops anything pods send off the bridge.
#
# cgroups: the kubelet and containerd use the `cgroupfs` driver, because no
# systemd runs here (PID 1 is the VM's init), and the systemd driver needs
# systemd over D-Bus. This host mounts cgroup v1, which Kubernetes 1.35+
# refuses unless the kubelet says `failCgroupV1: false`.
#
# If a cluster is already up in the state dir, up.sh says so and reuses it.
# The last line of stdout is the kubeconfig's path; progress goes to stderr.
#
# Environment:
#   STRAIT_CLUSTER_DIR       state dir (default /tmp/strait-cluster)
#   STRAIT_CLUSTER_TIMEOUT   seconds to wait for each step (default 180)
#   STRAIT_IMAGE_PROFILE     release (default) or dist: see images.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cluster/common.sh
. "$HERE/common.sh"
log() { printf 'cluster-up: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
TIMEOUT=${STRAIT_CLUSTER_TIMEOUT:-180}
T_START=$(date +%s)
step() { log "[$(( $(date +%s) - T_START ))s] $*"; }

[[ $(id -u) == 0 ]] || die "needs root (containerd, kubelet, iptables, network namespaces)"

# --- reuse a cluster that is already up ---------------------------------------
if [[ -f $DIR/kubeconfig && -f $DIR/pids ]]; then
  alive=1
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || { alive=0; log "$name (pid $pid) is not running"; }
  done <"$DIR/pids"
  if ((alive)) && kubectl --kubeconfig "$DIR/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    log "a cluster is already up in $DIR; reusing it (tests/cluster/down.sh removes it)"
    printf '%s\n' "$DIR/kubeconfig"
    exit 0
  fi
  log "a cluster in $DIR is partly down; removing it first"
  "$HERE/down.sh" >&2
fi

# --- what the node needs from Debian -------------------------------------------
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v conntrack >/dev/null || need+=(conntrack)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v buildah >/dev/null || need+=(buildah)
command -v file >/dev/null || need+=(file)
[[ -x /usr/bin/python3 ]] || need+=(python3)
if ((${#need[@]})); then
  step "installing ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >&2 ||
    die "cannot install ${need[*]}"
fi

step "building or restoring the cluster's tools"
BIN=$("$HERE/install.sh" | tail -1)
step "building or restoring the images"
IMAGES=$("$HERE/images.sh" | tail -1)

rm -rf "$DIR"
mkdir -p "$DIR"/{pki,logs,etcd,cni/net.d,cni/ipam,kubelet,pod-logs,containerd}
chmod 700 "$DIR/etcd"
: >"$DIR/pids"
STARTED=()
cleanup_on_error() {
  local rc=$?
  if ((rc != 0)); then
    log "start failed; logs are in $DIR/logs; removing what was started"
    "$HERE/down.sh" --keep-logs >&2 || true
  fi
}
trap cleanup_on_error EXIT

start_bg() { # start_bg <name> <cmd...>
  local name=$1; shift
  setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 9>&- &
  local pid=$!
  disown "$pid"
  printf '%s %s\n' "$name" "$pid" >>"$DIR/pids"
  LAST_PID=$pid
}
wait_for() { # wait_for <what> <pid or 0> <probe cmd...>
  local what=$1 pid=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    if ((pid)) && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$DIR/logs/$what.log" >&2 2>/dev/null || true
      die "$what exited during start (log: $DIR/logs/$what.log)"
    fi
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  tail -n 40 "$DIR/logs/$what.log" >&2 2>/dev/null || true
  die "$what not ready after ${TIMEOUT}s"
}

# --- host network: bridge, routes, forwarding ----------------------------------
step "host network: bridge $BRIDGE $NODE_IP/24, Services $SERVICE_CIDR"
for s in "${SYSCTLS[@]}"; do
  printf '%s %s\n' "$s" "$(sysctl -n "$s" 2>/dev/null || echo -)"
done >"$DIR/sysctl.saved"
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "no bridge-nf-call-iptables (hairpin Service traffic may fail)"
ip link add "$BRIDGE" type bridge 2>/dev/null || true
ip addr replace "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
iptables -w -N "$FWD_CHAIN" 2>/dev/null || iptables -w -F "$FWD_CHAIN"
iptables -w -A "$FWD_CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
iptables -w -A "$FWD_CHAIN" -i "$BRIDGE" -j DROP
iptables -w -A "$FWD_CHAIN" -o "$BRIDGE" -j DROP
iptables -w -C FORWARD -j "$FWD_CHAIN" 2>/dev/null || iptables -w -I FORWARD 1 -j "$FWD_CHAIN"

# --- certificates ---------------------------------------------------------------
step "certificates in $DIR/pki"
P=$DIR/pki
(
  umask 077
  cd "$P"
  exec >"$P/openssl.log" 2>&1
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
    -subj "/CN=strait-cluster-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  leaf() { # leaf <name> <subject> <extendedKeyUsage> [subjectAltName]
    openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' \
      "$3" "${4:+subjectAltName=$4
}" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out "$1.crt" -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
  }
  leaf apiserver /CN=kube-apiserver serverAuth \
    "IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:$NODE,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  leaf admin "/O=system:masters/CN=admin" clientAuth
  leaf apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  leaf kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
  leaf controller-manager /CN=system:kube-controller-manager clientAuth
  leaf scheduler /CN=system:kube-scheduler clientAuth
  leaf kube-proxy /CN=system:kube-proxy clientAuth
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
  openssl pkey -in sa.key -pubout -out sa.pub
) || die "openssl failed: $(tail -n 20 "$P/openssl.log")"

kubeconfig() { # kubeconfig <file> <user cert/key name>
  (umask 077; cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: strait
  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority-data: $(base64 -w0 <"$P/ca.crt")}
users:
- name: $2
  user: {client-certificate-data: $(base64 -w0 <"$P/$2.crt"), client-key-data: $(base64 -w0 <"$P/$2.key")}
contexts:
- name: strait
  context: {cluster: strait, user: $2}
current-context: strait
EOF
  )
}
for u in admin kubelet controller-manager scheduler kube-proxy; do kubeconfig "$DIR/$u.kubeconfig" "$u"; done
K=(kubectl --kubeconfig "$DIR/admin.kubeconfig")

# --- etcd and kube-apiserver -----------------------------------------------------
step "etcd"
start_bg etcd "$BIN/etcd" --name=strait --data-dir="$DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="strait=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync=true
wait_for etcd "$LAST_PID" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

step "kube-apiserver"
start_bg kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction \
  --service-account-issuer="$SA_ISSUER" --api-audiences="$SA_ISSUER" \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --allow-privileged=true --profiling=false
wait_for kube-apiserver "$LAST_PID" "${K[@]}" get --raw /readyz
cp "$DIR/admin.kubeconfig" "$DIR/kubeconfig"

step "kube-controller-manager, kube-scheduler"
start_bg kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
start_bg kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig="$DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false

# --- containerd, images, CNI -----------------------------------------------------
step "containerd"
cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # root here lacks CAP_SYS_RESOURCE, so a negative oom_score_adj is refused;
  # without this every sandbox fails with runc's "can't get final child's PID".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$DIR/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
start_bg containerd containerd --config "$DIR/containerd/config.toml"
wait_for containerd "$LAST_PID" ctr --address "$CONTAINERD_SOCK" version

step "importing images from $IMAGES"
for tar in "$IMAGES"/current-*.tar; do
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$tar" >"$DIR/logs/import.log" 2>&1 ||
    { cat "$DIR/logs/import.log" >&2; die "ctr images import $tar failed"; }
done
ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -v '^sha256:' | sed 's/^/  /' >&2

cat >"$DIR/cni/net.d/10-strait.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "strait",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

# --- kubelet and kube-proxy --------------------------------------------------------
step "kubelet"
cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: ""
failSwapOn: false
podLogsDir: $DIR/pod-logs
# Never collect the imported images (they cannot be pulled again) and never
# evict for a full disk on a shared test machine.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
localStorageCapacityIsolation: false
serializeImagePulls: false
maxPods: 60
EOF
start_bg kubelet "$BIN/kubelet" --config="$DIR/kubelet/config.yaml" \
  --kubeconfig="$DIR/kubelet.kubeconfig" --hostname-override="$NODE" --node-ip="$NODE_IP" \
  --root-dir="$DIR/kubelet" --cert-dir="$DIR/kubelet/pki"
KUBELET_PID=$LAST_PID

step "kube-proxy (iptables)"
cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start_bg kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy.yaml"

wait_for kubelet "$KUBELET_PID" "${K[@]}" get node "$NODE"
step "waiting for node $NODE to be Ready"
wait_for kubelet "$KUBELET_PID" "${K[@]}" wait --for=condition=Ready "node/$NODE" --timeout=2s

# --- CoreDNS ---------------------------------------------------------------------
step "CoreDNS"
COREDNS_IMAGE=$(ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep '^strait.test/coredns:' | head -1)
[[ -n $COREDNS_IMAGE ]] || die "no CoreDNS image was imported"
sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" -e "s|@DNS_IP@|$DNS_IP|" "$HERE/coredns.yaml" |
  "${K[@]}" apply -f - >&2
wait_for kube-controller-manager 0 "${K[@]}" -n default get serviceaccount default
"${K[@]}" -n kube-system rollout status deploy/coredns --timeout="${TIMEOUT}s" >&2 ||
  { "${K[@]}" -n kube-system describe pods -l k8s-app=kube-dns >&2; die "CoreDNS did not start"; }
step "waiting for DNS to answer kubernetes.default.svc.cluster.local"
wait_for kube-proxy 0 python3 "$HERE/dnsquery.py" "$DNS_IP" kubernetes.default.svc.cluster.local "$API_SVC_IP"

trap - EXIT
step "cluster ready (node $NODE, kube-apiserver https://$NODE_IP:$API_PORT, state in $DIR)"
printf 'up %s\n' "$(( $(date +%s) - T_START ))" >>"$DIR/timings"
printf '%s\n' "$DIR/kubeconfig"
