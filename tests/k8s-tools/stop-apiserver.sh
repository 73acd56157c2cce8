#!/usr/bin/env bash
# Stops the etcd + kube-apiserver started by start-apiserver.sh WORKDIR.
# Idempotent: succeeds if nothing is running. Kills each process's whole
# process group (start-apiserver.sh runs each in its own session), SIGTERM
# first, SIGKILL after STRAIT_STOP_GRACE seconds (default 10). A pid is only
# signalled if its command line still mentions WORKDIR, so a recycled pid is
# never hit. Data in WORKDIR is kept (logs are useful after a failure).
set -euo pipefail

log() { printf 'stop-apiserver: %s\n' "$*" >&2; }
[[ $# -eq 1 && -n $1 ]] || { log "usage: $0 WORKDIR"; exit 2; }
[[ -d $1 ]] || { log "no such workdir $1; nothing to stop"; exit 0; }
W=$(cd "$1" && pwd -P)
GRACE=${STRAIT_STOP_GRACE:-10}
[[ -f $W/pids ]] || { log "no $W/pids; nothing to stop"; exit 0; }

ours() { # ours <pid>: alive and started for this workdir
  kill -0 "$1" 2>/dev/null &&
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$W/"
}
signal() { # signal <sig> <pid>: the process group if it leads one, else the pid
  kill -"$1" -- "-$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null || true
}

PIDS=()
while read -r pid; do
  [[ $pid =~ ^[0-9]+$ ]] && ours "$pid" && PIDS=("$pid" "${PIDS[@]}")
done <"$W/pids" # reversed: kube-apiserver first, then etcd

for pid in "${PIDS[@]}"; do
  signal TERM "$pid"
  for _ in $(seq $((GRACE * 10))); do ours "$pid" || break; sleep 0.1; done
  if ours "$pid"; then
    log "pid $pid ignored SIGTERM for ${GRACE}s; sending SIGKILL"
    signal KILL "$pid"
    for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
  fi
  ours "$pid" && { log "error: pid $pid still running"; exit 1; }
  log "stopped pid $pid"
done
rm -f "$W/pids"
