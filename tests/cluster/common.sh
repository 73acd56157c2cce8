# Names, addresses and paths shared by up.sh and down.sh (sourced).
# shellcheck shell=bash
DIR=${STRAIT_CLUSTER_DIR:-/tmp/strait-cluster}
NODE=strait-node
BRIDGE=strait0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
API_PORT=6443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
SA_ISSUER=https://kubernetes.default.svc.cluster.local
CONTAINERD_SOCK=$DIR/containerd/containerd.sock
FWD_CHAIN=STRAIT-CLUSTER-FWD
# Chains the cluster's parts create: kube-proxy and the kubelet (KUBE-*),
# the CNI plugins (CNI-*), up.sh itself.
CHAIN_RE='^(KUBE-|CNI-|STRAIT-CLUSTER)'
# Kernel settings up.sh or the kubelet change; down.sh puts them back.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory
  vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
export PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH
