#!/usr/bin/env bash
# Removes everything tests/cluster/up.sh made: its processes and every
# container (and shim) they started, the pods' network namespaces and
# veths, the bridge and its routes, the iptables chains of kube-proxy, the
# kubelet, the CNI plugins and up.sh, the mounts under the state dir and the
# pods' namespaces, the cgroups the kubelet made, the kernel settings it
# changed, and the state dir itself. Safe to run when nothing is up.
#
#   tests/cluster/down.sh [--keep-logs]   (--keep-logs: leave $DIR/logs)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cluster/common.sh
. "$HERE/common.sh"
log() { printf 'cluster-down: %s\n' "$*" >&2; }
KEEP_LOGS=0
[[ ${1:-} == --keep-logs ]] && KEEP_LOGS=1

# Processes whose command line names the state dir (the cluster's parts,
# containerd's shims) or that live in one of its containers' cgroups.
ours() {
  local p
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; then echo "${p#/proc/}"; fi
  done
}

# 1. Stop the kubelet first (it would restart what we stop), then the rest.
if [[ -f $DIR/pids ]]; then
  for name in kubelet kube-proxy kube-scheduler kube-controller-manager; do
    pid=$(awk -v n="$name" '$1 == n { print $2 }' "$DIR/pids")
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
  done
fi

# 2. Every container: runc kills and deletes them (their shims then exit).
RUNC_ROOT=$DIR/containerd/runc/k8s.io
if [[ -d $RUNC_ROOT ]]; then
  for id in $(runc --root "$RUNC_ROOT" list -q 2>/dev/null); do
    runc --root "$RUNC_ROOT" kill --all "$id" KILL 2>/dev/null
  done
  sleep 0.5
  for id in $(runc --root "$RUNC_ROOT" list -q 2>/dev/null); do
    runc --root "$RUNC_ROOT" delete --force "$id" 2>/dev/null
  done
fi

# 3. Everything else of ours: TERM, then KILL what is left.
pids=$(ours)
[[ -f $DIR/pids ]] && pids="$pids $(awk '{ print $2 }' "$DIR/pids")"
for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
for _ in $(seq 40); do
  left=0
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && left=1; done
  ((left)) || break
  sleep 0.25
done
for pid in $pids $(ours); do kill -KILL "$pid" 2>/dev/null; done
sleep 0.2

# 4. Mounts: the pods' network namespaces, then everything under the state
# dir, deepest first.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
  ip netns delete "$ns" 2>/dev/null || { umount -l "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"; }
done
for _ in 1 2 3; do
  mnts=$(awk -v d="$DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  [[ -n $mnts ]] || break
  for m in $mnts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

# 5. Network: the bridge (its routes go with it), leftover veths, iptables.
for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
  ip link delete "$l" 2>/dev/null
done
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
for cmd in iptables ip6tables; do
  command -v "$cmd" >/dev/null || continue
  for table in filter nat mangle raw; do
    rules=$("$cmd" -w -t "$table" -S 2>/dev/null) || continue
    # Jumps from the built-in chains into ours first, then our chains.
    grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' <<<"$rules" |
      grep -E -- "-j (KUBE-|CNI-|STRAIT-CLUSTER)" | while read -r rule; do
        # shellcheck disable=SC2086
        "$cmd" -w -t "$table" ${rule/-A /-D } 2>/dev/null
      done
    chains=$(awk '$1 == "-N" { print $2 }' <<<"$rules" | grep -E "$CHAIN_RE")
    for c in $chains; do "$cmd" -w -t "$table" -F "$c" 2>/dev/null; done
    for c in $chains; do "$cmd" -w -t "$table" -X "$c" 2>/dev/null; done
  done
done

# 6. cgroups the kubelet made (one tree per v1 controller, or one on v2).
for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice; do
  [[ -d $root ]] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null
done

# 7. Kernel settings back as they were.
if [[ -f $DIR/sysctl.saved ]]; then
  while read -r key value; do
    [[ $value == - ]] || sysctl -qw "$key=$value" 2>/dev/null
  done <"$DIR/sysctl.saved"
fi

# 8. Shim sockets of our containers, then the state dir.
if [[ -d /run/containerd/s ]]; then
  # Only when no shim is left anywhere: then no socket there is in use.
  pgrep -f containerd-shim >/dev/null || rm -f /run/containerd/s/*
  rmdir /run/containerd/s /run/containerd 2>/dev/null
fi
if ((KEEP_LOGS)) && [[ -d $DIR/logs ]]; then
  find "$DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
else
  rm -rf "$DIR" 2>/dev/null
fi
[[ -e $DIR && $KEEP_LOGS == 0 ]] && log "could not remove all of $DIR"
log "done"
exit 0
