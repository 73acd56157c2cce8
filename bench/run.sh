#!/usr/bin/env bash
# Strait benchmark: the direct path, HAProxy and strait-proxy, side by side,
# in one run, on this machine. See docs/benchmarks.md for what is measured.
#
#   bench/run.sh            # installs what is missing, builds, runs (~4 min)
#
# Environment knobs (defaults in brackets):
#   BENCH_PORT_BASE [21100]  loopback ports BASE+40..BASE+91 are used (keep
#                            them below the ephemeral range, 32768+)
#   BENCH_DURATION  [5]      seconds of each throughput round
#   BENCH_TPUT_ROUNDS [3]    interleaved rounds of each throughput measurement
#   BENCH_LAT_ROUNDS [3]     interleaved rounds of each one-hop latency measurement
#   BENCH_MTLS_LAT_ROUNDS [9] interleaved rounds of the mTLS pairs' latency
#   BENCH_LAT_DURATION [10]  seconds of each 1,000 rps round
#   BENCH_LAT5K_DURATION [5] seconds of each 5,000 rps round
#   BENCH_CONNS     [50]     HTTP/1.1 connections (wrk and oha)
#   BENCH_BUILD     [1]      0 skips building the proxy (scripts/build-dist.sh)
#   BENCH_CACHE     [~/.cache/strait-bench]  where oha is installed
#   BENCH_NICE      [-20]    nice of the run (and its autogroup); 0 leaves it
#   BENCH_SPIN      [1]      keep the proxy's core out of idle halt during
#                            latency runs (a SCHED_IDLE busy loop); 0: don't
#   BENCH_WAIT_QUIET [0]     wait up to this many seconds for the machine to be
#                            idle (<10 % CPU) before measuring
#   BENCH_ONLY      []       `mtls`: only the two-hop mTLS pairs (bench/mtls.sh);
#                            `spans`: only span export against none
#                            (bench/spans.sh); for iterating on them, the
#                            one-hop rows stay empty
#
# Pinning (2 cores): CPU 1 runs the proxy under test (HAProxy or strait-proxy,
# each one whole process, all its threads); CPU 0 runs the upstream (nginx,
# one worker) and the load generator. Only 127.0.0.1 is ever contacted.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=../scripts/loopback-mesh.sh
. "$ROOT/scripts/loopback-mesh.sh"
BASE="${BENCH_PORT_BASE:-21100}"
DUR="${BENCH_DURATION:-5}"
TPUT_ROUNDS="${BENCH_TPUT_ROUNDS:-3}"
LAT_DUR="${BENCH_LAT_DURATION:-10}"
LAT5K_DUR="${BENCH_LAT5K_DURATION:-5}"
ROUNDS="${BENCH_LAT_ROUNDS:-3}"
CONNS="${BENCH_CONNS:-50}"
H2_CLIENTS=10   # h2load connections
H2_STREAMS=10   # concurrent streams per h2 connection
WARM=2          # seconds of unmeasured warm-up before each measured run
OHA_VERSION=1.16.0
CACHE="${BENCH_CACHE:-$HOME/.cache/strait-bench}"
OHA="$CACHE/bin/oha"
ENDPOINTS=1000  # endpoints strait-proxy knows (2 real + filler)

P_UP_H1=$((BASE + 80))  P_UP_H2=$((BASE + 81))
P_HA_H1=$((BASE + 50))  P_HA_H2=$((BASE + 51))
P_ST_OUT=$((BASE + 40)) P_ST_IN=$((BASE + 43)) P_ST_ADMIN=$((BASE + 91))

