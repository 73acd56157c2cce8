# Span export at 1 % to a live Jaeger against none (sourced by
# bench/run.sh, which has set up nginx, strait-proxy `strait`, the helpers
# and the pinning): the same binary and config in a second process
# (`sttrace`, on CPU 1 too), interleaved rounds.
# Jaeger runs on CPU 0 with the load generator; wrk's requests carry no
# `traceparent`, so the proxy starts every trace: 99 % leave with an
# unsampled one, 1 % are recorded and exported.
P_JG_OTLP=$((BASE + 71)) P_JG_QUERY=$((BASE + 72)) P_JG_GRPC=$((BASE + 73))
P_TR_OUT=$((BASE + 74)) P_TR_IN=$((BASE + 75)) P_TR_ADMIN=$((BASE + 76))
for p in $P_JG_OTLP $P_JG_QUERY $P_JG_GRPC $P_TR_OUT $P_TR_IN $P_TR_ADMIN; do
    [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use; set BENCH_PORT_BASE"
done
JAEGER_OTLP=$P_JG_OTLP JAEGER_QUERY=$P_JG_QUERY JAEGER_GRPC=$P_JG_GRPC \
    taskset -c 0 "$JAEGER" --config "file:$ROOT/tests/k8s-tools/jaeger/config.yaml" >"$RAW/jaeger.stderr" 2>&1 &
JG_PID=$!
PIDS+=($JG_PID)
taskset -c 1 "$STRAIT" --local "$WORK/manifests" \
    --outbound-addr 127.0.0.1:$P_TR_OUT --inbound-addr 127.0.0.1:$P_TR_IN \
    --admin-addr 127.0.0.1:$P_TR_ADMIN --workers 1 --log warn \
    --trace-collector "127.0.0.1:$P_JG_OTLP" --trace-sampling 0.01 --workload strait-bench \
    >"$RAW/sttrace.stderr" 2>&1 &
TR_PID=$!
PIDS+=($TR_PID)
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$P_TR_ADMIN/ready" >/dev/null 2>&1 &&
        curl -sf "127.0.0.1:$P_JG_QUERY/api/services" >/dev/null 2>&1 && break
    kill -0 $TR_PID 2>/dev/null || die "strait-proxy (spans) exited: $(tail -5 "$RAW/sttrace.stderr")"
    kill -0 $JG_PID 2>/dev/null || die "Jaeger exited: $(tail -5 "$RAW/jaeger.stderr")"
    sleep 0.2
done
check "strait h1 (spans)" -H 'Host: web' "http://127.0.0.1:$P_TR_OUT/"
taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARM}s" -H 'Host: web' "$(h1_url sttrace)" >/dev/null 2>&1 || true
for r in $(seq "$TPUT_ROUNDS"); do
    log "HTTP/1.1 throughput without and with span export at 1 %, round $r/$TPUT_ROUNDS (2 × ${DUR}s)"
    measure "h1nospans.r$r" strait "$P_UP_H1" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: web' "$(h1_url strait)"
    measure "h1spans.r$r" sttrace "$P_UP_H1" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: web' "$(h1_url sttrace)"
done
sleep 2  # the last batch
span_metric() { curl -sf "127.0.0.1:$P_TR_ADMIN/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }'; }
jaeger_traces=$(curl -sf "127.0.0.1:$P_JG_QUERY/api/traces?service=strait-bench&limit=100000" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("data") or []))' || echo 0)
printf '{"exported": %s, "dropped": %s, "jaeger_traces": %s, "service": "strait-bench"}\n' \
    "$(span_metric strait_spans_exported_total)" "$(span_metric strait_spans_dropped_total)" "$jaeger_traces" >"$RAW/spans.json"
log "spans: $(cat "$RAW/spans.json")"
kill $TR_PID $JG_PID 2>/dev/null || true
wait $TR_PID $JG_PID 2>/dev/null || true
TR_PID="" JG_PID=""
