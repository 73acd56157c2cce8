# Two hops with mTLS, side by side (sourced by bench/run.sh, which has set
# up nginx, the helpers and the pinning):
#
#   hapair:  client → HAProxy → TLS 1.3 with client certificates → HAProxy → nginx
#   stpair:  client → strait-proxy (outbound) → mesh mTLS → strait-proxy (inbound) → nginx
#
# Each proxy runs one thread; both proxies of a pair run on CPU 1, the
# client and nginx on CPU 0. One CA serves both pairs: openssl makes an
# ECDSA P-256 root, HAProxy's certificates are signed with it, and
# `strait-controller --local --dev-ca-anchor` signs the Strait proxies'
# certificates with the same root (the controller idles on CPU 0 after
# that). The certificates name the same identities on both sides:
# web.shop.serviceaccount.identity.cluster.local for the server, and the
# client's SPIFFE ID.
#
# Measured: latency at 1,000 rps (interleaved rounds with the direct path),
# HTTP/1.1 max throughput (wrk), and new mTLS connections per second: curl
# presenting the client certificate opens a new TLS connection for every
# request (`Connection: close`) to the server-side proxy of each pair.

P_HC=$((BASE + 60)) P_HS=$((BASE + 61))
P_SC_OUT=$((BASE + 62)) P_SC_IN=$((BASE + 63)) P_SC_ADMIN=$((BASE + 64))
P_SS_OUT=$((BASE + 65)) P_SS_IN=$((BASE + 66)) P_SS_ADMIN=$((BASE + 67))
P_CP=$((BASE + 68)) P_ID=$((BASE + 69)) P_CP_HEALTH=$((BASE + 70))
MESH_NAME=web.shop.serviceaccount.identity.cluster.local
NEW_CONNS=${BENCH_NEW_CONNS:-1500}
for p in $P_HC $P_HS $P_SC_OUT $P_SC_IN $P_SC_ADMIN $P_SS_OUT $P_SS_IN $P_SS_ADMIN $P_CP $P_ID $P_CP_HEALTH; do
    [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p is in use; set BENCH_PORT_BASE"
done

# ---------------------------------------------------------------- the CA
PKI="$WORK/pki"
mkdir -p "$PKI/anchor"
(
    cd "$PKI"
    openssl ecparam -name prime256v1 -genkey -noout -out root.sec1.key
    openssl pkcs8 -topk8 -nocrypt -in root.sec1.key -out root.key
    openssl req -x509 -new -key root.key -subj /CN=bench-root -days 2 -out root.crt \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    leaf() { # NAME SPIFFE DNS
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.sec1.key"
        openssl pkcs8 -topk8 -nocrypt -in "$1.sec1.key" -out "$1.key"
        openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
        printf 'subjectAltName=URI:%s,DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' "$2" "$3" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA root.crt -CAkey root.key -CAcreateserial -days 1 -extfile "$1.ext" -out "$1.crt"
        cat "$1.crt" "$1.key" >"$1.pem"
    }
    leaf server spiffe://cluster.local/ns/shop/sa/web "$MESH_NAME"
    leaf client spiffe://cluster.local/ns/shop/sa/client client.shop.serviceaccount.identity.cluster.local
    cp root.crt anchor/tls.crt && cp root.key anchor/tls.key && cp root.crt anchor/ca.crt
) >"$RAW/pki.log" 2>&1 || die "making the benchmark's CA: $(tail -5 "$RAW/pki.log")"

# ---------------------------------------------------------------- HAProxy pair
# The global and defaults sections of bench/run.sh's HAProxy.
ha_head() { sed -n '1,/^  http-reuse always$/p' "$WORK/haproxy.cfg"; }
{ ha_head; cat <<EOF
frontend fe
  bind 127.0.0.1:$P_HC
  default_backend be
backend be
  server hs 127.0.0.1:$P_HS ssl ssl-min-ver TLSv1.3 crt $PKI/client.pem ca-file $PKI/root.crt verify required sni str($MESH_NAME) verifyhost $MESH_NAME
EOF
} >"$WORK/haproxy-client.cfg"
{ ha_head; cat <<EOF
frontend fe
  bind 127.0.0.1:$P_HS ssl ssl-min-ver TLSv1.3 crt $PKI/server.pem ca-file $PKI/root.crt verify required
  default_backend be
backend be
  server up 127.0.0.1:$P_UP_H1
EOF
} >"$WORK/haproxy-server.cfg"
for c in client server; do
    haproxy -c -q -f "$WORK/haproxy-$c.cfg" >&2 || die "haproxy-$c config invalid"
done
taskset -c 1 haproxy -db -f "$WORK/haproxy-server.cfg" >"$RAW/haproxy-server.stderr" 2>&1 &
HAS_PID=$!
taskset -c 1 haproxy -db -f "$WORK/haproxy-client.cfg" >"$RAW/haproxy-client.stderr" 2>&1 &
HAC_PID=$!
PIDS+=($HAS_PID $HAC_PID)

# ---------------------------------------------------------------- Strait pair
mkdir -p "$WORK/mtls-manifests" "$WORK/cp-manifests"
meshed_svc web-mtls "$P_SS_IN" web-0 web >"$WORK/mtls-manifests/web.yaml"
taskset -c 0 "$CONTROLLER" --local "$WORK/cp-manifests" --dev-ca-anchor "$PKI/anchor" \
    --dev-ca-roots "$PKI/strait-roots.pem" --config-addr 127.0.0.1:$P_CP \
    --identity-addr 127.0.0.1:$P_ID --health-addr 127.0.0.1:$P_CP_HEALTH --log warn \
    >"$RAW/controller.stderr" 2>&1 &
PIDS+=($!)
strait_pair() { # NAME SA OUT IN ADMIN [extra flags]
    local name=$1 sa=$2 out=$3 in=$4 admin=$5; shift 5
    taskset -c 1 "$STRAIT" --local "$WORK/mtls-manifests" --identity-addr 127.0.0.1:$P_ID \
        --namespace shop --pod "$name" --service-account "$sa" \
        --outbound-addr 127.0.0.1:$out --inbound-addr 127.0.0.1:$in \
        --admin-addr 127.0.0.1:$admin --workers 1 --log warn "$@" \
        >"$RAW/strait-$name.stderr" 2>&1 &
}
strait_pair server web $P_SS_OUT $P_SS_IN $P_SS_ADMIN --inbound-forward 127.0.0.1:$P_UP_H1
SS_PID=$!
strait_pair client client $P_SC_OUT $P_SC_IN $P_SC_ADMIN
SC_PID=$!
PIDS+=($SS_PID $SC_PID)
for admin in $P_SS_ADMIN $P_SC_ADMIN; do
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:$admin/metrics" 2>/dev/null | grep -q 'strait_identity_renewals_total{result="success"} [1-9]' && break
        sleep 0.2
    done
    curl -sf "127.0.0.1:$admin/metrics" | grep -q 'strait_identity_renewals_total{result="success"} [1-9]' \
        || die "the strait proxy on admin port $admin got no certificate: $(tail -5 "$RAW"/strait-*.stderr)"
done
for _ in $(seq 50); do curl -s -o /dev/null "127.0.0.1:$P_HC/" && break; sleep 0.1; done
check "haproxy pair (mTLS)" "http://127.0.0.1:$P_HC/"
check "strait pair (mTLS)" -H 'Host: web-mtls' "http://127.0.0.1:$P_SC_OUT/"
mesh_requests=$(curl -sf "127.0.0.1:$P_SC_ADMIN/metrics" | awk '/^strait_mesh_requests_total\{direction="outbound",tls="true",peer_identity="spiffe:\/\/cluster.local\/ns\/shop\/sa\/web"\}/ {print $2}')
[ "${mesh_requests:-0}" -ge 1 ] || die "the strait pair's hop was not mTLS"
log "both pairs answer 200 over mTLS (the strait hop counted as mTLS to spiffe://cluster.local/ns/shop/sa/web)"

m_url() { case $1 in direct) echo "http://127.0.0.1:$P_UP_H1/" ;; hapair) echo "http://127.0.0.1:$P_HC/" ;; stpair) echo "http://127.0.0.1:$P_SC_OUT/" ;; esac; }
PAIRS=(direct hapair stpair)