START_TS=$(date +%s)
log() { printf '[bench %3ss] %s\n' "$(($(date +%s) - START_TS))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v haproxy >/dev/null || need_pkgs+=(haproxy)
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v h2load >/dev/null || need_pkgs+=(nghttp2-client)
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v openssl >/dev/null || need_pkgs+=(openssl)   # the mTLS pair's CA (bench/mtls.sh)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
command -v ss >/dev/null || need_pkgs+=(iproute2)
if ((${#need_pkgs[@]})); then
    log "installing Debian packages: ${need_pkgs[*]}"
    # In a container (policy-rc.d, no init) the packaged services stay down;
    # on a host with systemd they start on their default ports. Either way
    # the benchmark runs its own instances on the ports above.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi
if ! [ -x "$OHA" ] || [ "$("$OHA" --version 2>/dev/null)" != "oha $OHA_VERSION" ]; then
    log "installing oha $OHA_VERSION into $CACHE (once; ~4 min on 2 cores)"
    cargo install oha --version "$OHA_VERSION" --locked --root "$CACHE" >&2
fi

BUILD_NOTE=""
if [ "${BENCH_BUILD:-1}" != 0 ]; then
    log "scripts/build-dist.sh (what ships: profile.dist, static glibc, profile-guided)"
    if ! STRAIT="$("$ROOT/scripts/build-dist.sh")"; then
        # No llvm-profdata for rustc's LLVM here, or the training failed:
        # measure the build without the profile, and say so in the table.
        log "WARNING: the profile-guided build failed (above); building with STRAIT_PGO=0"
        STRAIT="$(STRAIT_PGO=0 "$ROOT/scripts/build-dist.sh")"
        BUILD_NOTE=" without its profile step (STRAIT_PGO=0)"
    fi
else
    STRAIT="$("$ROOT/scripts/build-dist.sh" --path)"
fi
[ -x "$STRAIT" ] || die "no $STRAIT"
# The controller only signs the mTLS pair's certificates (bench/mtls.sh), on
# the other core, before anything is measured: the everyday release build.
CONTROLLER="$ROOT/target/release/strait-controller"
if [ "${BENCH_BUILD:-1}" != 0 ]; then
    log "cargo build --release -p strait-control-plane -p strait-cli (the mTLS pair's CA, strait tap)"
    (cd "$ROOT" && cargo build -q --release --locked -p strait-control-plane --bin strait-controller -p strait-cli --bin strait >&2)
fi
[ -x "$CONTROLLER" ] || die "no $CONTROLLER (cargo build --release -p strait-control-plane)"
[ -x "$ROOT/target/release/strait" ] || die "no $ROOT/target/release/strait (cargo build --release -p strait-cli)"
# Jaeger, the live collector of the span-export rows (built from the Go
# module proxy on first use, then cached; before anything is measured).
JAEGER="$("$ROOT/tests/k8s-tools/jaeger/install.sh" | tail -1)"
[ -x "$JAEGER" ] || die "no Jaeger (tests/k8s-tools/jaeger/install.sh)"
if [ "${BENCH_BUILD:-1}" != 0 ]; then
    STRAIT_VERSION="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    (cd "$ROOT" && git diff --quiet HEAD -- proxy api Cargo.lock Cargo.toml scripts 2>/dev/null) || STRAIT_VERSION+="+uncommitted changes"
    STRAIT_VERSION+="$BUILD_NOTE"
else
    STRAIT_VERSION="binary built $(date -u -r "$STRAIT" +%FT%TZ)"
fi

for p in $P_UP_H1 $P_UP_H2 $P_HA_H1 $P_HA_H2 $P_ST_OUT $P_ST_IN $P_ST_ADMIN; do
    [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use; set BENCH_PORT_BASE"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# On a machine shared with builds, give this run (and all it starts) the CPU
# first: nice for the process tree, and for its scheduler autogroup, since
# with autogroups CFS shares the CPU between sessions before nice counts.
NICE="${BENCH_NICE:--20}"
AUTOGROUP_NICE=""
if [ "$NICE" != 0 ]; then
    renice -n "$NICE" -p $$ >/dev/null 2>&1 || log "cannot renice; running at normal priority"
    if [ -w /proc/self/autogroup ]; then
        AUTOGROUP_NICE=$(awk '{print $3}' /proc/self/autogroup)
        echo "$NICE" >/proc/self/autogroup 2>/dev/null || AUTOGROUP_NICE=""
    fi
fi

# ---------------------------------------------------------------- processes
WORK="$(mktemp -d /tmp/strait-bench.XXXXXX)"
RAW="$WORK/raw"
mkdir -p "$RAW" "$WORK/manifests" "$WORK/nginx"
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -d "$RAW" ]; then
        rm -rf "$HERE/results/raw"
        mkdir -p "$HERE/results"
        cp -r "$RAW" "$HERE/results/raw" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    [ -z "$AUTOGROUP_NICE" ] || echo "$AUTOGROUP_NICE" >/proc/self/autogroup 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# Upstream: nginx, one worker, HTTP/1.1 and h2c ports (scripts/loopback-mesh.sh).
nginx_conf "$WORK/nginx" "$P_UP_H1" "$P_UP_H2" >"$WORK/nginx.conf"
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>"$RAW/nginx.stderr" &
NGX_PID=$!
PIDS+=($NGX_PID)

# HAProxy: one thread, HTTP mode, keep-alive and connection reuse upstream.
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe_h1
  bind 127.0.0.1:$P_HA_H1
  default_backend be_h1
backend be_h1
  server up1 127.0.0.1:$P_UP_H1
frontend fe_h2
  bind 127.0.0.1:$P_HA_H2 proto h2
  default_backend be_h2
backend be_h2
  server up2 127.0.0.1:$P_UP_H2 proto h2
EOF
haproxy -c -q -f "$WORK/haproxy.cfg" >&2 || die "haproxy config invalid"
taskset -c 1 haproxy -db -f "$WORK/haproxy.cfg" >"$RAW/haproxy.stderr" 2>&1 &
HA_PID=$!
PIDS+=($HA_PID)

# strait-proxy's config: Service `web` (HTTP/1.1 upstream) and `web-h2` (h2c
# upstream), one endpoint each, plus filler Services whose endpoints (in
# 127.0.0.0/8, nothing listening) bring the total to $ENDPOINTS.
{
    svc web "$P_UP_H1" 127.0.0.1
    svc web-h2 "$P_UP_H2" 127.0.0.1
} >"$WORK/manifests/web.yaml"
filler_services $((ENDPOINTS - 2)) >"$WORK/manifests/filler.yaml"

taskset -c 1 "$STRAIT" --local "$WORK/manifests" \
    --outbound-addr 127.0.0.1:$P_ST_OUT --inbound-addr 127.0.0.1:$P_ST_IN \
    --admin-addr 127.0.0.1:$P_ST_ADMIN --workers 1 --log warn \
    >"$RAW/strait.stderr" 2>&1 &
ST_PID=$!
PIDS+=($ST_PID)

for _ in $(seq 100); do
    curl -sf "127.0.0.1:$P_ST_ADMIN/ready" >/dev/null 2>&1 && break
    kill -0 $ST_PID 2>/dev/null || die "strait-proxy exited: $(tail -5 "$RAW/strait.stderr")"
    sleep 0.2
done
curl -sf "127.0.0.1:$P_ST_ADMIN/ready" >/dev/null || die "strait-proxy not ready"
known=$(curl -sf "127.0.0.1:$P_ST_ADMIN/config" | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoints"])')
[ "$known" = "$ENDPOINTS" ] || die "strait-proxy knows $known endpoints, want $ENDPOINTS"

# Every path must answer 200 with the upstream's body before anything is timed.
check() { # what curl-args...
    local what=$1; shift
    local out
    out=$(curl -s --max-time 5 -o - -w ' %{http_code} %{http_version}' "$@") || die "$what: curl failed"
    [[ $out == "hello from upstream"*" 200 "* ]] || die "$what: unexpected answer: $out"
}
for _ in $(seq 50); do curl -s -o /dev/null "127.0.0.1:$P_UP_H1/" && curl -s -o /dev/null "127.0.0.1:$P_HA_H1/" && break; sleep 0.1; done
check "direct h1" "http://127.0.0.1:$P_UP_H1/"
check "direct h2" --http2-prior-knowledge "http://127.0.0.1:$P_UP_H2/"
check "haproxy h1" "http://127.0.0.1:$P_HA_H1/"
check "haproxy h2" --http2-prior-knowledge "http://127.0.0.1:$P_HA_H2/"
check "strait h1" -H 'Host: web' "http://127.0.0.1:$P_ST_OUT/"
check "strait h2" --http2-prior-knowledge -H 'Host: web-h2' "http://127.0.0.1:$P_ST_OUT/"
log "all paths answer 200; strait-proxy knows $known endpoints"

# ---------------------------------------------------------------- measuring
CLK=$(getconf CLK_TCK)
pid_of() { # the proxy (a pair: client side, then server side) a target's CPU and RSS are of
    case $1 in
        haproxy) echo $HA_PID ;; strait) echo $ST_PID ;; sttrace) echo $TR_PID ;;
        hapair) echo "$HAC_PID $HAS_PID" ;; stpair) echo "$SC_PID $SS_PID" ;;
        *) echo "" ;;
    esac
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime
pids_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(ticks "$p"))); done; echo $t; }
rss_kb() { # PID [FIELD]: sum of VmRSS (or FIELD) of a process and its children, kB
    local total=0 p v field=${2:-VmRSS}
    for p in "$1" $(pgrep -P "$1" || true); do
        v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo $total
}
core1_busy() { awk '/^cpu1 /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# CPU time (ticks) in user+nice+system on both cores, and what of it was ours:
# the proxies, nginx, and the children this shell waited for (the generator).
all_busy() { awk '/^cpu /{print $2 + $3 + $4}' /proc/stat; }
tree_ticks() { local t=0 p; for p in "$@" $(pgrep -P "$1" || true); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
ours_ticks() { # ticks of proxies + nginx + waited-for children of this shell
    local f="$WORK/times" kids
    times >"$f"
    kids=$(tail -1 "$f" | awk -v clk="$CLK" '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%d", s * clk }')
    local spin=0 p
    for p in "${SPIN_PIDS[@]}"; do spin=$((spin + $(ticks "$p" 2>/dev/null || echo 0))); done
    local pairs=0
    for p in ${HAC_PID:-} ${HAS_PID:-} ${SC_PID:-} ${SS_PID:-} ${TR_PID:-} ${JG_PID:-}; do pairs=$((pairs + $(ticks "$p" 2>/dev/null || echo 0))); done
    echo $(($(tree_ticks $NGX_PID) + $(ticks $HA_PID) + $(ticks $ST_PID) + pairs + kids + spin))
}
conns_to() { ss -Htn state established "dst 127.0.0.1:$1" | wc -l; }

h1_url() { case $1 in direct) echo "http://127.0.0.1:$P_UP_H1/" ;; haproxy) echo "http://127.0.0.1:$P_HA_H1/" ;; strait) echo "http://127.0.0.1:$P_ST_OUT/" ;; sttrace) echo "http://127.0.0.1:$P_TR_OUT/" ;; esac; }
h2_url() { case $1 in direct) echo "http://127.0.0.1:$P_UP_H2/" ;; haproxy) echo "http://127.0.0.1:$P_HA_H2/" ;; strait) echo "http://127.0.0.1:$P_ST_OUT/" ;; esac; }

# measure NAME TARGET UPSTREAM_PORT cmd...: runs cmd on CPU 0, records its
# output and the proxy's CPU ticks, peak RSS and whether it survived.
measure() {
    local name=$1 target=$2 up=$3; shift 3
    local pid pid2; read -r pid pid2 <<<"$(pid_of "$target")"
    local t0=0 t1=0 c0 c1 w0 w1 sampler=""
    local base="$RAW/$name-$target"
    if [ -n "$pid" ]; then
        t0=$(pids_ticks $pid $pid2)
        (
            trap - ERR
            set +e
            max=0 maxc=0 maxa=0 max2=0
            while :; do
                r=$(rss_kb "$pid"); c=$(conns_to "$up"); a=$(rss_kb "$pid" RssAnon)
                ((r > max)) && max=$r
                ((c > maxc)) && maxc=$c
                ((a > maxa)) && maxa=$a
                if [ -n "$pid2" ]; then r2=$(rss_kb "$pid2"); ((r2 > max2)) && max2=$r2; fi
                echo "$max $maxc $maxa $max2" >"$base.rss.tmp" && mv "$base.rss.tmp" "$base.rss"
                sleep 0.5
            done
        ) &
        sampler=$!
    fi
    c0=$(core1_busy); a0=$(all_busy); o0=$(ours_ticks); w0=$(date +%s.%N)
    taskset -c 0 "$@" >"$base.out" 2>"$base.err" || log "$name $target: load generator exited $?"
    w1=$(date +%s.%N); c1=$(core1_busy); a1=$(all_busy); o1=$(ours_ticks)
    if [ -n "$pid" ]; then
        kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
        if kill -0 "$pid" 2>/dev/null && { [ -z "$pid2" ] || kill -0 "$pid2" 2>/dev/null; }; then
            t1=$(pids_ticks $pid $pid2); alive=1
        else
            alive=0
        fi
    else
        alive=1
    fi
    rss=0 conns=0 anon=0 rss2=0
    if [ -s "$base.rss" ]; then read -r rss conns anon rss2 <"$base.rss" || true; fi
    rm -f "$base.rss.tmp"
    cat >"$base.meta" <<EOF
{"cpu_s": $(python3 -c "print(($t1 - $t0) / $CLK)"), "wall_s": $(python3 -c "print($w1 - $w0)"), "core1_busy_s": $(python3 -c "print(($c1 - $c0) / $CLK)"), "others_cpu_s": $(python3 -c "print(max(0, ($a1 - $a0) - ($o1 - $o0)) / $CLK)"), "rss_max_kb": $rss, "rss_anon_max_kb": $anon, "rss2_max_kb": ${rss2:-0}, "upstream_conns_max": $conns, "alive": $alive}
EOF
    ((alive)) || die "$target died during $name: $(tail -5 "$RAW/$target.stderr")"
}