spin_start
for t in "${PAIRS[@]}"; do
    taskset -c 0 "$OHA" -q 1000 -z "${WARM}s" -c "$CONNS" -w --no-tui --output-format quiet --host web-mtls "$(m_url $t)" >/dev/null 2>&1 || true
done
# Nine rounds, not three: a pair's p99 is two processes on one core waiting
# for each other, and three rounds let this VM's noise decide the verdict
# (docs/benchmarks.md, the pair's history).
M_ROUNDS="${BENCH_MTLS_LAT_ROUNDS:-9}"
echo "{\"rounds\": $M_ROUNDS}" >"$RAW/mtls-rounds.json"
for r in $(seq "$M_ROUNDS"); do
    for t in "${PAIRS[@]}"; do
        log "mTLS pair latency at 1000 rps, round $r/$M_ROUNDS, $t (${LAT_DUR}s)"
        measure "mlat1000.r$r" "$t" "$P_UP_H1" "$OHA" -q 1000 -z "${LAT_DUR}s" -c "$CONNS" \
            --latency-correction -w --no-tui --output-format json --host web-mtls "$(m_url $t)"
    done
done
spin_stop

for r in $(seq "$TPUT_ROUNDS"); do
    for t in hapair stpair; do
        log "mTLS pair HTTP/1.1 throughput, round $r/$TPUT_ROUNDS, $t (${DUR}s)"
        measure "mh1.r$r" "$t" "$P_UP_H1" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: web-mtls' "$(m_url $t)"
    done
done

# New mTLS connections: the server-side proxy of each pair, a new TLS
# connection (with the client certificate) per request.
for t in hapair stpair; do
    port=$P_HS; [ "$t" = stpair ] && port=$P_SS_IN
    : >"$WORK/curl-$t.cfg"
    for _ in $(seq "$NEW_CONNS"); do
        printf 'url = "https://%s:%s/"\noutput = "/dev/null"\n' "$MESH_NAME" "$port" >>"$WORK/curl-$t.cfg"
    done
done
for r in 1 2; do
    for t in hapair stpair; do
        port=$P_HS; [ "$t" = stpair ] && port=$P_SS_IN
        log "new mTLS connections, round $r/2, $t ($NEW_CONNS connections)"
        measure "mnew.r$r" "$t" "$P_UP_H1" curl -s --parallel --parallel-max 8 --http1.1 \
            -H 'Connection: close' --tlsv1.3 --cacert "$PKI/root.crt" --cert "$PKI/client.crt" \
            --key "$PKI/client.key" --resolve "$MESH_NAME:$port:127.0.0.1" \
            -w '%{http_code}\n' --config "$WORK/curl-$t.cfg"
    done
done
for t in hapair stpair; do
    read -r a b <<<"$(pid_of $t)"
    echo "{\"rss_kb\": $(rss_kb "$a"), \"rss2_kb\": $(rss_kb "$b")}" >"$RAW/after-$t.json"
done
curl -sf "127.0.0.1:$P_SC_ADMIN/metrics" >"$RAW/strait-client-metrics.txt" || true
curl -sf "127.0.0.1:$P_SS_ADMIN/metrics" >"$RAW/strait-server-metrics.txt" || true