TARGETS=(direct haproxy strait)
busy_pct() { # % of both cores busy over 5 s
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep 5
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    echo "$a $b" | awk '{ busy = $3 - $1; idle = $4 - $2; printf "%.0f", 100 * busy / (busy + idle) }'
}
busy=$(busy_pct)
waited=0
while ((busy > 10 && waited < ${BENCH_WAIT_QUIET:-0})); do
    log "machine ${busy}% busy before measuring; waiting for it to quiet down (BENCH_WAIT_QUIET)"
    sleep 5; waited=$((waited + 10)); busy=$(busy_pct)
done
((busy <= 10)) || log "WARNING: the machine is ${busy}% busy with other work; numbers will be noisy"
for t in haproxy strait; do
    echo "{\"rss_kb\": $(rss_kb "$(pid_of $t)"), \"rss_anon_kb\": $(rss_kb "$(pid_of $t)" RssAnon)}" >"$RAW/idle-$t.json"
done
log "idle RSS: haproxy $(rss_kb $HA_PID) kB, strait $(rss_kb $ST_PID) kB; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "{\"rounds\": $ROUNDS, \"lat_s\": $LAT_DUR, \"lat5k_s\": $LAT5K_DUR, \"dur_s\": $DUR, \"tput_rounds\": $TPUT_ROUNDS, \"start\": \"$(date -u +%FT%TZ)\", \"loadavg_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"busy_before_pct\": $busy}" >"$RAW/run-start.json"

# Keeping the proxy's core awake during latency runs (BENCH_SPIN=1): in this
# VM an idle vCPU halts, and waking it for the next request costs about a
# millisecond now and then, which would dominate every proxy's p99 at 1,000
# rps (a proxy hop crosses cores; the direct path does not). A busy loop on
# CPU 1 at SCHED_IDLE keeps it out of halt; the proxy preempts it at once.
# It stays in this run's autogroup: there its weight is next to nothing, so
# other people's builds lose nothing to it. (Measured: a loop in its own
# autogroup did not help, and one on CPU 0 made the client side worse.)
SPIN_PIDS=()
spin_start() {
    [ "${BENCH_SPIN:-1}" = 1 ] || return 0
    chrt -i 0 taskset -c 1 sh -c 'while :; do :; done' >/dev/null 2>&1 &
    SPIN_PIDS=($!)
    PIDS+=("${SPIN_PIDS[@]}")
}
spin_stop() {
    local p
    for p in "${SPIN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    SPIN_PIDS=()
}

ONLY="${BENCH_ONLY:-}"
case "$ONLY" in "" | mtls | spans) ;; *) die "BENCH_ONLY: \`mtls' or \`spans'" ;; esac
if [ -z "$ONLY" ]; then
# Latency: interleaved rounds (direct, HAProxy, strait, direct, ...) so that
# drift and one-off stalls show up as spread between rounds, not as a verdict.
spin_start
for rate in 1000 5000; do
    secs=$LAT_DUR; [ "$rate" = 5000 ] && secs=$LAT5K_DUR
    for t in "${TARGETS[@]}"; do
        taskset -c 0 "$OHA" -q "$rate" -z "${WARM}s" -c "$CONNS" -w --no-tui --output-format quiet --host web "$(h1_url $t)" >/dev/null 2>&1 || true
    done
    for r in $(seq "$ROUNDS"); do
        for t in "${TARGETS[@]}"; do
            log "latency at $rate rps, round $r/$ROUNDS, $t (${secs}s)"
            measure "lat$rate.r$r" "$t" "$P_UP_H1" "$OHA" -q "$rate" -z "${secs}s" -c "$CONNS" \
                --latency-correction -w --no-tui --output-format json --host web "$(h1_url $t)"
        done
    done
done
spin_stop

# Throughput: interleaved rounds too. This VM's speed drifts by 10-20 %
# within a minute (other tenants), so one run per proxy, minutes apart,
# can put the drift into the ratio; rounds seconds apart compare like with
# like, and the verdict takes the median of the per-round ratios.
for t in "${TARGETS[@]}"; do
    taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARM}s" -H 'Host: web' "$(h1_url $t)" >/dev/null 2>&1 || true
done
for r in $(seq "$TPUT_ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        log "HTTP/1.1 throughput, round $r/$TPUT_ROUNDS, $t (${DUR}s)"
        measure "h1.r$r" "$t" "$P_UP_H1" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: web' "$(h1_url $t)"
    done
done

# One `strait tap` attached (reading every request as JSON, into
# /dev/null, on CPU 0 with the load generator), against none: interleaved.
TAP_CLI="$ROOT/target/release/strait"
for r in $(seq "$TPUT_ROUNDS"); do
    log "HTTP/1.1 throughput without and with a strait tap, round $r/$TPUT_ROUNDS (2 × ${DUR}s)"
    measure "h1base.r$r" strait "$P_UP_H1" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: web' "$(h1_url strait)"
    taskset -c 0 "$TAP_CLI" tap --admin "127.0.0.1:$P_ST_ADMIN" --json >/dev/null 2>"$RAW/tap.r$r.stderr" &
    TAP_PID=$!
    sleep 0.5
    kill -0 $TAP_PID 2>/dev/null || die "strait tap exited: $(cat "$RAW/tap.r$r.stderr")"
    measure "h1tap.r$r" strait "$P_UP_H1" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: web' "$(h1_url strait)"
    kill $TAP_PID 2>/dev/null || true
    wait $TAP_PID 2>/dev/null || true
done

for t in "${TARGETS[@]}"; do
    taskset -c 0 h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS -D "$WARM" -H ':authority: web-h2' "$(h2_url $t)" >/dev/null 2>&1 || true
done
for r in $(seq "$TPUT_ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        log "HTTP/2 throughput, round $r/$TPUT_ROUNDS, $t (${DUR}s)"
        measure "h2.r$r" "$t" "$P_UP_H2" h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS -D "$DUR" -H ':authority: web-h2' "$(h2_url $t)"
    done
done

fi

# Span export against none (a second strait-proxy and Jaeger, started now).
# shellcheck source=spans.sh
if [ -z "$ONLY" ] || [ "$ONLY" = spans ]; then . "$HERE/spans.sh"; fi

# Two hops with mTLS (its own processes, started now, after the one-hop runs).
# shellcheck source=mtls.sh
if [ -z "$ONLY" ] || [ "$ONLY" = mtls ]; then . "$HERE/mtls.sh"; fi

sleep 2
for t in haproxy strait; do
    echo "{\"rss_kb\": $(rss_kb "$(pid_of $t)"), \"rss_anon_kb\": $(rss_kb "$(pid_of $t)" RssAnon)}" >"$RAW/after-$t.json"
done
curl -sf "127.0.0.1:$P_ST_ADMIN/metrics" >"$RAW/strait-metrics.txt" || true
cat >"$RAW/run-end.json" <<EOF
{"end": "$(date -u +%FT%TZ)", "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)", "elapsed_s": $(($(date +%s) - START_TS)),
 "versions": {"haproxy": "$(haproxy -v | head -1 | awk '{print $3}')", "nginx": "$(nginx -v 2>&1 | sed 's|.*/||')",
  "wrk": "$( (wrk -v 2>&1 || true) | head -1 | awk '{print $2}')", "h2load": "$(h2load --version | sed 's|.*/||')",
  "oha": "$("$OHA" --version | awk '{print $2}')", "strait": "$STRAIT_VERSION",
  "kernel": "$(uname -r)", "cpu": "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"},
 "pinning": "CPU 1: proxy under test; CPU 0: nginx (1 worker) + load generator", "nice": "$NICE", "spin": "${BENCH_SPIN:-1}"}
EOF

mkdir -p "$HERE/results"
python3 "$HERE/report.py" "$RAW" | tee "$HERE/results/latest.md"
log "done in $(($(date +%s) - START_TS)) s; table in bench/results/latest.md, raw output in bench/results/raw/"
